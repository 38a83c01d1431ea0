#!/usr/bin/env python3
"""tests/integration/ops_metrics.py: the metrics and health endpoint of a running
polegated, held against the daemon's own counter line and against what a consumer
reads.

1. polegated (ESX, athena, `metrics.listen` on a free port, one `national`
   destination and a dead-letter topic of this run) takes 300 ATX messages from
   fault_load, every 10th invalid. Once the spool is empty, /metrics must say: 270
   accepted, 30 rejected, as many records published to `national` as a read_committed
   consumer finds on its topic, as many dead-letter records as are on the dead-letter
   topic, the same transactions and records as the SIGUSR1 counter line, 270 `collect`
   and `disclose` audit events, a publish latency observed; `promtool check metrics`
   passes; /healthz and /readyz answer 200, anything else 404; `polegate status`
   prints the same figures.
2. A second polegated pointed at a broker that is not there answers /healthz 200 and
   /readyz 503 with the reason (no producer id), which `polegate status` prints.
3. A metrics.listen that is already bound stops the start with the reason; one that is
   not HOST:PORT fails --check-config.

Exit 0 when every check passes, 1 with the list of failures.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_common as fc  # noqa: E402

COUNT = 300
INVALID_EVERY = 10


def write_config(path, port, mport, store, brokers, topic, dlq_topic, partner=""):
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "# ops_metrics: generated per run\n"
            "force: {code: ESX}\n"
            "adapter: {name: athena}\n"
            "intake: {endpoint: 'tcp://127.0.0.1:%d'}\n"
            "curve: {insecure: true}\n"
            "store: {path: '%s', map_size: 256MiB}\n"
            "kafka: {brokers: '%s', properties: {message.timeout.ms: 5000}}\n"
            "dlq: {topic: %s}\n"
            "metrics: {listen: '127.0.0.1:%d'}\n"
            "%s"
            "policy:\n  version: OPS-M-1\n"
            "  agreements: [{name: ISA-OPS, description: ops tests}]\n"
            "  destinations:\n"
            "    - {name: national, kind: national, topic: %s, agreement: ISA-OPS,\n"
            "       max_classification: OFFICIAL-SENSITIVE, kinds: all}\n"
            % (port, store, brokers, dlq_topic, mport,
               ("delivery: {transport: dir, endpoint: '%s', group_id: '%s'}\n"
                % (partner[1], partner[2])) if partner else "",
               topic)
            + ("  partners:\n    - {force: MER, topic: %s, agreement: ISA-OPS}\n" % partner[0]
               if partner else ""))


def get(mport, path):
    """(status, body) of GET path."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (mport, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse(text):
    """{(name, frozenset(labels)): value} of the exposition text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if not m:
            raise ValueError("not a sample line: %r" % line)
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def count_records(brokers, topic, want, timeout=60.0):
    """Records (tombstones included) on topic, read_committed, once want are there."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": brokers, "group.id": "ops-%s" % uuid.uuid4(),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.subscribe([topic])
    n, deadline, idle_since = 0, time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                if n >= want:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 2:
                        break  # nothing more came: no surplus records either
                continue
            if not msg.error():
                n += 1
                idle_since = None
    finally:
        c.close()
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default=os.environ.get("POLEGATE_KAFKA_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    fault_load = os.path.join(args.build_dir, "tests", "integration", "fault_load")
    promtool = shutil.which("promtool")
    run = uuid.uuid4().hex[:8]
    topic, dlq_topic = "ops.metrics.%s.pole.v1" % run, "ops.metrics.%s.dlq.v1" % run
    partner_topic = "ops.metrics.%s.mer.pole.v1" % run
    work = tempfile.mkdtemp(prefix="pg-ops-metrics-")
    failures = []
    daemons = []

    def check(what, ok, detail=""):
        print("%s: %s%s" % ("ok" if ok else "FAIL", what, (" (%s)" % detail) if detail else ""))
        if not ok:
            failures.append(what + ((" (%s)" % detail) if detail else ""))

    try:
        check("promtool is installed (scripts/install-deps)", promtool is not None)
        fc.create_topic(args.brokers, topic)
        fc.create_topic(args.brokers, dlq_topic, compact=False)
        # A partner topic with 4 tombstones (skipped: compaction's business) and 3 records
        # that claim to be entity updates and are not (rejected). A record with a value
        # and no pg-type is rejected too (test_partner).
        fc.create_topic(args.brokers, partner_topic, partitions=2)
        from confluent_kafka import Producer

        prod = Producer({"bootstrap.servers": args.brokers})
        for i in range(4):
            prod.produce(partner_topic, key=b"k%d" % i, value=None)
        for i in range(3):
            prod.produce(partner_topic, key=b"e%d" % i, value=b"\xff\xff junk",
                         headers=[("pg-type", b"polegate.pole.v1.EntityUpdate"),
                                  ("pg-origin-force", b"MER")])
        check("7 records on the partner topic", prod.flush(30) == 0)
        drop = os.path.join(work, "rms-import")
        os.mkdir(drop)
        port, mport = fc.free_port(), fc.free_port()
        config = os.path.join(work, "gateway.yaml")
        write_config(config, port, mport, os.path.join(work, "store"), args.brokers, topic,
                     dlq_topic, partner=(partner_topic, drop, "ops-metrics-%s" % run))
        daemon = fc.Daemon(polegated, config, port, os.path.join(work, "polegated.log"))
        daemons.append(daemon)
        daemon.start()

        ack_log, load_out = os.path.join(work, "acks.log"), os.path.join(work, "load.out")
        fc.start_load(fault_load, port, COUNT, ack_log, load_out, invalid_every=INVALID_EVERY,
                      timeout_s=120).wait(timeout=180)
        expected, rejected, _ = fc.read_acks(ack_log, "ESX")
        valid, invalid = COUNT - COUNT // INVALID_EVERY, COUNT // INVALID_EVERY
        check("the feed: %d accepted, %d rejected" % (valid, invalid),
              len(expected) == valid and len(rejected) == invalid)

        # Until the spool is empty and every dead letter is out.
        samples, text = {}, ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, text = get(mport, "/metrics")
            samples = parse(text)
            if (status == 200 and val(samples, "polegate_spool_records") == 0 and
                    val(samples, "polegate_dead_letter_records_published_total") == invalid):
                break
            time.sleep(0.3)
        mark = len(open(daemon.log_path, encoding="utf-8").read())
        daemon.proc.send_signal(signal.SIGUSR1)
        line = None
        for _ in range(100):
            tail = open(daemon.log_path, encoding="utf-8").read()[mark:]
            line = next((x for x in tail.splitlines() if "SIGUSR1: messages" in x), None)
            if line:
                break
            time.sleep(0.1)
        status, text = get(mport, "/metrics")
        samples = parse(text)
        with open(os.path.join(work, "metrics.txt"), "w", encoding="utf-8") as f:
            f.write(text)

        nums = dict((k, int(v)) for v, k in re.findall(
            r"(\d+) (received|accepted|rejected|retry|commits|transactions|aborted)", line or ""))
        recs = re.search(r"kafka (\d+) records", line or "")
        check("the SIGUSR1 counter line", line is not None and recs is not None, line)
        m_acc = val(samples, "polegate_intake_messages_total", outcome="accepted")
        m_dup = val(samples, "polegate_intake_messages_total", outcome="duplicate")
        m_rej = val(samples, "polegate_intake_messages_total", outcome="rejected")
        check("accepted = the counter line's = the feed's",
              m_acc + m_dup == nums.get("accepted") == valid, "%s+%s" % (m_acc, m_dup))
        check("rejected = the counter line's = the feed's",
              m_rej == nums.get("rejected") == invalid, m_rej)
        check("commits = the counter line's",
              val(samples, "polegate_intake_commits_total") == nums.get("commits"))
        check("transactions committed = the counter line's",
              val(samples, "polegate_kafka_transactions_total", result="committed") ==
              nums.get("transactions"))
        published = val(samples, "polegate_published_records_total", destination="national")
        dlq_published = val(samples, "polegate_dead_letter_records_published_total")
        check("records published = the counter line's kafka records",
              recs is not None and published + dlq_published == int(recs.group(1)),
              "%s + %s" % (published, dlq_published))
        on_topic = count_records(args.brokers, topic, int(published or 0))
        check("records published to national = records a consumer reads",
              published == on_topic == valid, "%s metric, %s read" % (published, on_topic))
        on_dlq = count_records(args.brokers, dlq_topic, invalid)
        check("dead letters published = records on the dead-letter topic",
              dlq_published == on_dlq == invalid, "%s metric, %s read" % (dlq_published, on_dlq))
        check("audit collect and disclose events = accepted",
              val(samples, "polegate_audit_events_total", action="collect") == valid and
              val(samples, "polegate_audit_events_total", action="disclose") == valid)
        lat = val(samples, "polegate_publish_latency_seconds_count")
        check("publish latency observed", lat is not None and lat > 0, lat)
        for _ in range(300):  # the partner thread hands its figures over about once a second
            if (val(samples, "polegate_partner_consumer_lag", topic=partner_topic) == 0 and
                    val(samples, "polegate_partner_updates_total", outcome="rejected") == 3 and
                    val(samples, "polegate_dead_letters") == invalid + 3):
                break
            time.sleep(0.2)
            samples = parse(get(mport, "/metrics")[1])
        check("partner: 4 records skipped, 3 rejected",
              val(samples, "polegate_partner_updates_total", outcome="skipped") == 4 and
              val(samples, "polegate_partner_updates_total", outcome="rejected") == 3,
              [(k, v) for k, v in samples.items() if k[0] == "polegate_partner_updates_total"])
        check("partner: consumer lag 0 on the partner topic once read",
              val(samples, "polegate_partner_consumer_lag", topic=partner_topic) == 0,
              [(k, v) for k, v in samples.items() if k[0] == "polegate_partner_consumer_lag"])
        # The 3 partner records that could not be read are partner dead letters too.
        check("dead letters kept = rejected + the partner's 3",
              val(samples, "polegate_dead_letters") == invalid + 3,
              val(samples, "polegate_dead_letters"))
        ratio = val(samples, "polegate_store_used_ratio")
        check("store used ratio in (0, intake limit)", ratio is not None and 0 < ratio <
              (val(samples, "polegate_store_intake_limit_ratio") or 0), ratio)
        check("spool empty", val(samples, "polegate_spool_records") == 0 and
              val(samples, "polegate_spool_bytes") == 0)
        check("build info", any(k[0] == "polegate_build_info" and ("force", "ESX") in k[1] and
                                v == 1 for k, v in samples.items()))
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                               capture_output=True)
            check("promtool check metrics", p.returncode == 0, (p.stdout + p.stderr).strip())
        check("/healthz 200", get(mport, "/healthz") == (200, "ok\n"))
        check("/readyz 200 ready (the partner consumer is in its group)",
              get(mport, "/readyz") == (200, "ready\n"))
        check("/other 404", get(mport, "/other")[0] == 404)
        # A reload with a new policy version restarts the partner service under it: it
        # joins its group again and the gateway is ready again.
        with open(config, encoding="utf-8") as f:
            text = f.read()
        with open(config, "w", encoding="utf-8") as f:
            f.write(text.replace("version: OPS-M-1", "version: OPS-M-2"))
        mark = len(open(daemon.log_path, encoding="utf-8").read())
        daemon.proc.send_signal(signal.SIGHUP)
        ready_again = False
        for _ in range(300):
            tail = open(daemon.log_path, encoding="utf-8").read()[mark:]
            if ("policy OPS-M-2 (was OPS-M-1)" in tail and
                    "partner: consuming 1 partner topic(s)" in tail and
                    get(mport, "/readyz") == (200, "ready\n")):
                ready_again = True
                break
            time.sleep(0.2)
        check("SIGHUP with a new policy version: the partner service restarts and rejoins",
              ready_again, fc.tail(daemon.log_path, 8))
        samples = parse(get(mport, "/metrics")[1])
        check("partner counters carried across the restart (4 skipped, 3 rejected)",
              val(samples, "polegate_partner_updates_total", outcome="skipped") == 4 and
              val(samples, "polegate_partner_updates_total", outcome="rejected") == 3)
        polegate = os.path.join(args.build_dir, "cli", "polegate")
        p = subprocess.run([polegate, "status", "--config", config, "--interval", "1"],
                           capture_output=True, text=True, timeout=30)
        check("polegate status: ready, exit 0", p.returncode == 0 and
              "polegated ESX " in p.stdout and ": ready\n" in p.stdout, p.stdout + p.stderr)
        check("polegate status: published per destination and totals",
              re.search(r"published national +[0-9.]+ records/s, %d since start" % valid,
                        p.stdout) is not None and
              "since start %d accepted, 0 duplicate, %d rejected" % (valid, invalid) in p.stdout and
              "spool     0 records, 0 bytes waiting" in p.stdout and
              "dead letters %d kept" % (invalid + 3) in p.stdout and "last publish" in p.stdout,
              p.stdout)
        rc = daemon.terminate()
        check("SIGTERM: exit 0", rc == 0)
        p = subprocess.run([polegate, "status", "--url", "http://127.0.0.1:%d" % mport],
                           capture_output=True, text=True, timeout=30)
        check("polegate status: a stopped gateway cannot be reached, exit 1",
              p.returncode == 1 and "cannot reach polegated" in p.stderr, p.stderr)

        # 2. No broker: alive, not ready, and says why.
        port2, mport2 = fc.free_port(), fc.free_port()
        config2 = os.path.join(work, "nobroker.yaml")
        write_config(config2, port2, mport2, os.path.join(work, "store2"), "127.0.0.1:1", topic,
                     dlq_topic)
        d2 = fc.Daemon(polegated, config2, port2, os.path.join(work, "nobroker.log"))
        daemons.append(d2)
        d2.start()
        time.sleep(1.0)
        check("no broker: /healthz 200", get(mport2, "/healthz")[0] == 200)
        status, body = get(mport2, "/readyz")
        check("no broker: /readyz 503 with the reason",
              status == 503 and "no producer id" in body, body.strip())
        samples = parse(get(mport2, "/metrics")[1])
        check("no broker: polegate_ready 0", val(samples, "polegate_ready") == 0)
        p = subprocess.run([polegate, "status", "--url", "http://127.0.0.1:%d/" % mport2,
                            "--interval", "0"], capture_output=True, text=True, timeout=30)
        check("polegate status: NOT READY with the reason, exit 1", p.returncode == 1 and
              "NOT READY: kafka: the producer has no producer id yet" in p.stdout, p.stdout)

        # 3. The port is taken (by d2's endpoint); a listen that is not HOST:PORT.
        config3 = os.path.join(work, "taken.yaml")
        write_config(config3, fc.free_port(), mport2, os.path.join(work, "store3"),
                     args.brokers, topic, dlq_topic)
        p = subprocess.run([polegated, "--config", config3], capture_output=True, text=True,
                           timeout=30)
        check("a bound metrics.listen stops the start with the reason",
              p.returncode == 1 and "metrics.listen 127.0.0.1:%d: cannot serve" % mport2 in p.stderr,
              p.stderr.strip()[-300:])
        with open(config3, encoding="utf-8") as f:
            bad = f.read().replace("'127.0.0.1:%d'" % mport2, "'localhost'")
        with open(config3, "w", encoding="utf-8") as f:
            f.write(bad)
        p = subprocess.run([polegated, "--config", config3, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        check("metrics.listen without a port fails --check-config",
              p.returncode == 1 and "metrics.listen: 'localhost' is not HOST:PORT" in p.stderr,
              p.stderr.strip())
    except Exception as e:  # noqa: BLE001  a failure of the harness is a failure
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        for d in daemons:
            d.kill9()
        if failures and daemons:
            print(fc.tail(daemons[0].log_path, 30))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("ops_metrics: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
