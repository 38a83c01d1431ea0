#!/usr/bin/env python3
"""tests/integration/ops_signals.py: what each signal does to a running polegated.

polegated (ESX, athena, one `national` destination on a fresh topic of this run, no
persons allowed) takes 40 persons from fault_load, then gets, in turn:

- SIGUSR1: logs its counter line (40 received) and keeps running;
- SIGUSR2, SIGALRM, SIGPWR, SIGXFSZ, SIGRTMIN+3: each logged as ignored, and it keeps
  running; SIGPIPE: ignored;
- SIGHUP with a file that fails --check-config: refused with the reason, the running
  configuration stays (the persons stay withheld: nothing on the topic);
- SIGHUP with policy version 2, where `national` may now receive persons (version 1
  withheld them): every live person is published (the start-up reconcile's
  newly-allowed rule), and a changed restart-only key is named in a warning;
- SIGHUP with policy version 3, persons withheld again: more than
  store.max_withdraw_percent of what national holds, so the reload is refused until
  `polegate store confirm`; after it every person it holds is withdrawn (DELETE and
  tombstone on the topic, read back by a read_committed consumer);
- SIGTERM: drains and exits 0.

Exit 0 when every check passes, 1 with the list of failures.
"""

import argparse
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

COUNT = 40


def write_config(path, port, store, brokers, topic, dlq_topic, version, kinds, group_commit=256,
                 extra=""):
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "# ops_signals: generated per step\n"
            "force: {code: ESX}\n"
            "adapter: {name: athena}\n"
            "intake: {endpoint: 'tcp://127.0.0.1:%d'}\n"
            "curve: {insecure: true}\n"
            "store: {path: '%s', map_size: 256MiB}\n"
            "kafka: {brokers: '%s'}\n"
            "spool: {group_commit: %d}\n"
            "dlq: {topic: %s}\n"
            "log: {level: info}\n"
            "%s"
            "policy:\n  version: %s\n"
            "  agreements: [{name: ISA-OPS, description: ops tests}]\n"
            "  destinations:\n"
            "    - {name: national, kind: national, topic: %s, agreement: ISA-OPS,\n"
            "       max_classification: OFFICIAL-SENSITIVE, kinds: %s}\n"
            % (port, store, brokers, group_commit, dlq_topic, extra, version, topic, kinds))


