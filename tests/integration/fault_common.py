"""tests/integration/fault_common.py: what the fault tests share: a polegated under test
(config, start, kill -9, RSS), the fault_load feed and its ack log, and a
read_committed reader that counts distinct (key, version) on a topic."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:polegate:pole:v1")


def entity_id(force, native_id):
    return str(uuid.uuid5(NAMESPACE, "%s/ATHENA/PERSON/%s" % (force, native_id)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def keep_or_remove(name, work, failures, keep, log_lines=30):
    """After a run: on failure show the end of polegated's log and keep the run folder
    for the post-mortem; on success remove it unless --keep asked for it."""
    if failures:
        print(tail(os.path.join(work, "polegated.log"), log_lines))
    if not keep and not failures:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("%s: run folder kept: %s" % (name, work))


def report(name, failures):
    """Print each failure and the verdict; the exit status for main()."""
    for f in failures:
        print("FAIL: %s" % f)
    print("%s: %s" % (name, "ok" if not failures else "%d failures" % len(failures)))
    return 1 if failures else 0


def create_topic(brokers, topic, partitions=3, compact=True):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})
    config = {"cleanup.policy": "compact"} if compact else {}
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                            replication_factor=1, config=config)])
    futures[topic].result(timeout=60)


def write_config(path, force, port, store, brokers, topic, dlq_topic, extra="", directory=None,
                 curve="{insecure: true}"):
    intake_dir = ", directory: '%s'" % directory if directory else ""
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "# a fault test's gateway, generated per run\n"
            "force: {code: %s}\n"
            "adapter: {name: athena}\n"
            "intake: {endpoint: 'tcp://127.0.0.1:%d'%s}\n"
            "curve: %s\n"
            "store: {path: '%s', map_size: 512MiB}\n"
            "kafka: {brokers: '%s'}\n"
            "dlq: {topic: %s}\n"
            "audit: {fsync: batch}\n"
            "log: {level: info}\n"
            "%s"
            "policy:\n  version: FAULT-1\n"
            "  agreements: [{name: ISA-FAULT, description: fault tests}]\n"
            "  destinations:\n"
            "    - {name: national, kind: national, topic: %s, agreement: ISA-FAULT,\n"
            "       max_classification: OFFICIAL-SENSITIVE, kinds: all}\n"
            % (force, port, intake_dir, curve, store, brokers, dlq_topic, extra, topic))


class Daemon:
    """polegated in its own session, its log appended to one file across restarts."""

    def __init__(self, polegated, config, port, log_path):
        self.polegated, self.config, self.port, self.log_path = polegated, config, port, log_path
        self.proc = None
        self.starts = 0

    def start(self, timeout=30.0):
        log = open(self.log_path, "a", encoding="utf-8")
        self.proc = subprocess.Popen([self.polegated, "--config", self.config],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("polegated exited with %s:\n%s"
                                   % (self.proc.returncode, tail(self.log_path)))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("polegated not listening after %.0fs:\n%s"
                           % (timeout, tail(self.log_path)))

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout=60):
        """SIGTERM; the exit status (None when it had to be killed)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.proc.pid, encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, AttributeError):
            pass
        return 0


def start_load(fault_load, port, count, ack_log, out_path, entities=0, force="ESX",
               invalid_every=0, window=200, resend_ms=3000, timeout_s=300):
    cmd = [fault_load, "--to", "tcp://127.0.0.1:%d" % port, "--count", str(count),
           "--entities", str(entities or count), "--force", force,
           "--invalid-every", str(invalid_every), "--window", str(window),
           "--resend-ms", str(resend_ms), "--timeout-s", str(timeout_s), "--ack-log", ack_log]
    out = open(out_path, "w", encoding="utf-8")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out.close()
    return proc


def load_result(out_path):
    with open(out_path, encoding="utf-8") as f:
        lines = [line for line in f if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def read_acks(ack_log, force):
    """(expected {(key, version)}, rejected [(index, dead letter id, message id)],
    stale count) from fault_load's ack log."""
    expected, rejected, stale = set(), [], 0
    with open(ack_log, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if not line.endswith("\n") or len(parts) < 4:
                continue  # the feed is still writing this line
            if parts[1] == "accepted":
                if int(parts[4]) > 0:
                    stale += 1  # an older revision than one already published
                    continue
                expected.add((entity_id(force, parts[2]), int(parts[3])))
            else:
                rejected.append((int(parts[0]), int(parts[2]), parts[3]))
    return expected, rejected, stale


class TopicReader:
    """Reads a topic from the beginning with isolation.level=read_committed and keeps
    every (key, pg-version), the records per key in order, and the headers/values of
    records that carry no pg-version (dead letters)."""

    def __init__(self, brokers, topic):
        from confluent_kafka import Consumer

        self.topic = topic
        self.consumer = Consumer({"bootstrap.servers": brokers,
                                  "group.id": "fault-%s" % uuid.uuid4(),
                                  "auto.offset.reset": "earliest",
                                  "enable.auto.commit": False,
                                  "isolation.level": "read_committed",
                                  "enable.partition.eof": True})
        self.consumer.subscribe([topic])
        self.seen = set()
        self.records = 0
        self.duplicates = 0
        self.per_key = {}
        self.order_violations = 0
        self.others = []
        self.at_end = set()  # partitions read to their end (until a record arrives)

    def poll(self, seconds):
        """Read for up to seconds; True when every assigned partition is at its end."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None:
                assigned = self.consumer.assignment()
                if assigned and len(self.at_end) >= len(assigned):
                    return True
                continue
            if msg.error():
                if msg.error().code() == -191:  # _PARTITION_EOF
                    self.at_end.add(msg.partition())
                continue
            self.at_end.discard(msg.partition())
            self.records += 1
            headers = dict((k, v.decode() if v is not None else None)
                           for k, v in (msg.headers() or []))
            key = msg.key().decode() if msg.key() else None
            if "pg-version" not in headers:
                self.others.append((key, headers, msg.value()))
                continue
            if msg.value() is None:
                continue  # a tombstone repeats its delete's key and version
            kv = (key, int(headers["pg-version"]))
            if kv in self.seen:
                self.duplicates += 1
                continue
            self.seen.add(kv)
            # A version a consumer has not seen must be above the highest it holds.
            if kv[1] < self.per_key.get(key, 0):
                self.order_violations += 1
            self.per_key[key] = max(kv[1], self.per_key.get(key, 0))
        return False

    def read_until(self, expected, timeout):
        """Poll until every expected (key, version) was seen and the topic is read to its
        end, or timeout; seconds taken."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            at_end = self.poll(1.0)
            if expected <= self.seen and at_end:
                break
        return time.monotonic() - t0

    def close(self):
        self.consumer.close()


def logged_resends(log_path):
    """Records polegated said it sent again ("kafka: sending N records again"), summed
    over every start whose log went to log_path."""
    total = 0
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.search(r"kafka: sending (\d+) records again", line)
            if m:
                total += int(m.group(1))
    return total


def write_figures(build_dir, name, figures):
    path = os.path.join(build_dir, "fault-figures")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=1, sort_keys=True)
    print("%s: %s" % (name, json.dumps(figures, sort_keys=True)))
