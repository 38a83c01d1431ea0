#!/usr/bin/env python3
"""bench/compare_connect.py: the body of bench/compare-connect (run it through that script,
which resolves Kafka Connect and the broker).

In one run, on one generated ATX corpus (bench/corpus.c, via bench_translate) and one
broker:
1. translate only: bench_translate's "ATX decode + protobuf pack" rate (one core), the
   ceiling polegated's other figures are compared to;
2. polegated end to end: bench_e2e send (ZeroMQ, 256 in flight) until a read_committed
   consumer has read every record the acks announced (transactions, acks=all,
   idempotent, fsync per group commit on the disk of TMPDIR);
3. Kafka Connect standalone, FileStreamSource -> the same broker, values passed through
   untranslated (StringConverter), acks=all, idempotent: its default producer, then a
   tuned one. Timed from the first record a consumer reads to the last (JVM start-up
   and connector start excluded).
2 and 3 run --rounds times (default 3), interleaved (polegated, Connect default, Connect
tuned, then again), so that a busy moment of the machine falls on all three alike; each
round has fresh topics, store and Connect offsets. The median of each counts, and the
ratio is of the medians.
Peak RSS of each process is sampled every 50 ms from /proc: anonymous memory apart from
file-backed pages (polegated's LMDB map, the JVM's jars); the highest of the rounds.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid


class Peak:
    """Samples /proc/PID/status until stopped; keeps the peaks of RssAnon and RssFile."""

    def __init__(self, pid):
        self.pid, self.anon, self.file = pid, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                with open("/proc/%d/status" % self.pid, encoding="ascii") as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            self.anon = max(self.anon, int(line.split()[1]))
                        elif line.startswith("RssFile:"):
                            self.file = max(self.file, int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.05)

    def done(self):
        self.stop.set()
        self.thread.join()
        return self.anon / 1024.0, self.file / 1024.0


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def translate_only(build, n, corpus):
    out = subprocess.run([os.path.join(build, "bench", "bench_translate"), "--records", str(n),
                          "--rounds", "3", "--write-corpus", corpus],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"\| ATX decode \+ protobuf pack +\| +[\d.]+ \| +(\d+) \|", out)
    if not m:
        sys.exit("compare-connect: no translate rate in bench_translate's output:\n" + out)
    # SECRET is never shared (docs/policy.md): 5% of the corpus would be withheld, and
    # the comparison is about moving every record. The translate rate is of the corpus
    # as generated; the marking does not change its cost.
    with open(corpus, "rb") as f:
        data = f.read()
    with open(corpus, "wb") as f:
        f.write(data.replace(b'"classification": "SECRET"', b'"classification": "OFFICIAL-SENSITIVE"'))
    return float(m.group(1))


def run_polegated(args, corpus, topic, rnd):
    store = os.path.join(args.work, "store-%d" % rnd)
    port = free_port()
    config = os.path.join(args.work, "polegated-%d.yaml" % rnd)
    with open(config, "w", encoding="utf-8") as f:
        f.write("force: {code: ESX}\nadapter: {name: athena}\n"
                "intake: {endpoint: 'tcp://127.0.0.1:%d'}\n"
                "curve: {insecure: true}\n"  # loopback: the bench measures the pipeline
                "store: {path: '%s', map_size: 4GiB}\n"
                "kafka: {brokers: '%s'}\nlog: {level: info}\n"
                "policy:\n  version: BENCH-1\n"
                "  agreements: [{name: ISA-BENCH, description: bench},\n"
                "               {name: ISA-BENCH-C, description: handling C}]\n"
                "  destinations:\n"
                "    - {name: national, kind: national, topic: %s, agreement: ISA-BENCH,\n"
                "       max_classification: OFFICIAL-SENSITIVE, kinds: all,\n"
                "       allow_handling_c: true, handling_c_agreement: ISA-BENCH-C}\n"
                % (port, store, args.brokers, topic))
    log = open(os.path.join(args.work, "polegated-%d.log" % rnd), "w", encoding="utf-8")
    proc = subprocess.Popen([os.path.join(args.build_dir, "gateway", "polegated"), "--config",
                             config], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    peak = Peak(proc.pid)
    import socket
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    # A DELETE is followed by its tombstone, which no ack announces.
    with open(corpus, "rb") as f:
        deletes = sum(1 for line in f if b'"action": "DELETE"' in line)
    out = subprocess.run([os.path.join(args.build_dir, "bench", "bench_e2e"), "send",
                          "--endpoint", "tcp://127.0.0.1:%d" % port, "--brokers", args.brokers,
                          "--topic", topic, "--tombstones", str(deletes), corpus],
                         capture_output=True, text=True)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    anon, file = peak.done()
    fields = dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)
    if "msg_per_s" not in fields:
        sys.exit("compare-connect: bench_e2e send failed:\n%s%s" % (out.stdout, out.stderr))
    # The daemon's last counter line (commits, transactions, removals, re-sends).
    counters = ""
    with open(log.name, encoding="utf-8", errors="replace") as f:
        for line in f:
            if "messages" in line and " received, " in line:
                counters = line.strip()
    return {"msg_per_s": float(fields["msg_per_s"]), "records": int(fields["records"]),
            "messages": int(fields["messages"]), "rejected": int(fields["rejected"]),
            "seconds": float(fields["readable_s"]), "acked": float(fields["acked_s"]),
            "rss_anon": anon, "rss_file": file, "counters": counters}


def run_connect(args, corpus, topic, n, tuned, rnd):
    from confluent_kafka import Consumer

    name = "%s-%d" % ("tuned" if tuned else "default", rnd)
    worker = os.path.join(args.work, "worker-%s.properties" % name)
    with open(worker, "w", encoding="utf-8") as f:
        f.write("bootstrap.servers=%s\n"
                "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
                "value.converter=org.apache.kafka.connect.storage.StringConverter\n"
                "offset.storage.file.filename=%s\n"
                "offset.flush.interval.ms=10000\n"
                "listeners=http://127.0.0.1:%d\n"
                "producer.acks=all\nproducer.enable.idempotence=true\n"
                % (args.brokers, os.path.join(args.work, "offsets-%s" % name), free_port()))
        if tuned:
            f.write("producer.linger.ms=20\nproducer.batch.size=1048576\n"
                    "producer.buffer.memory=134217728\nproducer.compression.type=lz4\n")
    source = os.path.join(args.work, "source-%s.properties" % name)
    with open(source, "w", encoding="utf-8") as f:
        f.write("name=atx-file-%s\nconnector.class=FileStreamSource\ntasks.max=1\n"
                "file=%s\ntopic=%s\n" % (name, corpus, topic))
        if tuned:
            f.write("batch.size=20000\n")
    consumer = Consumer({"bootstrap.servers": args.brokers, "group.id": "cmp-%s" % uuid.uuid4(),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([topic])
    consumer.consume(num_messages=1, timeout=3.0)  # joined, at the start
    log = open(os.path.join(args.work, "connect-%s.log" % name), "w", encoding="utf-8")
    # The heap of Kafka's own bin/connect-standalone.sh.
    proc = subprocess.Popen(["java", "-Xms256M", "-Xmx2G", "-XX:+UseG1GC",
                             "-Dlog4j.configuration=file:%s" % args.log4j, "-cp",
                             os.path.join(args.connect_lib, "*"),
                             "org.apache.kafka.connect.cli.ConnectStandalone", worker, source],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    peak = Peak(proc.pid)
    seen, t_first, t_last = 0, None, None
    deadline = time.monotonic() + 600
    while seen < n and time.monotonic() < deadline and proc.poll() is None:
        msgs = consumer.consume(num_messages=10000, timeout=0.2)
        got = sum(1 for m in msgs if not m.error())
        if got:
            now = time.monotonic()
            t_first = t_first or now
            t_last = now
            seen += got
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    anon, file = peak.done()
    consumer.close()
    if seen < n:
        sys.exit("compare-connect: Connect (%s) delivered %d of %d records (log %s)"
                 % (name, seen, n, log.name))
    secs = max(t_last - t_first, 1e-3)
    return {"msg_per_s": (seen - 1) / secs, "records": seen, "seconds": secs,
            "rss_anon": anon, "rss_file": file}


def median(runs, key):
    return sorted(r[key] for r in runs)[len(runs) // 2]


def spread(runs, key):
    vals = sorted(r[key] for r in runs)
    return "%.0f (%s)" % (median(runs, key), " ".join("%.0f" % v for v in vals))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--connect-lib", required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--log4j", required=True)
    args = ap.parse_args()
    corpus = os.path.join(args.work, "corpus.ndjson")
    translate = translate_only(args.build_dir, args.records, corpus)
    with open(corpus, "rb") as f:
        lines = sum(1 for _ in f)
    run = uuid.uuid4().hex[:8]
    load0 = os.getloadavg()
    pgs, cds, cts = [], [], []
    for rnd in range(args.rounds):
        topics = {k: "pg-compare-%s-%d-%s" % (run, rnd, k)
                  for k in ("polegated", "connect", "tuned")}
        for t in topics.values():
            subprocess.run([os.path.join(args.build_dir, "bench", "bench_e2e"), "create",
                            "--brokers", args.brokers, "--topic", t, "--partitions", "3"],
                           check=True, capture_output=True)
        pgs.append(run_polegated(args, corpus, topics["polegated"], rnd))
        shutil.rmtree(os.path.join(args.work, "store-%d" % rnd), ignore_errors=True)
        cds.append(run_connect(args, corpus, topics["connect"], lines, False, rnd))
        cts.append(run_connect(args, corpus, topics["tuned"], lines, True, rnd))
    load = os.getloadavg()
    pg_rate, cd_rate, ct_rate = (median(r, "msg_per_s") for r in (pgs, cds, cts))
    pg_anon = max(r["rss_anon"] for r in pgs)
    cd_anon = max(r["rss_anon"] for r in cds)
    ct_anon = max(r["rss_anon"] for r in cts)
    print("compare-connect: %d ATX messages (%.1f MB), %d cores, %d rounds, load average %.1f "
          "at the start, %.1f %.1f %.1f at the end, broker %s, %s"
          % (lines, os.path.getsize(corpus) / 1e6, os.cpu_count(), args.rounds, load0[0],
             load[0], load[1], load[2], args.brokers, time.strftime("%Y-%m-%d", time.gmtime())))
    print()
    print("| run | msg/s: median (each round) | records | seconds (median) | "
          "peak RssAnon MiB | peak RssFile MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("| translate only (ATX decode + protobuf pack, one core) | %.0f | | | | |" % translate)
    print("| polegated (translated, transactions, write-ahead log synced per group; until "
          "read_committed readable) | %s | %d (%d rejected msgs) | %.1f | %.0f | %.0f |"
          % (spread(pgs, "msg_per_s"), pgs[0]["records"], pgs[0]["rejected"],
             median(pgs, "seconds"), pg_anon, max(r["rss_file"] for r in pgs)))
    print("| Connect standalone, default producer (untranslated; first to last record) | %s "
          "| %d | %.1f | %.0f | %.0f |" % (spread(cds, "msg_per_s"), cds[0]["records"],
                                           median(cds, "seconds"), cd_anon,
                                           max(r["rss_file"] for r in cds)))
    print("| Connect standalone, tuned producer (linger 20 ms, 1 MiB batches, lz4) | %s | %d "
          "| %.1f | %.0f | %.0f |" % (spread(cts, "msg_per_s"), cts[0]["records"],
                                       median(cts, "seconds"), ct_anon,
                                       max(r["rss_file"] for r in cts)))
    print()
    for rnd, pg in enumerate(pgs):
        print("polegated round %d: every message acked after %.1f s, every record readable "
              "after %.1f s; %s" % (rnd + 1, pg["acked"], pg["seconds"],
                                    re.sub(r"^.*?polegated \w+: ", "", pg["counters"])))
    print()
    print("ratios: polegated / translate only %.3f; polegated / Connect tuned %.3f; "
          "polegated RssAnon / Connect's %.3f (default) %.3f (tuned)"
          % (pg_rate / translate, pg_rate / ct_rate, pg_anon / cd_anon, pg_anon / ct_anon))
    print("polegated %.0f msg/s, connect %.0f msg/s, ratio %.3f"
          % (pg_rate, cd_rate, pg_rate / cd_rate))


if __name__ == "__main__":
    main()
