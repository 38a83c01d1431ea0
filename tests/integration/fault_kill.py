#!/usr/bin/env python3
"""tests/integration/fault_kill.py: fault test 1, kill -9 while records stream in.

polegated (athena, a fresh store and topic) takes 50,000 ATX messages (25,000 entities,
two revisions each) from fault_load while this script kills it with SIGKILL at random
moments (1-3 s apart) and starts it again on the same store. fault_load sends every
message until it gets a final ack (a message whose ack was lost to a kill is sent
again: a duplicate to the ledger). When the feed is done, the topic is read with
isolation.level=read_committed until every acknowledged (key, version) is there.

Pass: every acknowledged record found (zero lost), no version below one already seen
for its key, and the last daemon stops cleanly on SIGTERM. Figures go to
<build>/fault-figures/fault_kill.json and docs/reliability.md.
"""

import argparse
import os
import random
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_common as fc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default=os.environ.get("POLEGATE_KAFKA_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--entities", type=int, default=25000)
    ap.add_argument("--max-kills", type=int, default=15)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", action="store_true", help="keep the run's folder")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    fault_load = os.path.join(args.build_dir, "tests", "integration", "fault_load")
    run = "%s" % uuid.uuid4().hex[:8]
    topic, dlq_topic = "fault.kill.%s.pole.v1" % run, "fault.kill.%s.dlq.v1" % run
    work = tempfile.mkdtemp(prefix="pg-fault-kill-")
    failures = []
    daemon = None
    load = None
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
        t0 = time.monotonic()
        load = fc.start_load(fault_load, port, args.count, ack_log, load_out,
                             entities=args.entities, window=200, resend_ms=2000, timeout_s=400)
        kills, peak_rss = 0, 0
        while load.poll() is None:
            time.sleep(rng.uniform(0.3, 1.0))
            peak_rss = max(peak_rss, daemon.rss_kib())
            if load.poll() is not None or kills >= args.max_kills:
                continue
            daemon.kill9()
            kills += 1
            daemon.start()
        feed_s = time.monotonic() - t0
        result = fc.load_result(load_out)
        if load.returncode != 0 or result.get("finished") != args.count:
            failures.append("the feed did not finish: %s" % result)
        expected, rejected, stale = fc.read_acks(ack_log, "ESX")
        reader = fc.TopicReader(args.brokers, topic)
        drain_s = reader.read_until(expected, timeout=180)
        lost = expected - reader.seen
        reader.close()
        rc = daemon.terminate()
        if rc != 0:
            failures.append("polegated exited with %s on SIGTERM" % rc)
        if lost:
            failures.append("%d acknowledged records not in Kafka, e.g. %s"
                            % (len(lost), sorted(lost)[:5]))
        if reader.order_violations:
            failures.append("%d records below a version already seen for their key"
                            % reader.order_violations)
        if rejected:
            failures.append("%d valid messages rejected" % len(rejected))
        if kills == 0:
            failures.append("the feed ended before any kill")
        # What a restart publishes again (committed, not yet removed from the spool) is
        # counted and logged by the process that sends it (publisher.sent).
        resent_logged = fc.logged_resends(daemon.log_path)
        if reader.duplicates > resent_logged:
            failures.append("a read_committed consumer saw %d duplicates, but polegated "
                            "counted only %d records sent again"
                            % (reader.duplicates, resent_logged))
        fc.write_figures(args.build_dir, "fault_kill", {
            "seed": args.seed, "kills": kills, "messages_sent": result.get("sends"),
            "messages_resent": result.get("resends"), "records_acknowledged": len(expected),
            "acks_duplicate": result.get("duplicates"), "acks_stale": stale,
            "records_found": len(expected & reader.seen), "records_lost": len(lost),
            "duplicates_seen_by_consumer": reader.duplicates,
            "records_counted_resent": resent_logged,
            "records_read": reader.records, "feed_seconds": round(feed_s, 1),
            "drain_seconds_after_feed": round(drain_s, 1), "peak_rss_kib": peak_rss,
            "passed": not failures})
    except Exception as e:  # noqa: BLE001  (report, then clean up)
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if load and load.poll() is None:
            load.kill()
        if daemon:
            daemon.kill9()
        fc.keep_or_remove("fault_kill", work, failures, args.keep, 40)
    return fc.report("fault_kill", failures)


if __name__ == "__main__":
    sys.exit(main())
