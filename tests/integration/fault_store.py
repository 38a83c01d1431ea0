#!/usr/bin/env python3
"""tests/integration/fault_store.py: fault test 5, the store's own failures (issue 13).

Against the shared broker, with polegated and `polegate store`:

1. a flipped byte: one byte of the stored topic name of a destination is changed in
   data.mdb. `polegate store check` reports the damaged value; polegated refuses to
   start, naming the store, the database and the key, and publishes nothing (the topic
   the flipped name spells is never created);
2. a policy whose destinations changed under the same policy.version: polegated
   refuses to start with a configuration error, nothing withdrawn;
3. a new policy version that would withdraw every record the destination holds:
   polegated waits before opening its intake until `polegate store confirm`, then
   withdraws;
4. a full disk (a tmpfs of the test's own; skipped with a message when mounts are not
   allowed, test_intake's test_disk_full_retry_then_recovers injects the same error):
   the intake answers retry with one reason, "disk full: ...", counted, and recovers by
   itself when space returns; every acknowledged record reaches Kafka.

Figures: <build>/fault-figures/fault_store.json.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_common as fc  # noqa: E402


def flip(path, marker):
    """Change the last byte of every copy of marker in the file; the copies changed."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        n, i = 0, data.find(marker)
        while i >= 0:
            data[i + len(marker) - 1] ^= 0x01
            n += 1
            i = data.find(marker, i + 1)
        f.seek(0)
        f.write(data)
    return n


