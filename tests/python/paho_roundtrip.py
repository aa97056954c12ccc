#!/usr/bin/env python3
"""paho-mqtt against a broker on 127.0.0.1:PORT.

usage: paho_roundtrip.py PORT [--protocol 3.1|3.1.1] [--timeout SECONDS]

Subscribes at QoS 2, publishes at QoS 0, 1 and 2 and checks each message
arrives once with its QoS and payload; then checks a retained message reaches
a later subscriber with the retain flag, and that an empty retained payload
clears it. Prints `OK ...` and exits 0, or `FAIL: ...` and exits 1.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paho_common import Client, Deadline, fail  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--protocol", choices=["3.1", "3.1.1"], default="3.1.1")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    deadline = Deadline(args.timeout)
    tag = args.protocol.replace(".", "")
    base = f"paho/{tag}"

    sub = Client(f"paho-sub-{tag}", args.port, deadline, args.protocol)
    rc = sub.connect()
    if rc != 0:
        fail(f"subscriber refused: {rc}")
    granted = sub.subscribe(f"{base}/#", 2)
    if granted != [2]:
        fail(f"expected QoS 2 granted, got {granted}")

    pub = Client(f"paho-pub-{tag}", args.port, deadline, args.protocol)
    rc = pub.connect()
    if rc != 0:
        fail(f"publisher refused: {rc}")
    for qos in (0, 1, 2):
        pub.publish(f"{base}/q{qos}", f"payload {qos}".encode(), qos)

    got = {}
    while len(got) < 3:
        m = sub.message("the QoS 0/1/2 messages")
        if m.topic in got:
            fail(f"{m.topic} delivered twice")
        got[m.topic] = m
    for qos in (0, 1, 2):
        m = got.get(f"{base}/q{qos}")
        if m is None:
            fail(f"QoS {qos} message missing; got {sorted(got)}")
        if m.qos != qos:
            fail(f"QoS {qos} message delivered at QoS {m.qos}")
        if m.payload != f"payload {qos}".encode():
            fail(f"QoS {qos} message has payload {m.payload!r}")
        if m.retain:
            fail(f"QoS {qos} message has the retain flag")
    print(f"OK qos 0 1 2 ({args.protocol})")

    # Retained: a later subscriber gets it with the flag; empty payload clears it.
    pub.publish(f"{base}/retained", b"kept", 1, retain=True)
    late = Client(f"paho-late-{tag}", args.port, deadline, args.protocol)
    if late.connect() != 0:
        fail("late subscriber refused")
    late.subscribe(f"{base}/retained", 1)
    m = late.message("the retained message")
    if not m.retain or m.payload != b"kept" or m.qos != 1:
        fail(f"retained message wrong: retain={m.retain} qos={m.qos} payload={m.payload!r}")
    print("OK retained")

    pub.publish(f"{base}/retained", b"", 1, retain=True)
    # The live subscriber sees the clearing publish; a new one must see nothing
    # retained: publish a marker after subscribing and expect it first.
    clean = Client(f"paho-clean-{tag}", args.port, deadline, args.protocol)
    if clean.connect() != 0:
        fail("third subscriber refused")
    clean.subscribe(f"{base}/retained", 1)
    pub.publish(f"{base}/retained", b"marker", 1)
    m = clean.message("the marker")
    if m.payload != b"marker":
        fail(f"retained message not cleared by an empty payload: got {m.payload!r} retain={m.retain}")
    print("OK retained cleared")

    for c in (sub, pub, late, clean):
        c.close()


if __name__ == "__main__":
    main()
