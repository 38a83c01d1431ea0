#!/usr/bin/env python3
"""bench/bench_e2e.py: write N valid ATX/2 messages for bench_e2e.sh.

The seven UPSERTs of tests/fixtures/atx-burglary.ndjson are repeated as groups of new
records: group g gives every record the id <type letter><g in 7 digits><the last 3
digits of the fixture's id>, its links point at the records of the same group, and
every message gets its own messageId. So each message is new to the ledger and yields its entity plus its links, as the
fixture's do (7 messages -> 16 canonical updates). N is rounded up to whole groups, so
that both ends of every link exist: a destination's policy holds back a link whose
ends it has not been sent (docs/policy.md), and the benchmark waits for every
announced record."""

import json
import os
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "atx-burglary.ndjson")


def renumber(native_id, group):
    """The fixture's id moved into group: type letter, the group in 7 digits, then the
    original's last 3 digits (which tell the fixture's records apart: P...456, P...999)."""
    return "%s%07d%s" % (native_id[0], group, native_id[-3:])


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: bench_e2e.py N OUT.ndjson")
    count, out = int(sys.argv[1]), sys.argv[2]
    with open(FIXTURE, encoding="utf-8") as f:
        templates = [json.loads(line) for line in f if line.strip()]
    templates = [t for t in templates if t["record"]["action"] == "UPSERT"]
    count = -(-count // len(templates)) * len(templates)
    with open(out, "w", encoding="utf-8") as f:
        for i in range(count):
            group, t = divmod(i, len(templates))
            msg = json.loads(json.dumps(templates[t]))
            msg["header"]["messageId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "bench_e2e/%d" % i))
            rec = msg["record"]
            rec["id"] = renumber(rec["id"], group)
            for link in msg.get("links") or []:
                link["target"]["id"] = renumber(link["target"]["id"], group)
            f.write(json.dumps(msg, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
