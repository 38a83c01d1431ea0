#!/usr/bin/env python3
"""tests/integration/package_deb.py: the Debian package as an operator installs it.

Builds the .deb from the build tree (cpack, packaging/CMakeLists.txt), installs it
with `dpkg -i`, and checks: the polegate system user and /var/lib/polegate owned by it,
the example configs readable by that user only, the installed `polegated
--check-config` on the installed /etc/polegate/esx.yaml (as the polegate user),
`systemd-analyze verify` of polegated@esx.service (man pages included) and its
`systemd-analyze security` exposure (at most 2.0), then the installed daemon, as the
polegate user with the installed config (its intake port, store and metrics endpoint
moved to this run's), started against the test broker until /readyz says ready, and
stopped with SIGTERM. Then `dpkg --purge` removes it all but the stores and the audit
keys.

Needs root (dpkg): exits 77 (skipped) otherwise. Serialised by a lock file, as
several worktrees share the machine's dpkg.
"""

import argparse
import fcntl
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_common as fc  # noqa: E402

UNIT = "/usr/lib/systemd/system/polegated@.service"
MAX_EXPOSURE = 2.0


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default=os.environ.get("POLEGATE_KAFKA_BROKERS", "127.0.0.1:19092"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("package_deb: skipped: dpkg -i needs root")
        return 77
    failures = []

    def check(what, ok, detail=""):
        print("%s: %s%s" % ("ok" if ok else "FAIL", what, (" (%s)" % detail) if detail else ""))
        if not ok:
            failures.append(what + ((" (%s)" % str(detail)[-600:]) if detail else ""))

    lock = open("/tmp/polegate-package-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    work = tempfile.mkdtemp(prefix="pg-package-")
    os.chmod(work, 0o755)
    proc = None
    installed = False
    try:
        p = run(["cpack", "-G", "DEB", "--config", "CPackConfig.cmake", "-B", work,
                 "-D", "CPACK_OUTPUT_FILE_PREFIX=" + work], cwd=args.build_dir)
        debs = [f for f in os.listdir(work) if f.endswith(".deb")]
        check("cpack builds the .deb", p.returncode == 0 and len(debs) == 1, p.stdout + p.stderr)
        deb = os.path.join(work, debs[0])
        p = run(["dpkg", "-i", deb])
        installed = p.returncode == 0
        check("dpkg -i", installed, p.stdout + p.stderr)

        check("the polegate system user", run(["id", "-u", "polegate"]).returncode == 0 and
              int(run(["id", "-u", "polegate"]).stdout) < 1000)
        st = os.stat("/var/lib/polegate")
        check("/var/lib/polegate belongs to polegate",
              st.st_uid == int(run(["id", "-u", "polegate"]).stdout or -1))
        st = os.stat("/etc/polegate/esx.yaml")
        check("/etc/polegate/esx.yaml: 0640 root:polegate", (st.st_mode & 0o777) == 0o640 and
              st.st_uid == 0 and st.st_gid == int(run(["id", "-g", "polegate"]).stdout or -1))
        for exe in ("/usr/sbin/polegated", "/usr/bin/polegate"):
            check(exe + " --version", run([exe, "--version"]).returncode == 0)
        for page in ("polegated.8", "polegate.1", "polegated.yaml.5"):
            sec = page[-1]
            check("man page " + page, os.path.exists("/usr/share/man/man%s/%s" % (sec, page)))
        p = run(["man", "-P", "cat", "5", "polegated.yaml"], env=dict(os.environ, MANWIDTH="100"))
        check("polegated.yaml(5) lists the keys of --config-reference",
              p.returncode == 0 and "metrics.listen" in p.stdout and "log.format" in p.stdout,
              p.stderr)

        p = run(["runuser", "-u", "polegate", "--", "/usr/sbin/polegated", "--config",
                 "/etc/polegate/esx.yaml", "--check-config"])
        check("installed polegated --check-config on the installed esx.yaml (as polegate)",
              p.returncode == 0 and "valid" in p.stdout, p.stdout + p.stderr)
        # The audit chain is keyed and its checkpoints signed out of the box.
        check("--check-config: no audit key warning (postinst made the keys)",
              "audit.key_file: none" not in p.stdout + p.stderr and
              "audit.signing_key_file: none" not in p.stdout + p.stderr and
              "audit checkpoints -> polegate.esx.audit.v1" in p.stdout, p.stdout + p.stderr)
        for key in ("audit-hmac.key", "audit-sign.key"):
            st = os.stat("/etc/polegate/esx/" + key)
            check("/etc/polegate/esx/%s: 0600 polegate" % key, (st.st_mode & 0o777) == 0o600 and
                  st.st_uid == int(run(["id", "-u", "polegate"]).stdout or -1))
        p = run(["systemd-analyze", "verify", "polegated@esx.service"])
        check("systemd-analyze verify polegated@esx.service", p.returncode == 0 and
              not p.stderr.strip(), p.stdout + p.stderr)
        p = run(["systemd-analyze", "security", "--offline=true", UNIT])
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
        check("systemd-analyze security: exposure at most %.1f" % MAX_EXPOSURE,
              m is not None and float(m.group(1)) <= MAX_EXPOSURE,
              m.group(0) if m else p.stdout[-300:] + p.stderr)
        if m:
            print("systemd-analyze security: %s" % m.group(0))

        # The installed daemon, as its user, on the installed config.
        port, mport = fc.free_port(), fc.free_port()
        store = os.path.join(work, "esx")
        os.mkdir(store, 0o700)
        shutil.chown(store, "polegate", "polegate")
        with open("/etc/polegate/esx.yaml", encoding="utf-8") as f:
            text = f.read()
        text = text.replace("tcp://127.0.0.1:5555", "tcp://127.0.0.1:%d" % port)
        text = text.replace("/var/lib/polegate/esx", store)
        text = text.replace("127.0.0.1:19092", args.brokers)
        text += "\nmetrics:\n  listen: 127.0.0.1:%d\n" % mport
        config = os.path.join(work, "esx.yaml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(text)
        log_path = os.path.join(work, "polegated.log")
        log = open(log_path, "w", encoding="utf-8")
        # setpriv execs polegated itself (runuser would stand between it and SIGTERM).
        proc = subprocess.Popen(["setpriv", "--reuid=polegate", "--regid=polegate",
                                 "--init-groups", "/usr/sbin/polegated",
                                 "--config", config], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        ready, body = False, ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % mport, timeout=2) as r:
                    ready, body = r.status == 200, r.read().decode()
                    if ready:
                        break
            except (urllib.error.URLError, ConnectionError) as e:
                body = str(e)
            time.sleep(0.3)
        check("the installed daemon is ready against the test broker", ready,
              body + fc.tail(log_path, 10))
        p = run(["polegate", "status", "--url", "http://127.0.0.1:%d" % mport, "--interval", "0"])
        check("the installed polegate status (every figure a number)",
              p.returncode == 0 and ": ready" in p.stdout and "nan" not in p.stdout,
              p.stdout + p.stderr)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        check("SIGTERM: exit 0", rc == 0, fc.tail(log_path, 5))
        proc = None
    except Exception as e:  # noqa: BLE001  a failure of the harness is a failure
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if installed:
            p = run(["dpkg", "--purge", "polegate"])
            check("dpkg --purge", p.returncode == 0 and not os.path.exists("/usr/sbin/polegated")
                  and run(["id", "polegate"]).returncode != 0, p.stdout + p.stderr)
            # The CURVE keys go; the audit keys stay with the audit logs they verify.
            left = sorted(os.listdir("/etc/polegate/esx")) if os.path.isdir(
                "/etc/polegate/esx") else []
            check("dpkg --purge keeps the audit keys only",
                  left == ["audit-hmac.key", "audit-sign.key", "audit-sign.pub"], str(left))
            for force in ("esx", "mer"):
                shutil.rmtree("/etc/polegate/" + force, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        lock.close()
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("package_deb: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