def run(cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def topics(brokers):
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": brokers}).list_topics(timeout=30).topics)


def feed(fault_load, daemon, work, count, tag, **kw):
    """Send count messages, wait for every final ack; the set of (key, version) accepted."""
    ack_log, out = os.path.join(work, "acks-%s.log" % tag), os.path.join(work, "load-%s.out" % tag)
    load = fc.start_load(fault_load, daemon.port, count, ack_log, out, **kw)
    load.wait(timeout=kw.get("timeout_s", 120) + 60)
    result = fc.load_result(out)
    expected, _, _ = fc.read_acks(ack_log, "ESX")
    return expected, result


def published(brokers, topic, expected, timeout=60):
    reader = fc.TopicReader(brokers, topic)
    reader.read_until(expected, timeout=timeout)
    reader.close()
    return reader


def log_since(log, offset):
    with open(log, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return f.read()


def start_refused(daemon, log):
    """Start polegated expecting it to refuse: (whether it started, what it logged)."""
    before = os.path.getsize(log)
    started = False
    try:
        daemon.start(timeout=20)
        started = True
        daemon.terminate()
    except RuntimeError:
        pass
    return started, log_since(log, before)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default=os.environ.get("POLEGATE_KAFKA_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    fault_load = os.path.join(args.build_dir, "tests", "integration", "fault_load")
    run_id = uuid.uuid4().hex[:8]
    work = tempfile.mkdtemp(prefix="pg-fault-store-")
    failures, figures, daemon, mounted = [], {}, None, None
    try:
        # ---- 1. a flipped byte in the stored topic name of a destination
        topic = "fault.store.%s.pole.v1" % run_id
        dlq_topic = "fault.store.%s.dlq.v1" % run_id
        fc.create_topic(args.brokers, topic)
        fc.create_topic(args.brokers, dlq_topic, compact=False)
        port = fc.free_port()
        store = os.path.join(work, "store")
        config = os.path.join(work, "gateway.yaml")
        fc.write_config(config, "ESX", port, store, args.brokers, topic, dlq_topic)
        log = os.path.join(work, "polegated.log")
        daemon = fc.Daemon(polegated, config, port, log)
        daemon.start()
        expected, _ = feed(fault_load, daemon, work, 200, "a")
        if len(expected) != 200:
            failures.append("flip: %d of 200 accepted" % len(expected))
        reader = published(args.brokers, topic, expected)
        if expected - reader.seen:
            failures.append("flip: %d records not published" % len(expected - reader.seen))
        if daemon.terminate() != 0:
            failures.append("flip: polegated did not stop cleanly")
        check = run([polegate, "store", "check", store])
        if check.returncode != 0 or ": ok," not in check.stdout:
            failures.append("store check of a sound store: %d %s" % (check.returncode, check.stdout))
        flipped_topic = topic[:-1] + chr(ord(topic[-1]) ^ 1)
        copies = flip(os.path.join(store, "data.mdb"), topic.encode())
        check = run([polegate, "store", "check", store])
        if check.returncode != 1 or "DAMAGED" not in check.stdout or \
                "database router.meta, key policy: checksum mismatch" not in check.stdout:
            failures.append("store check of a damaged store: %d %s %s"
                            % (check.returncode, check.stdout, check.stderr))
        started, said = start_refused(daemon, log)
        if started:
            failures.append("flip: polegated started on a damaged store")
        want = "store %s damaged: database router.meta, key policy: checksum mismatch" % store
        if want not in said:
            failures.append("flip: the refusal does not say %r: %s" % (want, said[-600:]))
        time.sleep(1)
        if flipped_topic in topics(args.brokers):
            failures.append("flip: something was published to %s" % flipped_topic)
        figures["flip"] = {"copies_changed": copies, "store_check_exit": check.returncode,
                           "refused": want in said}

        # ---- 2. same policy.version, other destinations
        store2 = os.path.join(work, "store2")
        port = fc.free_port()
        fc.write_config(config, "ESX", port, store2, args.brokers, topic, dlq_topic)
        daemon = fc.Daemon(polegated, config, port, log)
        daemon.start()
        expected, _ = feed(fault_load, daemon, work, 100, "b", entities=100)
        published(args.brokers, topic, expected)
        daemon.terminate()
        other = "fault.store.%s.other.v1" % run_id
        fc.write_config(config, "ESX", port, store2, args.brokers, other, dlq_topic)
        started, said = start_refused(daemon, log)
        if started:
            failures.append("same version: polegated started")
        if "policy.version FAULT-1 did not change but its destinations did" not in said:
            failures.append("same version: not refused as such: %s" % said[-600:])

        # ---- 3. a new version withdrawing everything waits for the operator
        fc.write_config(config, "ESX", port, store2, args.brokers, topic, dlq_topic)
        with open(config, encoding="utf-8") as f:
            text = f.read().replace("version: FAULT-1", "version: FAULT-2").replace(
                "kinds: all", "kinds: [vehicle]")
        with open(config, "w", encoding="utf-8") as f:
            f.write(text)
        before = os.path.getsize(log)
        out = open(log, "a", encoding="utf-8")
        proc = subprocess.Popen([polegated, "--config", config], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        out.close()
        waited = False
        for _ in range(100):
            time.sleep(0.1)
            if "waiting for the operator" in log_since(log, before):
                waited = True
                break
        listening = False
        try:
            with fc.socket.create_connection(("127.0.0.1", port), timeout=0.5):
                listening = True
        except OSError:
            pass
        if not waited or listening or proc.poll() is not None:
            failures.append("withdrawal: waited %s, listening %s, exit %s"
                            % (waited, listening, proc.poll()))
        confirm = run([polegate, "store", "confirm", store2, "FAULT-2"])
        if confirm.returncode != 0:
            failures.append("store confirm: %s" % confirm.stderr)
        daemon = fc.Daemon(polegated, config, port, log)
        daemon.proc = proc
        for _ in range(100):
            try:
                with fc.socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    listening = True
                    break
            except OSError:
                time.sleep(0.1)
        said = log_since(log, before)
        m = re.search(r"policy FAULT-2: (\d+) records withdrawn", said)
        if not listening or not m or int(m.group(1)) != 100:
            failures.append("withdrawal after confirm: listening %s, %s"
                            % (listening, m.group(0) if m else said[-400:]))
        daemon.terminate()
        figures["withdrawal"] = {"waited": waited, "withdrawn": int(m.group(1)) if m else 0}

        # ---- 4. a full disk
        disk = os.path.join(work, "disk")
        os.makedirs(disk)
        mount = run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", disk])
        if mount.returncode != 0:
            print("fault_store: disk full part not run: cannot mount a tmpfs (%s); "
                  "test_intake injects the error instead" % mount.stderr.strip())
            figures["disk_full"] = "not run: no mount"
        else:
            mounted = disk
            store3 = os.path.join(disk, "store")
            port = fc.free_port()
            fc.write_config(config, "ESX", port, store3, args.brokers, topic, dlq_topic,
                            extra="audit: {path: '%s'}\n" % os.path.join(work, "audit3.log"))
            with open(config, encoding="utf-8") as f:
                text = f.read().replace("audit: {fsync: batch}\n", "")
            with open(config, "w", encoding="utf-8") as f:
                f.write(text)
            daemon = fc.Daemon(polegated, config, port, log)
            daemon.start()
            before = os.path.getsize(log)
            ack_log, out_path = os.path.join(work, "acks-d.log"), os.path.join(work, "load-d.out")
            # The disk fills before the feed starts, so that its first groups meet it.
            filler = os.path.join(disk, "filler")
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            load = fc.start_load(fault_load, port, 4000, ack_log, out_path, entities=4000,
                                 window=50, resend_ms=1000, timeout_s=120)
            full_seen = False
            for _ in range(150):
                time.sleep(0.1)
                # The store's disk or its write-ahead log's (store3/wal), whichever
                # write meets it first: one reason either way.
                said_now = log_since(log, before)
                if ("disk full: the filesystem of store %s" % store3 in said_now or
                        "disk full: the filesystem of write-ahead log %s/wal" % store3 in said_now):
                    full_seen = True
                    break
            time.sleep(1.0)
            os.unlink(filler)
            load.wait(timeout=200)
            result = fc.load_result(out_path)
            expected, _, _ = fc.read_acks(ack_log, "ESX")
            reader = published(args.brokers, topic, expected, timeout=120)
            lost = expected - reader.seen
            rc = daemon.terminate()
            said = log_since(log, before)
            counted = re.findall(r"(\d+) disk full\)", said)
            disk_full = int(counted[-1]) if counted else 0
            if not full_seen:
                failures.append("disk full: no 'disk full' reason in the log")
            if "Input/output error" in said or "store: store:" in said:
                failures.append("disk full: another reason for the same cause in the log")
            if result.get("finished") != 4000:
                failures.append("disk full: the feed did not finish (no recovery?): %s" % result)
            if lost:
                failures.append("disk full: %d acknowledged records not in Kafka" % len(lost))
            if disk_full < 1 or rc != 0:
                failures.append("disk full: counter %d, exit %s" % (disk_full, rc))
            figures["disk_full"] = {"messages": 4000, "acknowledged": len(expected),
                                    "lost": len(lost), "retried_disk_full": disk_full,
                                    "reason_seen": full_seen}
        figures["passed"] = not failures
        fc.write_figures(args.build_dir, "fault_store", figures)
    except Exception as e:  # noqa: BLE001
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if daemon:
            daemon.kill9()
        if mounted:
            run(["umount", mounted])
        if failures:
            print(fc.tail(os.path.join(work, "polegated.log"), 30))
        if not args.keep and not failures:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("fault_store: run folder kept: %s" % work)
    for f in failures:
        print("FAIL: %s" % f)
    print("fault_store: %s" % ("ok" if not failures else "%d failures" % len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
