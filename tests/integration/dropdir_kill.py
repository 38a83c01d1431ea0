#!/usr/bin/env python3
"""tests/integration/dropdir_kill.py: the intake's drop directory fed while polegated is
killed with SIGKILL and started again on the same store (docs/intake.md).

A feeder writes ATX files elsewhere and renames them into intake.directory, one every
few tens of milliseconds, while this script kills the daemon at random moments. Among
them: a file with one invalid message, a file of binary garbage, an NX5 document (the
wrong format for an athena gateway) and an empty file.

Pass: every file ends in done/ or failed/ as it should, with a result file beside it
that acknowledges each message exactly once, in order (line numbers 1..n, none of them
"duplicate": a message taken twice would be answered duplicate by the ledger), the
invalid line rejected with its reason and dead letter, the three non-containers with
their reason and nothing taken from them; and the topic, read with
isolation.level=read_committed, holds every (key, version) of the valid messages and
nothing else.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_common as fc  # noqa: E402

TEMPLATE = (
    '{"header":{"schema":"atx/2","messageId":"00000000-0000-4000-9000-%012d","sentAt":'
    '"2026-03-29T06:30:00.000+00:00","system":"ATHENA","orgUnit":"ESX/CID/COLCHESTER"},'
    '"record":{"type":"PERSON","id":"P%010d","revision":%d,"action":"UPSERT","modifiedAt":'
    '"2026-03-29T07:13:00.000+01:00","marking":{"classification":"OFFICIAL","handling":"P",'
    '"caveat":null},"retention":{"mopiGroup":2,"reviewDate":"2036-03-29"},"body":{"surname":'
    '"Drop-%d","forenames":["Jane"]}},"links":[]}')


def message(i, entities):
    entity, revision = i % entities, i // entities + 1
    return TEMPLATE % (i, entity + 1, revision, revision), (entity + 1, revision)


def drop(directory, name, data):
    """Write elsewhere (a dot name the daemon ignores), then rename in."""
    tmp = os.path.join(directory, "." + name + ".part")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(directory, name))


def read_result(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default=os.environ.get("POLEGATE_KAFKA_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--per-file", type=int, default=1000)
    ap.add_argument("--max-kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    run = uuid.uuid4().hex[:8]
    topic, dlq_topic = "dropdir.kill.%s.pole.v1" % run, "dropdir.kill.%s.dlq.v1" % run
    work = tempfile.mkdtemp(prefix="pg-dropdir-kill-")
    indir = os.path.join(work, "in")
    os.mkdir(indir)
    failures = []
    daemon = None
    try:
        fc.create_topic(args.brokers, topic)
        fc.create_topic(args.brokers, dlq_topic, compact=False)
        port = fc.free_port()
        config = os.path.join(work, "gateway.yaml")
        fc.write_config(config, "ESX", port, os.path.join(work, "store"), args.brokers, topic,
                        dlq_topic, directory=indir)
        daemon = fc.Daemon(polegated, config, port, os.path.join(work, "polegated.log"))
        daemon.start()

        total = args.files * args.per_file
        entities = total // 2  # two revisions of each record
        files, expected = {}, set()
        bad_file = "f-%04d.ndjson" % (args.files // 2)
        for k in range(args.files):
            lines = []
            for j in range(args.per_file):
                text, kv = message(k * args.per_file + j, entities)
                if k == args.files // 2 and j == 7:
                    text = text.replace('"revision":', '"revisionx":')  # invalid
                else:
                    expected.add((fc.entity_id("ESX", "P%010d" % kv[0]), kv[1]))
                lines.append(text)
            files["f-%04d.ndjson" % k] = ("\n".join(lines) + "\n").encode()
        specials = {
            "f-0003a-binary.ndjson": bytes(rng.getrandbits(8) for _ in range(4096)) + b"\0",
            "f-0010a-nx5.ndjson": b'<?xml version="1.0"?>\n<NX5Exchange Force="ESX"/>\n',
            "f-0020a-empty.ndjson": b"",
        }
        order = sorted(list(files) + list(specials))

        def feed():
            for name in order:
                drop(indir, name, files.get(name, specials.get(name)))
                time.sleep(rng.uniform(0.01, 0.06))

        feeder = threading.Thread(target=feed)
        feeder.start()
        kills = 0
        t0 = time.monotonic()

        def left():
            return [n for n in os.listdir(indir) if not n.startswith(".")
                    and os.path.isfile(os.path.join(indir, n))]

        while (feeder.is_alive() or left()) and time.monotonic() - t0 < 240:
            time.sleep(rng.uniform(0.2, 0.7))
            if kills < args.max_kills and (feeder.is_alive() or left()):
                daemon.kill9()
                kills += 1
                daemon.start()
        feeder.join()
        if left():
            failures.append("files still waiting after 240 s: %s" % left()[:5])

        done, failed = os.path.join(indir, "done"), os.path.join(indir, "failed")
        for name in order:
            where = failed if name in specials or name == bad_file else done
            if not os.path.exists(os.path.join(where, name)):
                failures.append("%s not in %s/" % (name, os.path.basename(where)))
                continue
            result = read_result(os.path.join(where, name + ".result"))
            last = result[-1] if result else {}
            if name in specials:
                if len(result) != 1 or last.get("status") != "rejected" or \
                        not last.get("reason", "").startswith("file: "):
                    failures.append("%s: result %s" % (name, result))
                continue
            lines = [r.get("line") for r in result[:-1]]
            if lines != list(range(1, args.per_file + 1)):
                failures.append("%s: result lines %s... (each message once, in order)"
                                % (name, lines[:10]))
            dup = [r for r in result[:-1] if r.get("duplicate")]
            if dup:
                failures.append("%s: %d messages taken twice (duplicate), e.g. %s"
                                % (name, len(dup), dup[0]))
            rejected = [r for r in result[:-1] if r.get("status") != "accepted"]
            if name == bad_file:
                if len(rejected) != 1 or rejected[0].get("line") != 8 or \
                        "record.revision" not in rejected[0].get("reason", "") or \
                        not rejected[0].get("dead_letter"):
                    failures.append("%s: rejected %s" % (name, rejected))
                if last.get("status") != "failed" or last.get("rejected") != 1:
                    failures.append("%s: last line %s" % (name, last))
            elif rejected or last.get("status") != "done" or \
                    last.get("accepted") != args.per_file:
                failures.append("%s: rejected %s, last line %s" % (name, rejected[:2], last))
        if kills == 0:
            failures.append("the files were all taken before any kill")

        reader = fc.TopicReader(args.brokers, topic)
        drain_s = reader.read_until(expected, timeout=180)
        lost = expected - reader.seen
        extra = reader.seen - expected
        reader.close()
        with open(os.path.join(work, "polegated.log"), encoding="utf-8", errors="replace") as f:
            resumed = sum(1 for line in f if "resuming after position" in line)
        rc = daemon.terminate()
        if rc != 0:
            failures.append("polegated exited with %s on SIGTERM" % rc)
        if lost:
            failures.append("%d records not in Kafka, e.g. %s" % (len(lost), sorted(lost)[:3]))
        if extra:
            failures.append("%d unexpected records in Kafka, e.g. %s"
                            % (len(extra), sorted(extra)[:3]))
        fc.write_figures(args.build_dir, "dropdir_kill", {
            "seed": args.seed, "kills": kills, "files": len(order), "files_resumed": resumed,
            "messages": total, "records_expected": len(expected),
            "records_found": len(expected & reader.seen), "records_lost": len(lost),
            "duplicates_seen_by_consumer": reader.duplicates,
            "seconds": round(time.monotonic() - t0, 1), "drain_seconds": round(drain_s, 1),
            "passed": not failures})
    except Exception as e:  # noqa: BLE001  (report, then clean up)
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if daemon:
            daemon.kill9()
        fc.keep_or_remove("dropdir_kill", work, failures, args.keep, 40)
    return fc.report("dropdir_kill", failures)


if __name__ == "__main__":
    sys.exit(main())
