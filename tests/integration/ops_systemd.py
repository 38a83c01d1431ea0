#!/usr/bin/env python3
"""tests/integration/ops_systemd.py: polegated as systemd runs it, without systemd.

The test plays systemd's part: a datagram socket as NOTIFY_SOCKET, WATCHDOG_USEC, and
JOURNAL_STREAM naming the file the daemon's stderr goes to. polegated (log.format json)
must say READY=1 once it serves, feed the watchdog at half its interval, say
RELOADING=1 then READY=1 around a SIGHUP and STOPPING=1 at SIGINT; and every log line
must start with its syslog priority (<6> info, <3> error for a refused reload), so that
journald files it under the right priority (`journalctl -p err`). A reload to
`log.format: text` changes the lines that follow.

Exit 0 when every check passes, 1 with the list of failures.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_common as fc  # noqa: E402

WATCHDOG_USEC = 400000


def write_config(path, port, store, brokers, topic, log_format, extra=""):
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "force: {code: ESX}\n"
            "adapter: {name: athena}\n"
            "intake: {endpoint: 'tcp://127.0.0.1:%d'}\n"
            "curve: {insecure: true}\n"
            "store: {path: '%s', map_size: 64MiB}\n"
            "kafka: {brokers: '%s'}\n"
            "log: {format: %s}\n"
            "%s"
            "policy:\n  version: OPS-S-1\n"
            "  agreements: [{name: ISA-OPS, description: ops tests}]\n"
            "  destinations:\n"
            "    - {name: national, kind: national, topic: %s, agreement: ISA-OPS,\n"
            "       max_classification: OFFICIAL-SENSITIVE, kinds: all}\n"
            % (port, store, brokers, log_format, extra, topic))


class Notify:
    """The NOTIFY_SOCKET end: every datagram received, in order."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.got = []

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return self.got

    def wait_for(self, needle, seconds=20.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(needle in g for g in self.got):
                return True
            self.drain(0.1)
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default=os.environ.get("POLEGATE_KAFKA_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    topic = "ops.systemd.%s.pole.v1" % uuid.uuid4().hex[:8]
    work = tempfile.mkdtemp(prefix="pg-ops-systemd-")
    failures = []
    proc = None

    def check(what, ok, detail=""):
        print("%s: %s%s" % ("ok" if ok else "FAIL", what, (" (%s)" % detail) if detail else ""))
        if not ok:
            failures.append(what + ((" (%s)" % detail) if detail else ""))

    try:
        port = fc.free_port()
        config, store = os.path.join(work, "gateway.yaml"), os.path.join(work, "store")
        write_config(config, port, store, args.brokers, topic, "json")
        notify = Notify(os.path.join(work, "notify.sock"))
        log_path = os.path.join(work, "polegated.log")
        log = open(log_path, "w", encoding="utf-8")
        st = os.fstat(log.fileno())
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(work, "notify.sock"),
                   WATCHDOG_USEC=str(WATCHDOG_USEC),
                   JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen([polegated, "--config", config], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log, env=env,
                                start_new_session=True)
        log.close()

        check("READY=1 once serving", notify.wait_for("READY=1"),
              "; ".join(notify.got))
        check("READY carries a STATUS", any("STATUS=serving tcp://127.0.0.1:%d" % port in g
                                            for g in notify.got))
        notify.got.clear()
        notify.drain(2.0)
        pings = sum(1 for g in notify.got if g == "WATCHDOG=1")
        check("the watchdog is fed at half its interval (about 10 in 2 s)", 3 <= pings <= 20,
              pings)

        # A file that fails --check-config: RELOADING, READY, an error line at <3>.
        with open(config, "a", encoding="utf-8") as f:
            f.write("log2: {}\n")
        notify.got.clear()
        proc.send_signal(signal.SIGHUP)
        ready = notify.wait_for("READY=1")
        said = [g for g in notify.got if g != "WATCHDOG=1"]
        check("SIGHUP: RELOADING=1 then READY=1", ready and len(said) == 2 and
              said[0].startswith("RELOADING=1\nMONOTONIC_USEC=") and said[1] == "READY=1",
              "; ".join(said))

        # log.format text from the next reload on.
        write_config(config, port, store, args.brokers, topic, "text")
        notify.got.clear()
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1")
        time.sleep(0.3)
        notify.got.clear()
        proc.send_signal(signal.SIGINT)  # as SIGTERM: a drained stop
        check("SIGINT: STOPPING=1", notify.wait_for("STOPPING=1"))
        rc = proc.wait(timeout=60)
        check("exit 0", rc == 0, rc)

        with open(log_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        check("every line starts with a syslog priority",
              lines and all(ln[:1] == "<" and ln[2:3] == ">" and ln[1] in "3467" for ln in lines),
              [ln for ln in lines if not (ln[:1] == "<" and ln[2:3] == ">")][:2])
        js = []
        for ln in lines:
            if ln[3:4] == "{":
                js.append((ln[1], json.loads(ln[3:])))
        check("json lines with time, level, program, msg",
              js and all(set(o) == {"time", "level", "program", "msg"} for _, o in js))
        check("the startup summary at <6> as info", any(
            p == "6" and o["level"] == "info" and o["msg"].startswith("polegated ")
            for p, o in js))
        check("the refused reload at <3> as error", any(
            p == "3" and o["level"] == "error" and "reload refused" in o["msg"] and
            "unknown section 'log2'" in o["msg"] for p, o in js))
        check("text lines after the reload to log.format text",
              any(ln.startswith("<6>info: stopping (Interrupt)") for ln in lines),
              lines[-3:])
    except Exception as e:  # noqa: BLE001  a failure of the harness is a failure
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        if failures:
            print(fc.tail(os.path.join(work, "polegated.log"), 20))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("ops_systemd: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
