#!/usr/bin/env python3
"""tests/integration/audit_anchor.py: the audit log against someone who can write it.

polegated runs on the real broker with a keyed chain (audit.key_file) and signed
checkpoints (audit.signing_key_file) published to a fresh audit topic; records are
sent, the daemon stopped. Then the attacks: cutting events off the end, and rewriting
an event and re-keying the whole chain with the HMAC key (a stolen key, the signing
key not). `polegate audit verify` with the public key and the topic finds both; it
passes the untouched log; checkpoints signed by another key are not taken.

Exit 0 when every check passes, 1 with the failures otherwise."""

import argparse
import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import fault_common as fc  # noqa: E402

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "atx-burglary.ndjson")


def run(cmd, timeout=60):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def rekey(lines, key):
    """Re-hash every line with HMAC-SHA-256 as the daemon does (docs/policy.md)."""
    prev = "0" * 64
    out = []
    for line in lines:
        at = line.index(',"hash":"')
        canon = line[:at] + "}"
        h = hmac.new(key, (prev + canon).encode(), hashlib.sha256).hexdigest()
        out.append(line[:at] + ',"hash":"%s"}' % h)
        prev = h
    return out


def refused(polegated, cfg, timeout=30):
    """Start polegated; (exit status, output) when it exits by itself, or (None, output)
    when it is still running after timeout (then stopped)."""
    p = subprocess.Popen([polegated, "--config", cfg], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        p.terminate()
        out, _ = p.communicate(timeout=60)
        return None, out


def next_event(last):
    """An event to follow the event line last: a copy of it with the next seq (its
    hash is made again by rekey)."""
    head, rest = last.split(",", 1)
    return '{"seq":%d,%s' % (int(head.split(":")[1]) + 1, rest)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default="127.0.0.1:19092")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    work = tempfile.mkdtemp(prefix="pg-audit-anchor-")
    failures = []
    daemon = None
    try:
        run_id = uuid.uuid4().hex[:10]
        topic, dlq, audit_topic = ("pg.anchor.%s.pole" % run_id, "pg.anchor.%s.dlq" % run_id,
                                   "pg.anchor.%s.audit" % run_id)
        keys = os.path.join(work, "keys")
        os.mkdir(keys, 0o700)
        r = run([polegate, "audit", "keygen", keys])
        if r.returncode:
            raise RuntimeError("keygen: " + r.stderr)
        fc.create_topic(args.brokers, topic)
        fc.create_topic(args.brokers, audit_topic, partitions=1, compact=False)
        port = fc.free_port()
        store = os.path.join(work, "store")
        cfg = os.path.join(work, "esx.yaml")
        fc.write_config(cfg, "ESX", port, store, args.brokers, topic, dlq, extra=(
            "audit: {fsync: batch, key_file: '%s/audit-hmac.key', signing_key_file: "
            "'%s/audit-sign.key', topic: %s, checkpoint_interval_ms: 300}\n"
            % (keys, keys, audit_topic)))
        # write_config's own audit line would make a second `audit:` key: drop it
        text = open(cfg, encoding="utf-8").read().replace("audit: {fsync: batch}\n", "", 1)
        open(cfg, "w", encoding="utf-8").write(text)
        daemon = fc.Daemon(polegated, cfg, port, os.path.join(work, "daemon.log"))
        daemon.start()
        sent = run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % port, FIXTURE], 120)
        if sent.returncode:
            failures.append("send: %s %s" % (sent.stdout[-500:], sent.stderr[-500:]))
        if daemon.terminate() != 0:
            failures.append("daemon exit status:\n" + fc.tail(daemon.log_path))
        log = os.path.join(store, "audit.log")
        verify = [polegate, "audit", "verify", log, "--key", os.path.join(keys, "audit-hmac.key"),
                  "--public-key", os.path.join(keys, "audit-sign.pub"), "--topic", audit_topic,
                  "--brokers", args.brokers]
        r = run(verify)
        if r.returncode != 0 or "signed checkpoints hold" not in r.stdout:
            failures.append("untouched log: %d %s %s" % (r.returncode, r.stdout, r.stderr))
        if "checkpoint of event" not in open(daemon.log_path, encoding="utf-8").read():
            failures.append("no shutdown checkpoint in the daemon's log")
        lines = open(log, encoding="utf-8").read().splitlines()
        if len(lines) < 10:
            failures.append("only %d audit events" % len(lines))
        shutil.copy(log, log + ".orig")
        key = bytes.fromhex(open(os.path.join(keys, "audit-hmac.key")).read().strip())

        # Attack 1: cut the last three events off (the chain that is left is valid).
        open(log, "w", encoding="utf-8").write("\n".join(lines[:-3]) + "\n")
        r = run(verify[:6])
        if r.returncode != 0:
            failures.append("cut log, chain alone should pass: %s" % r.stderr)
        r = run(verify)
        if r.returncode != 1 or "events were cut off its end" not in r.stderr:
            failures.append("cut log not found: %d %s %s" % (r.returncode, r.stdout, r.stderr))

        # Attack 2: "withhold" -> "disclose" on one event, chain re-keyed with the key.
        edited = list(lines)
        i = next(n for n, ln in enumerate(edited) if '"action":"collect"' in ln)
        edited[i] = edited[i].replace('"action":"collect"', '"action":"erase"')
        open(log, "w", encoding="utf-8").write("\n".join(rekey(edited, key)) + "\n")
        r = run(verify[:6])
        if r.returncode != 0:
            failures.append("re-keyed log, chain alone should pass: %s" % r.stderr)
        r = run(verify)
        if r.returncode != 1 or "the log was rewritten" not in r.stderr:
            failures.append("rewritten log not found: %d %s %s" % (r.returncode, r.stdout,
                                                                   r.stderr))

        # A verifier given another public key finds no checkpoint it can trust.
        other = os.path.join(work, "other")
        os.mkdir(other, 0o700)
        run([polegate, "audit", "keygen", other])
        shutil.copy(log + ".orig", log)
        r = run(verify[:7] + [os.path.join(other, "audit-sign.pub")] + verify[8:])
        if r.returncode != 1 or "no checkpoint signed by" not in r.stderr:
            failures.append("foreign key: %d %s %s" % (r.returncode, r.stdout, r.stderr))

        # The daemon's start against the checkpoints: the untouched log starts.
        shutil.copy(log + ".orig", log)
        daemon.start()
        if daemon.terminate() != 0:
            failures.append("untouched log, restart: exit status:\n" + fc.tail(daemon.log_path))
        if "audit: the log holds the latest checkpoint on %s" % audit_topic not in open(
                daemon.log_path, encoding="utf-8").read():
            failures.append("untouched log: no check logged:\n" + fc.tail(daemon.log_path))
        # A log past its latest checkpoint (events written, then a crash before the next
        # checkpoint) starts.
        lines = open(log, encoding="utf-8").read().splitlines()
        ahead = rekey(lines + [next_event(lines[-1])], key)
        open(log, "w", encoding="utf-8").write("\n".join(ahead) + "\n")
        try:
            daemon.start()
        except RuntimeError as e:
            failures.append("log ahead of its checkpoint refused: %s" % e)
        if daemon.terminate() != 0:
            failures.append("log ahead, restart: exit status:\n" + fc.tail(daemon.log_path))
        # Its last three events cut off: refused, the log left as it was.
        lines = open(log, encoding="utf-8").read().splitlines()
        n = len(lines)
        open(log, "w", encoding="utf-8").write("\n".join(lines[:-3]) + "\n")
        before = open(log, "rb").read()
        rc, out = refused(polegated, cfg)
        want = ("cannot start: audit: %s ends at event %d but the checkpoint signed at "
                % (log, n - 3))
        if rc in (None, 0) or want not in out or (
                "holds event %d: events were cut off its end" % n) not in out:
            failures.append("cut log started: %s %s" % (rc, out[-1500:]))
        if open(log, "rb").read() != before:
            failures.append("cut log: the refused start changed it")
        # Cut and written on past the checkpoint (events of another chain there).
        cut = lines[:-3]
        for _ in range(4):
            cut.append(next_event(cut[-1]))
        open(log, "w", encoding="utf-8").write("\n".join(rekey(cut, key)) + "\n")
        rc, out = refused(polegated, cfg)
        if rc in (None, 0) or ("%s: event %d (of %d) is not the one the checkpoint signed at"
                               % (log, n, n + 1)) not in out or (
                "the log was rewritten, or cut short and written on") not in out:
            failures.append("cut and written on, started: %s %s" % (rc, out[-1500:]))
        # Removed with its .keyid (a new chain would begin): refused.
        os.rename(log, log + ".gone")
        os.rename(log + ".keyid", log + ".keyid.gone")
        rc, out = refused(polegated, cfg)
        if rc in (None, 0) or ("%s ends at event 0 but the checkpoint" % log) not in out:
            failures.append("removed log started: %s %s" % (rc, out[-1500:]))
        for f in (log, log + ".keyid"):
            if os.path.exists(f):
                os.unlink(f)
        os.rename(log + ".keyid.gone", log + ".keyid")
        # A broker that cannot be reached: the log cannot be checked, the start refused.
        shutil.copy(log + ".orig", log)
        down = os.path.join(work, "down.yaml")
        text = open(cfg, encoding="utf-8").read().replace(
            "brokers: '%s'" % args.brokers, "brokers: '127.0.0.1:%d'" % fc.free_port())
        open(down, "w", encoding="utf-8").write(text)
        rc, out = refused(polegated, down)
        if rc in (None, 0) or ("checkpoints topic %s" % audit_topic) not in out or (
                "the log cannot be checked against its signed checkpoints, so the start is "
                "refused (fail closed)") not in out:
            failures.append("broker down, started: %s %s" % (rc, out[-1500:]))
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if daemon:
            daemon.kill9()
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("audit_anchor: %d failure(s):\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    print("audit_anchor: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
