#!/usr/bin/env python3
"""tests/integration/fault_broker.py: fault test 2, the broker stops under load.

A broker of this test's own (the jars of scripts/kafka-local, other ports, its own data
folder, so that the shared broker other tests use never goes down) serves a polegated
whose spool is bounded to 2,000 records. fault_load streams 30,000 messages (10,000
entities, three revisions each, in order per entity). After 4 s the broker is stopped
(SIGTERM) for 35 s and started again on the same data; the daemon's RSS is sampled
every half second throughout.

Pass: the spool filled and intake answered "retry" with backpressure while the broker
was down; every acknowledged (key, version) is in the topic once the broker is back
(read_committed), no key goes back in version, peak RSS stays under 256 MiB, and the
daemon stops cleanly. Figures: <build>/fault-figures/fault_broker.json.
"""

import argparse
import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_common as fc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KAFKA_LOCAL = os.path.join(ROOT, "scripts", "kafka-local")
RSS_BOUND_KIB = 256 * 1024


class Broker:
    """A single-node KRaft broker run through `kafka-local tool kafka.Kafka`."""

    def __init__(self, work):
        self.dir = os.path.join(work, "broker")
        os.makedirs(self.dir)
        self.port, self.cport = fc.free_port(), fc.free_port()
        self.brokers = "127.0.0.1:%d" % self.port
        self.conf = os.path.join(self.dir, "server.properties")
        self.log = os.path.join(self.dir, "server.log")
        with open(self.conf, "w", encoding="ascii") as f:
            f.write("process.roles=broker,controller\nnode.id=1\n"
                    "controller.quorum.bootstrap.servers=127.0.0.1:%d\n"
                    "listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d\n"
                    "advertised.listeners=PLAINTEXT://127.0.0.1:%d\n"
                    "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
                    "log.dirs=%s\nnum.partitions=3\ndefault.replication.factor=1\n"
                    "min.insync.replicas=1\nauto.create.topics.enable=true\n"
                    "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=3\n"
                    "transaction.state.log.replication.factor=1\n"
                    "transaction.state.log.min.isr=1\ntransaction.state.log.num.partitions=3\n"
                    "share.coordinator.state.topic.replication.factor=1\n"
                    "share.coordinator.state.topic.min.isr=1\n"
                    "group.initial.rebalance.delay.ms=0\n"
                    % (self.cport, self.port, self.cport, self.port, os.path.join(self.dir, "data")))
        self.env = dict(os.environ, JAVA_TOOL_OPTIONS="-Xms256m -Xmx384m -XX:+UseSerialGC")
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # One id in 64 starts with "-": joined with "=", it is not taken for an option.
        subprocess.run([KAFKA_LOCAL, "tool", "kafka.tools.StorageTool", "format", "--standalone",
                        "--cluster-id=" + cluster, "-c", self.conf], check=True, env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        self.proc = None

    def start(self, timeout=120):
        from confluent_kafka.admin import AdminClient

        log = open(self.log, "a", encoding="utf-8")
        self.proc = subprocess.Popen([KAFKA_LOCAL, "tool", "kafka.Kafka", self.conf], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        admin = AdminClient({"bootstrap.servers": self.brokers, "log_level": 0})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the test broker exited:\n%s" % fc.tail(self.log))
            try:
                admin.list_topics(timeout=2)
                return
            except Exception:  # noqa: BLE001  (not up yet)
                time.sleep(0.5)
        raise RuntimeError("the test broker did not start:\n%s" % fc.tail(self.log))

    def stop(self, timeout=60):
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--count", type=int, default=30000)
    ap.add_argument("--entities", type=int, default=10000)
    ap.add_argument("--outage-s", type=float, default=35.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    fault_load = os.path.join(args.build_dir, "tests", "integration", "fault_load")
    work = tempfile.mkdtemp(prefix="pg-fault-broker-")
    failures = []
    broker = daemon = load = None
    try:
        broker = Broker(work)
        broker.start()
        topic, dlq_topic = "fault.broker.pole.v1", "fault.broker.dlq.v1"
        fc.create_topic(broker.brokers, topic)
        fc.create_topic(broker.brokers, dlq_topic, compact=False)
        port = fc.free_port()
        config = os.path.join(work, "gateway.yaml")
        fc.write_config(config, "ESX", port, os.path.join(work, "store"), broker.brokers, topic,
                        dlq_topic, extra="spool: {max_records: 2000, max_bytes: 8MiB}\n")
        daemon = fc.Daemon(polegated, config, port, os.path.join(work, "polegated.log"))
        daemon.start()
        ack_log, load_out = os.path.join(work, "acks.log"), os.path.join(work, "load.out")
        load = fc.start_load(fault_load, port, args.count, ack_log, load_out,
                             entities=args.entities, window=200, resend_ms=3000, timeout_s=400)
        rss = []

        def sample(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                rss.append(daemon.rss_kib())
                time.sleep(0.5)

        sample(4.0)
        broker.stop()
        t_down = time.monotonic()
        sample(args.outage_s)
        rss_outage = max(rss) if rss else 0
        outage_expected, _, _ = fc.read_acks(ack_log, "ESX")
        broker.start()
        t_up = time.monotonic()
        outage_s = t_up - t_down
        reader = fc.TopicReader(broker.brokers, topic)
        drain_s = reader.read_until(outage_expected, timeout=180)
        while load.poll() is None:
            sample(1.0)
        result = fc.load_result(load_out)
        if load.returncode != 0 or result.get("finished") != args.count:
            failures.append("the feed did not finish: %s" % result)
        expected, rejected, stale = fc.read_acks(ack_log, "ESX")
        reader.read_until(expected, timeout=180)
        lost = expected - reader.seen
        reader.close()
        rc = daemon.terminate()
        if rc != 0:
            failures.append("polegated exited with %s on SIGTERM" % rc)
        if lost:
            failures.append("%d acknowledged records not in Kafka, e.g. %s"
                            % (len(lost), sorted(lost)[:5]))
        if outage_expected - reader.seen:
            failures.append("the backlog of the outage did not drain within 180 s")
        if not result.get("backpressure"):
            failures.append("no backpressure ack while the broker was down")
        if reader.order_violations:
            failures.append("%d records below a version already seen for their key"
                            % reader.order_violations)
        peak = max(rss) if rss else 0
        if peak > RSS_BOUND_KIB:
            failures.append("peak RSS %d KiB over the bound of %d KiB" % (peak, RSS_BOUND_KIB))
        fc.write_figures(args.build_dir, "fault_broker", {
            "outage_seconds": round(outage_s, 1), "messages_sent": result.get("sends"),
            "retry_acks": result.get("retries"), "backpressure_acks": result.get("backpressure"),
            "records_acknowledged": len(expected),
            "records_acknowledged_before_broker_back": len(outage_expected),
            "records_found": len(expected & reader.seen), "records_lost": len(lost),
            "duplicates_seen_by_consumer": reader.duplicates, "acks_stale": stale,
            "drain_seconds_after_broker_back": round(drain_s, 1),
            "feed_seconds": round(result.get("elapsed_ms", 0) / 1000.0, 1),
            "peak_rss_kib": peak, "peak_rss_kib_during_outage": rss_outage,
            "spool_max_records": 2000, "passed": not failures})
    except Exception as e:  # noqa: BLE001
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if load and load.poll() is None:
            load.kill()
        if daemon:
            daemon.kill9()
        if broker:
            broker.stop()
        if failures:
            print(fc.tail(os.path.join(work, "polegated.log"), 40))
        if not args.keep and not failures:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("fault_broker: run folder kept: %s" % work)
    for f in failures:
        print("FAIL: %s" % f)
    print("fault_broker: %s" % ("ok" if not failures else "%d failures" % len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
