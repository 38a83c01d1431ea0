#!/usr/bin/env python3
"""tests/integration/load_resume.py: `polegate load` (docs/cli.md#load) into a running
polegated and on to the real broker.

1. An NDJSON file (every record two revisions, two invalid lines) is loaded by a
   `polegate load` killed with SIGKILL twice part-way, then run again with the same
   arguments to its end. Pass: it resumed from its state file (not from the start),
   exit 1 (some rejected), the rejects file names exactly the two invalid lines with
   their reasons, the summary counts every message once, and the topic read with
   isolation.level=read_committed holds every (key, version) exactly once.
2. A run again with the same arguments sends nothing (loaded already).
3. The progress output on a terminal (a pty): a line redrawn in place with records,
   rate, ETA and rejected; off a terminal: plain lines, no carriage returns.
4. No daemon: exit 2 with the reason; usage errors: exit 2.
5. Under CURVE (the key options of `polegate send`): loaded with the RMS's key; with a
   key the daemon does not allow, no answer, exit 2.
"""

import argparse
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_common as fc  # noqa: E402
from dropdir_kill import TEMPLATE  # noqa: E402


def write_corpus(path, count, entities, invalid, base=0):
    """count messages, entity i % entities at revision i // entities + 1; the lines in
    invalid (1-based) lose their revision. Returns the expected (key, version) set."""
    expected = set()
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            entity, revision = i % entities + 1 + base, i // entities + 1
            text = TEMPLATE % (i + base * 10, entity, revision, revision)
            if i + 1 in invalid:
                text = text.replace('"revision":', '"revisionx":')
            else:
                expected.add((fc.entity_id("ESX", "P%010d" % entity), revision))
            f.write(text + "\n")
    return expected


def read_state(path):
    with open(path, encoding="ascii") as f:
        return dict(line.split(" ", 1) for line in f.read().splitlines()[1:])


