#!/usr/bin/env python3
"""paho-mqtt speaking MQTT 5 to a broker on 127.0.0.1:PORT.

usage: paho_v5.py PORT [--timeout SECONDS]

Checks, each printing an `OK ...` line:
- CONNACK: reason 0, the server's properties (topic alias maximum, receive
  maximum, maximum packet size, retain/wildcard/subscription-identifier
  availability), an assigned client identifier for an empty one;
- properties end to end: user properties, content type, response topic,
  correlation data and payload format reach a v5 subscriber unchanged,
  with the subscription identifier of the matching subscription;
- a 3.1.1 subscriber gets a v5 publisher's message, and a v5 subscriber a
  3.1.1 publisher's;
- subscription options: no local, retain as published, retain handling 1/2;
- topic aliases from the client;
- reason codes: NOT_AUTHORIZED-free QoS 1/2 acks, UNSUBACK "no
  subscription existed";
- session expiry: a session with an interval survives a disconnect (session
  present) and clean start discards it.
Prints `FAIL: ...` on stderr and exits 1 on the first failure.
"""

import argparse
import os
import queue
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paho_common import Client as V3Client  # noqa: E402
from paho_common import Deadline, fail, mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402


class V5:
    """A paho MQTT 5 client whose callbacks feed one event queue."""

    def __init__(self, client_id, port, deadline):
        self.deadline = deadline
        self.port = port
        self.events = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.on_connect = lambda c, u, flags, rc, props: self.events.put(("connect", flags, rc, props))
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.events.put(("suback", mid, rcs))
        self.c.on_unsubscribe = lambda c, u, mid, rcs, props: self.events.put(("unsuback", mid, rcs))
        self.c.on_message = lambda c, u, msg: self.events.put(("message", msg))
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.events.put(("disconnect", rc))
        self.c.on_publish = lambda c, u, mid, rc, props: self.events.put(("puback", mid, rc))

    def next(self, what):
        try:
            return self.events.get(timeout=self.deadline.left())
        except queue.Empty:
            fail(f"timed out waiting for {what}")

    def wait(self, kind, what, match=lambda ev: True):
        while True:
            ev = self.next(what)
            if ev[0] == kind and match(ev):
                return ev
            if ev[0] == "disconnect" and kind != "disconnect":
                fail(f"disconnected while waiting for {what}: {ev[1]}")

    def connect(self, clean_start=True, session_expiry=None, topic_alias_maximum=None):
        props = Properties(PacketTypes.CONNECT)
        if session_expiry is not None:
            props.SessionExpiryInterval = session_expiry
        if topic_alias_maximum is not None:
            props.TopicAliasMaximum = topic_alias_maximum
        self.c.connect("127.0.0.1", self.port, keepalive=30, clean_start=clean_start, properties=props)
        self.c.loop_start()
        _, flags, rc, props = self.wait("connect", "CONNACK")
        if rc.value != 0:
            fail(f"v5 CONNECT refused: {rc} ({rc.value})")
        return flags, props

    def subscribe(self, topic, qos=1, sub_id=None, **options):
        props = None
        if sub_id is not None:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = sub_id
        _, mid = self.c.subscribe(topic, options=SubscribeOptions(qos=qos, **options), properties=props)
        _, _, rcs = self.wait("suback", f"SUBACK for {topic}", lambda ev: ev[1] == mid)
        return [rc.value for rc in rcs]

    def unsubscribe(self, topic):
        _, mid = self.c.unsubscribe(topic)
        _, _, rcs = self.wait("unsuback", f"UNSUBACK for {topic}", lambda ev: ev[1] == mid)
        return [rc.value for rc in rcs] if isinstance(rcs, list) else [rcs.value]

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos > 0:
            _, _, rc = self.wait("puback", f"acknowledgement of {topic}", lambda ev: ev[1] == info.mid)
            return rc.value
        return None

    def message(self, what):
        return self.wait("message", what)[1]

    def no_message(self, seconds, what):
        """Fails if a message arrives within `seconds` (a negative check);
        other events meanwhile are dropped."""
        end = Deadline(seconds)
        while end.left() > 0:
            try:
                ev = self.events.get(timeout=end.left())
            except queue.Empty:
                return
            if ev[0] == "message":
                fail(f"{what}: got {ev[1].topic} {ev[1].payload!r}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def prop(props, name, default=None):
    return getattr(props, name, default) if props is not None else default


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--timeout", type=float, default=15.0)
    args = ap.parse_args()
    d = Deadline(args.timeout)

    # CONNACK and its properties; an assigned client identifier.
    anon = V5("", args.port, d)
    _, props = anon.connect()
    assigned = prop(props, "AssignedClientIdentifier")
    if not assigned:
        fail(f"empty client id: no assigned client identifier in CONNACK ({props})")
    if prop(props, "TopicAliasMaximum", 0) < 1:
        fail(f"CONNACK offers no topic aliases: {props}")
    if prop(props, "MaximumPacketSize", 0) <= 0:
        fail(f"CONNACK has no maximum packet size: {props}")
    for absent_means_yes in ("RetainAvailable", "WildcardSubscriptionAvailable", "SubscriptionIdentifierAvailable"):
        if prop(props, absent_means_yes, 1) != 1:
            fail(f"CONNACK says {absent_means_yes} = 0")
    anon.close()
    print(f"OK connack (assigned {assigned})")

    # Properties end to end, with the subscription identifier.
    sub = V5("v5-sub", args.port, d)
    sub.connect()
    if sub.subscribe("v5/props/#", 1, sub_id=42) != [1]:
        fail("v5 subscription not granted at QoS 1")
    old = V3Client("v311-sub", args.port, d, "3.1.1")
    if old.connect() != 0:
        fail("3.1.1 subscriber refused")
    old.subscribe("v5/props/#", 1)
    pub = V5("v5-pub", args.port, d)
    pub.connect()
    p = Properties(PacketTypes.PUBLISH)
    p.UserProperty = [("k1", "v1"), ("k2", "v2")]
    p.ContentType = "text/plain"
    p.ResponseTopic = "v5/reply"
    p.CorrelationData = b"\x00\x01corr"
    p.PayloadFormatIndicator = 1
    rc = pub.publish("v5/props/a", b"hello", 1, properties=p)
    if rc not in (0, 16):
        fail(f"PUBACK reason {rc}")
    m = sub.message("the v5 message")
    mp = m.properties
    if m.payload != b"hello":
        fail(f"payload {m.payload!r}")
    if prop(mp, "UserProperty") != [("k1", "v1"), ("k2", "v2")]:
        fail(f"user properties {prop(mp, 'UserProperty')}")
    if prop(mp, "ContentType") != "text/plain" or prop(mp, "ResponseTopic") != "v5/reply":
        fail(f"content type / response topic {mp}")
    if prop(mp, "CorrelationData") != b"\x00\x01corr" or prop(mp, "PayloadFormatIndicator") != 1:
        fail(f"correlation data / payload format {mp}")
    if prop(mp, "SubscriptionIdentifier") != [42]:
        fail(f"subscription identifier {prop(mp, 'SubscriptionIdentifier')}")
    m = old.message("the v5 message at the 3.1.1 subscriber")
    if m.payload != b"hello" or m.topic != "v5/props/a":
        fail(f"3.1.1 subscriber got {m.topic} {m.payload!r}")
    print("OK properties end to end, subscription identifier, v5 -> 3.1.1")

    old.publish("v5/props/from-old", b"old", 1)
    m = sub.message("the 3.1.1 message at the v5 subscriber")
    if m.payload != b"old" or prop(m.properties, "UserProperty"):
        fail(f"v5 subscriber got {m.topic} {m.payload!r} {m.properties}")
    if prop(m.properties, "SubscriptionIdentifier") != [42]:
        fail("3.1.1 message lacks the subscription identifier")
    old.close()
    print("OK 3.1.1 -> v5")

    # No local: a client does not get its own message back on such a subscription.
    if pub.subscribe("v5/nl/#", 0, noLocal=True) != [0]:
        fail("no-local subscription not granted")
    pub.publish("v5/nl/x", b"own", 1)
    sub.subscribe("v5/nl/#", 0)
    pub.publish("v5/nl/y", b"own2", 1)
    m = sub.message("the other client's copy")
    if m.topic not in ("v5/nl/x", "v5/nl/y"):
        fail(f"unexpected {m.topic}")
    pub.no_message(0.5, "no local delivered the publisher's own message")
    print("OK no local")

    # Retain as published and retain handling.
    pub.publish("v5/ret/t", b"kept", 1, retain=True)
    sub.subscribe("v5/ret/t", 1, retainAsPublished=True, retainHandling=1)
    m = sub.message("the retained message on a new subscription")
    if not m.retain or m.payload != b"kept":
        fail(f"retained on subscribe: retain={m.retain} {m.payload!r}")
    sub.subscribe("v5/ret/t", 1, retainAsPublished=True, retainHandling=1)
    sub.no_message(0.5, "retain handling 1 re-sent the retained message to an existing subscription")
    pub.publish("v5/ret/t", b"live", 1, retain=True)
    m = sub.message("a live retained publish")
    if not m.retain:
        fail("retain as published: the live copy lost its RETAIN flag")
    late = V5("v5-late", args.port, d)
    late.connect()
    late.subscribe("v5/ret/t", 1, retainHandling=2)
    late.no_message(0.5, "retain handling 2 sent a retained message")
    late.close()
    print("OK retain as published, retain handling 1 and 2")

    # Topic aliases from the client.
    sub.subscribe("v5/alias/#", 0)
    p = Properties(PacketTypes.PUBLISH)
    p.TopicAlias = 1
    pub.publish("v5/alias/long/topic/name", b"first", 0, properties=p)
    p = Properties(PacketTypes.PUBLISH)
    p.TopicAlias = 1
    pub.publish("", b"second", 0, properties=p)
    got = [sub.message("aliased publish 1"), sub.message("aliased publish 2")]
    if [(g.topic, g.payload) for g in got] != [("v5/alias/long/topic/name", b"first"), ("v5/alias/long/topic/name", b"second")]:
        fail(f"topic aliases: {[(g.topic, g.payload) for g in got]}")
    print("OK topic aliases")

    # UNSUBACK reason codes.
    if sub.unsubscribe("v5/never/subscribed") != [17]:
        fail("UNSUBACK for an unknown filter is not 0x11 no subscription existed")
    if sub.unsubscribe("v5/alias/#") != [0]:
        fail("UNSUBACK for a subscription is not 0")
    print("OK unsuback reason codes")
    sub.close()
    pub.close()

    # Session expiry: kept across a disconnect, discarded by clean start.
    s = V5("v5-session", args.port, d)
    flags, _ = s.connect(clean_start=True, session_expiry=300)
    s.subscribe("v5/sess/#", 1)
    s.close()
    s.wait("disconnect", "the disconnect")
    s = V5("v5-session", args.port, d)
    flags, _ = s.connect(clean_start=False, session_expiry=300)
    if not flags.session_present:
        fail("session with an expiry interval not present after reconnect")
    s.close()
    s = V5("v5-session", args.port, d)
    flags, _ = s.connect(clean_start=True, session_expiry=0)
    if flags.session_present:
        fail("clean start kept the session")
    s.close()
    print("OK session expiry and clean start")


if __name__ == "__main__":
    main()
