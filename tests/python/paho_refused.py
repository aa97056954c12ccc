#!/usr/bin/env python3
"""paho-mqtt connects anonymously and expects CONNACK 5 (not authorized).

usage: paho_refused.py PORT [--timeout SECONDS]

Prints `OK refused: <reason>` and exits 0 when the broker refuses with
return code 5; `FAIL: ...` and exit 1 otherwise (accepted, another code, or
a close without CONNACK).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paho_common import Client, Deadline, fail  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    c = Client("paho-anonymous", args.port, Deadline(args.timeout))
    rc = c.connect()
    c.c.loop_stop()
    # paho 2 maps the MQTT 3 return code 5 to reason code 135 "Not authorized".
    if rc == 0:
        fail("the broker accepted an anonymous client")
    if getattr(rc, "value", None) != 135:
        fail(f"expected CONNACK 5 (not authorized), got {rc} ({getattr(rc, 'value', rc)})")
    print(f"OK refused: {rc}")


if __name__ == "__main__":
    main()