def run_pty(cmd):
    """Run cmd with standard error on a pty; (exit status, what it wrote there)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait()
    os.close(master)
    return proc.returncode, out.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default=os.environ.get("POLEGATE_KAFKA_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--count", type=int, default=60000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    run = uuid.uuid4().hex[:8]
    topic, dlq_topic = "load.resume.%s.pole.v1" % run, "load.resume.%s.dlq.v1" % run
    work = tempfile.mkdtemp(prefix="pg-load-resume-")
    failures = []
    daemon = None
    try:
        fc.create_topic(args.brokers, topic)
        fc.create_topic(args.brokers, dlq_topic, compact=False)
        port = fc.free_port()
        endpoint = "tcp://127.0.0.1:%d" % port
        config = os.path.join(work, "gateway.yaml")
        fc.write_config(config, "ESX", port, os.path.join(work, "store"), args.brokers, topic,
                        dlq_topic)
        daemon = fc.Daemon(polegated, config, port, os.path.join(work, "polegated.log"))
        daemon.start()

        # 1. killed twice, then to the end.
        corpus = os.path.join(work, "initial.ndjson")
        invalid = {1234, args.count - 3}
        expected = write_corpus(corpus, args.count, args.count // 2, invalid)
        cmd = [polegate, "load", "--to", endpoint, "--window", "128", "--no-progress", corpus]
        state_path = corpus + ".load-state"
        offsets = []
        for _ in range(2):
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            before = int(read_state(state_path)["offset"]) if os.path.exists(state_path) else 0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
                if os.path.exists(state_path) and \
                        int(read_state(state_path)["offset"]) > before + 200000:
                    break
            if proc.poll() is not None:
                failures.append("load ended (%s) before it could be killed" % proc.returncode)
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            offsets.append(int(read_state(state_path)["offset"]))
        final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if final.returncode != 1:
            failures.append("the resumed load exited %s, not 1 (two rejected):\n%s"
                            % (final.returncode, final.stderr[-2000:]))
        m = re.search(r"resuming after position (\d+) \(byte (\d+)\)", final.stderr)
        if not m or not offsets or int(m.group(2)) != offsets[-1] or int(m.group(2)) == 0:
            failures.append("the load did not resume from its state (offsets %s): %s"
                            % (offsets, final.stderr[:500]))
        summary = "%s: %d messages: %d accepted" % (corpus, args.count, args.count - 2)
        if summary not in final.stdout or ", 2 rejected (in %s.rejects)" % corpus not in final.stdout:
            failures.append("summary: %r, expected %r" % (final.stdout, summary))
        with open(corpus + ".rejects", encoding="utf-8") as f:
            rejects = f.read().splitlines()
        got = sorted(int(line.split(" ", 1)[0].rsplit(":", 1)[1]) for line in rejects)
        if got != sorted(invalid) or any("record.revision" not in r for r in rejects):
            failures.append("rejects file: %s" % rejects)
        state = read_state(state_path)
        if state.get("complete") != "1" or int(state["accepted"]) != args.count - 2:
            failures.append("state at the end: %s" % state)

        reader = fc.TopicReader(args.brokers, topic)
        reader.read_until(expected, timeout=180)
        lost, extra = expected - reader.seen, reader.seen - expected
        reader.close()
        if lost:
            failures.append("%d records not in Kafka, e.g. %s" % (len(lost), sorted(lost)[:3]))
        if extra:
            failures.append("%d unexpected records in Kafka" % len(extra))
        if reader.duplicates:
            failures.append("%d records twice in Kafka" % reader.duplicates)

        # 2. loaded already: nothing sent again.
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if again.returncode != 1 or "loaded already" not in again.stderr or \
                "this run 0 in" not in again.stdout:
            failures.append("run again after the end: %s %r %r"
                            % (again.returncode, again.stdout, again.stderr))

        # 3. progress on a terminal and off one.
        small = os.path.join(work, "small.ndjson")
        write_corpus(small, 3000, 3000, set(), base=500000)
        rc, tty = run_pty([polegate, "load", "--to", endpoint, small])
        if rc != 0 or not re.search(r"\r\x1b\[Kload .*small\.ndjson: \d+ records \(\d+\.\d%\), "
                                    r"\d+/s(, ETA \d+:\d\d:\d\d)?, 0 rejected", tty) or \
                not tty.endswith("\n"):
            failures.append("progress on a terminal (exit %s): %r" % (rc, tty[-400:]))
        os.unlink(small + ".load-state")
        plain = subprocess.run([polegate, "load", "--to", endpoint, small], capture_output=True,
                               text=True, timeout=60)
        if plain.returncode != 0 or "\r" in plain.stderr or \
                not re.search(r"^load .*small\.ndjson: 3000 records \(100\.0%\), \d+/s, 0 rejected$",
                              plain.stderr, re.M):
            failures.append("progress off a terminal (exit %s): %r"
                            % (plain.returncode, plain.stderr[-400:]))

        # 4. no daemon; usage errors.
        daemon.terminate()
        os.unlink(small + ".load-state")
        none = subprocess.run([polegate, "load", "--to", endpoint, "--timeout-ms", "1000", small],
                              capture_output=True, text=True, timeout=60)
        if none.returncode != 2 or "no answer from %s" % endpoint not in none.stderr:
            failures.append("no daemon: %s %r" % (none.returncode, none.stderr))
        for bad in (["load", small], ["load", "--to", endpoint, "-"],
                    ["load", "--to", endpoint, "--window", "0", small]):
            r = subprocess.run([polegate] + bad, capture_output=True, text=True, timeout=30)
            if r.returncode != 2:
                failures.append("%s: exit %s, not 2" % (bad, r.returncode))
        # 5. CURVE.
        keys = os.path.join(work, "keys")
        os.mkdir(keys, 0o700)
        pubs = {}
        for name in ("gateway", "rms", "stranger"):
            r = subprocess.run([polegate, "keygen", os.path.join(keys, name)],
                               capture_output=True, text=True, check=True, timeout=30)
            pubs[name] = r.stdout.strip()
        with open(os.path.join(keys, "intake-clients"), "w", encoding="ascii") as f:
            f.write("%s load-test-rms\n" % pubs["rms"])
        port = fc.free_port()
        endpoint = "tcp://127.0.0.1:%d" % port
        config = os.path.join(work, "curve.yaml")
        fc.write_config(config, "ESX", port, os.path.join(work, "store-curve"), args.brokers,
                        topic, dlq_topic,
                        curve="{secret_key_file: '%s/gateway.key', intake_clients_file: "
                              "'%s/intake-clients'}" % (keys, keys))
        daemon = fc.Daemon(polegated, config, port, os.path.join(work, "polegated-curve.log"))
        daemon.start()
        server = ["--server-key", os.path.join(keys, "gateway.pub")]
        stranger = subprocess.run(
            [polegate, "load", "--to", endpoint, "--timeout-ms", "1000", "--state",
             os.path.join(work, "stranger.state"), "--secret-key",
             os.path.join(keys, "stranger.key")] + server + [small],
            capture_output=True, text=True, timeout=60)
        if stranger.returncode != 2 or "no answer from" not in stranger.stderr:
            failures.append("CURVE, a key not allowed: %s %r"
                            % (stranger.returncode, stranger.stderr))
        allowed = subprocess.run(
            [polegate, "load", "--to", endpoint, "--no-progress", "--state",
             os.path.join(work, "curve.state"), "--secret-key",
             os.path.join(keys, "rms.key")] + server + [small],
            capture_output=True, text=True, timeout=120)
        if allowed.returncode != 0 or "3000 messages: 3000 accepted" not in allowed.stdout:
            failures.append("CURVE, the RMS's key: %s %r %r"
                            % (allowed.returncode, allowed.stdout, allowed.stderr[-500:]))
        daemon.terminate()
    except Exception as e:  # noqa: BLE001  (report, then clean up)
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if daemon:
            daemon.kill9()
        fc.keep_or_remove("load_resume", work, failures, args.keep, 30)
    return fc.report("load_resume", failures)


if __name__ == "__main__":
    sys.exit(main())
