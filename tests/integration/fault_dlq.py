#!/usr/bin/env python3
"""tests/integration/fault_dlq.py: fault test 4, invalid messages in the stream.

fault_load sends 3,000 ATX messages to polegated on the shared broker, every 10th one
invalid (revision 0). Each invalid one must be answered "rejected" with a dead-letter
id, land on the dead-letter topic (read_committed) with its reason, origin force,
format, time and original bytes, and be listed by `polegate dlq list`; every valid
message around them must be published. Figures: <build>/fault-figures/fault_dlq.json.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_common as fc  # noqa: E402

REASON = "record.revision: must be 1 or more"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default=os.environ.get("POLEGATE_KAFKA_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    fault_load = os.path.join(args.build_dir, "tests", "integration", "fault_load")
    run = uuid.uuid4().hex[:8]
    topic, dlq_topic = "fault.dlq.%s.pole.v1" % run, "fault.dlq.%s.dlq.v1" % run
    work = tempfile.mkdtemp(prefix="pg-fault-dlq-")
    failures = []
    daemon = None
    try:
        fc.create_topic(args.brokers, topic)
        fc.create_topic(args.brokers, dlq_topic, compact=False)
        port = fc.free_port()
        config = os.path.join(work, "gateway.yaml")
        fc.write_config(config, "ESX", port, os.path.join(work, "store"), args.brokers, topic,
                        dlq_topic)
        daemon = fc.Daemon(polegated, config, port, os.path.join(work, "polegated.log"))
        daemon.start()
        ack_log, load_out = os.path.join(work, "acks.log"), os.path.join(work, "load.out")
        load = fc.start_load(fault_load, port, args.count, ack_log, load_out, invalid_every=10,
                             timeout_s=120)
        load.wait(timeout=180)
        result = fc.load_result(load_out)
        if result.get("finished") != args.count:
            failures.append("the feed did not finish: %s" % result)
        expected, rejected, _ = fc.read_acks(ack_log, "ESX")
        want_rejected = args.count // 10
        if len(rejected) != want_rejected:
            failures.append("%d rejected, want %d" % (len(rejected), want_rejected))
        if len(expected) != args.count - want_rejected:
            failures.append("%d accepted, want %d" % (len(expected), args.count - want_rejected))
        if any(i % 10 != 9 for i, _, _ in rejected):
            failures.append("a valid message was rejected")

        reader = fc.TopicReader(args.brokers, topic)
        reader.read_until(expected, timeout=120)
        lost = expected - reader.seen
        reader.close()
        if lost:
            failures.append("%d valid records not published, e.g. %s" % (len(lost), sorted(lost)[:3]))

        dlq = fc.TopicReader(args.brokers, dlq_topic)
        for _ in range(60):
            dlq.poll(1.0)
            if len(dlq.others) >= len(rejected) and dlq.at_end:
                break
        dlq.close()
        by_key = dict((key, (headers, value)) for key, headers, value in dlq.others)
        bad = 0
        for _, dl_id, message_id in rejected:
            got = by_key.get("ESX/dlq/%d" % dl_id)
            if (not got or got[0].get("pg-reason") != REASON or got[0].get("pg-origin-force") != "ESX"
                    or got[0].get("pg-format") != "atx" or not got[0].get("pg-received-at", "").endswith("Z")
                    or message_id.encode() not in (got[1] or b"")):
                bad += 1
        if bad:
            failures.append("%d dead letters missing or wrong on %s" % (bad, dlq_topic))
        if len(dlq.others) != len(rejected):
            failures.append("%d dead-letter records for %d rejections" % (len(dlq.others), len(rejected)))

        listed = subprocess.run([polegate, "dlq", "list", "--json", "--config", config],
                                capture_output=True, text=True, timeout=60)
        entries = [json.loads(line) for line in listed.stdout.splitlines()]
        if listed.returncode != 0 or len(entries) != len(rejected) or \
                any(e["reason"] != REASON for e in entries):
            failures.append("polegate dlq list: status %d, %d entries: %s"
                            % (listed.returncode, len(entries), listed.stderr[-300:]))
        rc = daemon.terminate()
        if rc != 0:
            failures.append("polegated exited with %s on SIGTERM" % rc)
        fc.write_figures(args.build_dir, "fault_dlq", {
            "messages": args.count, "rejected": len(rejected), "dead_letters_on_topic": len(dlq.others),
            "dead_letters_listed": len(entries), "valid_acknowledged": len(expected),
            "valid_found": len(expected & reader.seen), "valid_lost": len(lost),
            "passed": not failures})
    except Exception as e:  # noqa: BLE001
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if daemon:
            daemon.kill9()
        fc.keep_or_remove("fault_dlq", work, failures, args.keep, 30)
    return fc.report("fault_dlq", failures)


if __name__ == "__main__":
    sys.exit(main())