def log_text(daemon):
    with open(daemon.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def wait_log(daemon, needle, since, timeout=30.0):
    """The log after offset since, once it holds needle (None after timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_text(daemon)[since:]
        if needle in text:
            return text
        if daemon.proc.poll() is not None:
            return None
        time.sleep(0.1)
    return None


def read_topic(brokers, topic, want, timeout=60.0):
    """{key: [(operation, version, tombstone)]} read_committed from the start, until want
    (a predicate on it) holds or timeout."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": brokers, "group.id": "ops-%s" % uuid.uuid4(),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.subscribe([topic])
    seen = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not want(seen):
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            h = dict((k, v.decode() if v is not None else None) for k, v in (msg.headers() or []))
            seen.setdefault(msg.key().decode(), []).append(
                (h.get("pg-operation"), int(h.get("pg-version", "0")), msg.value() is None))
    finally:
        c.close()
    return seen


def count_ops(seen, op, tombstone=False):
    return sum(1 for recs in seen.values() for r in recs if r[0] == op and r[2] == tombstone)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default=os.environ.get("POLEGATE_KAFKA_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    fault_load = os.path.join(args.build_dir, "tests", "integration", "fault_load")
    run = uuid.uuid4().hex[:8]
    topic, dlq_topic = "ops.signals.%s.pole.v1" % run, "ops.signals.%s.dlq.v1" % run
    work = tempfile.mkdtemp(prefix="pg-ops-signals-")
    failures = []
    daemon = None

    def check(what, ok):
        print("%s: %s" % ("ok" if ok else "FAIL", what))
        if not ok:
            failures.append(what)

    try:
        fc.create_topic(args.brokers, topic)
        fc.create_topic(args.brokers, dlq_topic, compact=False)
        port = fc.free_port()
        config, store = os.path.join(work, "gateway.yaml"), os.path.join(work, "store")
        write_config(config, port, store, args.brokers, topic, dlq_topic, "OPS-1",
                     "[vehicle, location]")
        daemon = fc.Daemon(polegated, config, port, os.path.join(work, "polegated.log"))
        daemon.start()

        ack_log, load_out = os.path.join(work, "acks.log"), os.path.join(work, "load.out")
        fc.start_load(fault_load, port, COUNT, ack_log, load_out, timeout_s=60).wait(timeout=90)
        expected, _, _ = fc.read_acks(ack_log, "ESX")
        check("the feed's %d persons accepted" % COUNT, len(expected) == COUNT)
        persons = set(k for k, _ in expected)

        mark = len(log_text(daemon))
        daemon.proc.send_signal(signal.SIGUSR1)
        text = wait_log(daemon, "SIGUSR1: messages", mark)
        check("SIGUSR1 logs the counter line", text is not None and
              ("SIGUSR1: messages %d received, %d accepted" % (COUNT, COUNT)) in text)

        for sig in (signal.SIGUSR2, signal.SIGALRM, signal.SIGPWR, signal.SIGXFSZ,
                    signal.SIGRTMIN + 3):
            mark = len(log_text(daemon))
            daemon.proc.send_signal(sig)
            text = wait_log(daemon, "signal %d (" % sig, mark)
            check("signal %d logged as ignored" % sig, text is not None and "ignored" in text)
            check("still running after signal %d" % sig, daemon.proc.poll() is None)

        daemon.proc.send_signal(signal.SIGPIPE)  # ignored outright: no line, no stop
        time.sleep(0.3)
        check("still running after SIGPIPE", daemon.proc.poll() is None)

        # A file that fails --check-config: refused with the reason, nothing changes.
        saved = open(config, encoding="utf-8").read()
        with open(config, "a", encoding="utf-8") as f:
            f.write("metrix: {listen: 1}\n")
        mark = len(log_text(daemon))
        daemon.proc.send_signal(signal.SIGHUP)
        text = wait_log(daemon, "reload refused", mark)
        check("a bad file is refused with its reason", text is not None and
              "unknown section 'metrix'" in text and "the running configuration stays" in text)
        check("still running after the refused reload", daemon.proc.poll() is None)
        check("nothing published under OPS-1 (persons withheld)",
              not read_topic(args.brokers, topic, lambda s: False, timeout=3))
        with open(config, "w", encoding="utf-8") as f:
            f.write(saved)

        # Policy OPS-2: persons allowed -> the reconcile publishes every live person.
        write_config(config, port, store, args.brokers, topic, dlq_topic, "OPS-2", "all",
                     group_commit=64)
        mark = len(log_text(daemon))
        daemon.proc.send_signal(signal.SIGHUP)
        text = wait_log(daemon, "reloaded", mark)
        check("SIGHUP applies policy OPS-2", text is not None and
              "policy OPS-2 (was OPS-1)" in text)
        check("the reconcile publishes the %d persons OPS-1 withheld" % COUNT,
              text is not None and "%d newly allowed published" % COUNT in text)
        check("a restart-only change is named", text is not None and
              "spool.group_commit changed: it takes effect at the next start" in text)
        seen = read_topic(args.brokers, topic, lambda s: count_ops(s, "UPSERT") >= COUNT)
        check("every person on the topic", persons == set(seen) and
              count_ops(seen, "UPSERT") == COUNT)

        # Policy OPS-3: no persons again -> each is withdrawn (DELETE + tombstone). That
        # is more than store.max_withdraw_percent of what national holds: the reload is
        # refused until the operator confirms this version.
        write_config(config, port, store, args.brokers, topic, dlq_topic, "OPS-3",
                     "[vehicle, location]", group_commit=64)
        mark = len(log_text(daemon))
        daemon.proc.send_signal(signal.SIGHUP)
        text = wait_log(daemon, "not applied", mark)
        check("SIGHUP of OPS-3 waits for the operator", text is not None and
              "polegate store confirm %s OPS-3" % store in text)
        polegate = os.path.join(args.build_dir, "cli", "polegate")
        confirm = subprocess.run([polegate, "store", "confirm", store, "OPS-3"],
                                 capture_output=True, text=True, timeout=60)
        check("polegate store confirm", confirm.returncode == 0)
        mark = len(log_text(daemon))
        daemon.proc.send_signal(signal.SIGHUP)
        text = wait_log(daemon, "reloaded", mark)
        check("SIGHUP applies policy OPS-3", text is not None and
              "policy OPS-3 (was OPS-2)" in text)
        check("the reconcile withdraws %d persons" % COUNT, text is not None and
              "%d records withdrawn" % COUNT in text)
        seen = read_topic(args.brokers, topic, lambda s: count_ops(s, "DELETE", True) >= COUNT)
        check("a DELETE and a tombstone per person on the topic",
              count_ops(seen, "DELETE") == COUNT and count_ops(seen, "DELETE", True) == COUNT)

        mark = len(log_text(daemon))
        rc = daemon.terminate()
        text = log_text(daemon)[mark:]
        check("SIGTERM drains and exits 0", rc == 0 and "stopping (Terminated)" in text)
    except Exception as e:  # noqa: BLE001  a failure of the harness is a failure
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if daemon:
            daemon.kill9()
        if failures and daemon:
            print(fc.tail(daemon.log_path, 40))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("ops_signals: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
