"""Shared helpers for the paho-mqtt interop scripts run by tests/tests/interop.rs.

Every wait has a deadline: a script never hangs, it prints `FAIL: ...` on
stderr and exits 1. Success prints `OK ...` lines on stdout and exits 0.
"""

import queue
import sys
import time

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover - reported to the Rust test
    print("FAIL: paho-mqtt is not installed: run `python3 -m pip install paho-mqtt`", file=sys.stderr)
    sys.exit(3)

if not hasattr(mqtt, "CallbackAPIVersion"):
    print("FAIL: paho-mqtt >= 2.0 is needed: run `python3 -m pip install -U paho-mqtt`", file=sys.stderr)
    sys.exit(3)

PROTOCOLS = {"3.1": mqtt.MQTTv31, "3.1.1": mqtt.MQTTv311}


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())


class Client:
    """A paho client whose callbacks feed one event queue."""

    def __init__(self, client_id, port, deadline, protocol="3.1.1", will=None, username=None):
        self.deadline = deadline
        self.events = queue.Queue()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=PROTOCOLS[protocol],
        )
        if will is not None:
            self.c.will_set(**will)
        if username is not None:
            self.c.username_pw_set(username)
        self.c.on_connect = lambda c, u, flags, rc, props: self.events.put(("connect", rc))
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.events.put(("suback", mid, rcs))
        self.c.on_message = lambda c, u, msg: self.events.put(("message", msg))
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.events.put(("disconnect", rc))
        self.port = port

    def next(self, what):
        try:
            return self.events.get(timeout=self.deadline.left())
        except queue.Empty:
            fail(f"timed out waiting for {what}")

    def connect(self):
        """Connects; returns the CONNACK reason code."""
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        while True:
            ev = self.next("CONNACK")
            if ev[0] == "connect":
                return ev[1]
            if ev[0] == "disconnect":
                fail(f"disconnected before CONNACK: {ev[1]}")

    def subscribe(self, topic, qos):
        """Subscribes; returns the granted codes (ints; 128 = failure)."""
        _, mid = self.c.subscribe(topic, qos)
        while True:
            ev = self.next(f"SUBACK for {topic}")
            if ev[0] == "suback" and ev[1] == mid:
                return [rc.value for rc in ev[2]]
            if ev[0] == "disconnect":
                fail(f"disconnected while subscribing: {ev[1]}")

    def publish(self, topic, payload, qos, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=self.deadline.left())
        if not info.is_published():
            fail(f"publish to {topic} at QoS {qos} was not completed (no PUBACK/PUBCOMP)")

    def message(self, what):
        while True:
            ev = self.next(what)
            if ev[0] == "message":
                return ev[1]
            if ev[0] == "disconnect":
                fail(f"disconnected while waiting for {what}: {ev[1]}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()
