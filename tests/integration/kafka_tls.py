#!/usr/bin/env python3
"""tests/integration/kafka_tls.py: polegated and `polegate consume` through the broker's
SASL_SSL (SCRAM-SHA-512) and mutual-TLS listeners, and the attacks on them.

The listeners and the broker's CA are those of scripts/kafka-local (`tls-info`). When
the running broker has none (one started before they existed), this test starts its
own instance of scripts/kafka-local on free ports in its work folder and stops it at
the end; if that cannot start, the test fails. Client certificates are made here with
openssl and signed by the broker's CA; the client key is encrypted, its password read
through `ssl.key.password_file`, the SCRAM password through `sasl.password_file`.

Good paths: polegated publishes tests/fixtures/atx-burglary.ndjson through each
listener and `polegate consume --config` (the daemon's config) reads every record back
through the same listener. Attacks, each with a fresh topic: a wrong SASL password, a
CA the client does not trust (the broker's certificate refused), a client certificate
from a CA the broker does not trust, and an expired client certificate: polegated logs
the reason, `polegate consume` prints it, and the topic (read on PLAINTEXT) stays empty.

The partner direction: a second polegated (force MER, ESX its partner, the topic ESX
published its partner topic, a drop directory its RMS) consumes that topic through
each listener and delivers every record; its consumer group's offsets are committed.
Attacks on the consumer (a wrong SASL password, a CA it does not trust): polegated's
consumer logs the reason, /readyz is 503 and polegate_ready 0, nothing reaches the
RMS, and its group commits no offset.
Exit 0 when every check passes, 1 with the failures otherwise.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_atx  # noqa: E402  the daemon helpers of the first end-to-end test
import ops_metrics  # noqa: E402  reading /metrics and /readyz

ROOT = e2e_atx.ROOT
KAFKA_LOCAL = os.path.join(ROOT, "scripts", "kafka-local")


def sh(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (cmd[:3], r.stderr[-1500:]))
    return r.stdout


def tls_info(env):
    r = subprocess.run([KAFKA_LOCAL, "tls-info"], capture_output=True, text=True, env=env, timeout=60)
    if r.returncode != 0:
        return None
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def own_broker(tmp):
    """A second scripts/kafka-local instance on free ports; (info, env to stop it)."""
    env = dict(os.environ)
    env.update({"POLEGATE_KAFKA_RUN": os.path.join(tmp, "broker"),
                "POLEGATE_KAFKA_PORT": str(e2e_atx.free_port()),
                "POLEGATE_KAFKA_CONTROLLER_PORT": str(e2e_atx.free_port()),
                "POLEGATE_KAFKA_SASL_PORT": str(e2e_atx.free_port()),
                "POLEGATE_KAFKA_MTLS_PORT": str(e2e_atx.free_port())})
    t0 = time.monotonic()
    r = subprocess.run([KAFKA_LOCAL, "start"], capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("could not start a broker with TLS listeners:\n" + r.stderr[-3000:])
    print("kafka_tls: own broker started in %.1fs" % (time.monotonic() - t0))
    info = tls_info(env)
    if not info:
        raise RuntimeError("the broker this test started has no TLS listeners")
    return info, env


def make_material(info, d):
    """Client certificates: good (broker CA, encrypted key), rogue (another CA), expired."""
    os.makedirs(d, mode=0o700)
    ca, ca_key = info["ca_pem"], info["ca_key"]
    with open(os.path.join(d, "key.password"), "w") as f:
        f.write(uuid.uuid4().hex + "\n")
    os.chmod(os.path.join(d, "key.password"), 0o600)

    def csr(name):
        sh(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-passout", "file:key.password", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=polegate-%s" % name], d)
        os.chmod(os.path.join(d, name + ".key"), 0o600)

    # The rogue CA: a CA nobody told the broker or the client about.
    sh(["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "rogue-ca.key", "-out", "rogue-ca.pem", "-days", "2",
        "-subj", "/CN=rogue CA"], d)
    for name, signer, signer_key in (("client", ca, ca_key), ("rogue", "rogue-ca.pem", "rogue-ca.key")):
        csr(name)
        sh(["openssl", "x509", "-req", "-in", name + ".csr", "-CA", signer, "-CAkey", signer_key,
            "-CAcreateserial", "-days", "2", "-out", name + ".pem"], d)
    # Expired: valid in January 2020 only (openssl x509 cannot back-date; openssl ca can).
    csr("expired")
    os.mkdir(os.path.join(d, "ca-db"))
    open(os.path.join(d, "ca-db", "index.txt"), "w").close()
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca=test\n[test]\ndatabase=ca-db/index.txt\nnew_certs_dir=ca-db\n"
                "serial=ca-db/serial\ndefault_md=sha256\npolicy=any\n[any]\ncommonName=supplied\n")
    with open(os.path.join(d, "ca-db", "serial"), "w") as f:
        f.write("1000\n")
    sh(["openssl", "ca", "-batch", "-config", "ca.cnf", "-cert", ca, "-keyfile", ca_key,
        "-in", "expired.csr", "-out", "expired.pem", "-notext",
        "-startdate", "20200101000000Z", "-enddate", "20200201000000Z"], d)
    return d


def kafka_props(info, mat, case):
    """(brokers, properties) of one case."""
    sasl = {"security.protocol": "SASL_SSL", "sasl.mechanism": info["scram_mechanism"],
            "sasl.username": info["scram_user"], "sasl.password_file": info["scram_password_file"],
            "ssl.ca.location": info["ca_pem"]}
    mtls = {"security.protocol": "SSL", "ssl.ca.location": info["ca_pem"],
            "ssl.certificate.location": os.path.join(mat, "client.pem"),
            "ssl.key.location": os.path.join(mat, "client.key"),
            "ssl.key.password_file": os.path.join(mat, "key.password")}
    if case == "sasl_ssl":
        return info["sasl_ssl_brokers"], sasl
    if case == "mtls":
        return info["mtls_brokers"], mtls
    if case == "wrong_password":
        wrong = os.path.join(mat, "wrong.password")
        with open(wrong, "w") as f:
            f.write("not-the-password\n")
        os.chmod(wrong, 0o600)
        return info["sasl_ssl_brokers"], dict(sasl, **{"sasl.password_file": wrong})
    if case == "untrusted_ca":
        return info["sasl_ssl_brokers"], dict(sasl, **{"ssl.ca.location": os.path.join(mat, "rogue-ca.pem")})
    if case == "rogue_client_cert":
        return info["mtls_brokers"], dict(mtls, **{"ssl.certificate.location": os.path.join(mat, "rogue.pem"),
                                                   "ssl.key.location": os.path.join(mat, "rogue.key")})
    if case == "expired_cert":
        return info["mtls_brokers"], dict(mtls, **{"ssl.certificate.location": os.path.join(mat, "expired.pem"),
                                                   "ssl.key.location": os.path.join(mat, "expired.key")})
    raise ValueError(case)


def write_config(path, port, store, brokers, props, topic, keys):
    with open(path, "w", encoding="utf-8") as f:
        f.write("# kafka_tls: force ESX publishing through a TLS listener, generated per run.\n"
                "force:\n  code: ESX\nadapter:\n  name: athena\n"
                "intake:\n  endpoint: tcp://127.0.0.1:%d\n"
                "curve:\n  secret_key_file: %s/gateway.key\n  intake_clients_file: %s/intake-clients\n"
                "store:\n  path: %s\n  map_size: 64MiB\n"
                "kafka:\n  brokers: %s\n  properties:\n" % (port, keys, keys, store, brokers))
        for k, v in props.items():
            f.write("    %s: \"%s\"\n" % (k, v))
        f.write("log:\n  level: info\n"
                "policy:\n  version: TLS-1\n  agreements: [{name: ISA-TLS, description: tls}]\n"
                "  destinations:\n"
                "    - {name: national, kind: national, topic: %s, agreement: ISA-TLS,\n"
                "       max_classification: OFFICIAL-SENSITIVE, kinds: all}\n" % topic)
    os.chmod(path, 0o600)


def write_partner_config(path, port, mport, store, brokers, props, topic, keys, drop, group):
    """Force MER, consuming ESX's topic through a listener into a drop directory."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("# kafka_tls: force MER consuming its partner ESX through a TLS listener.\n"
                "force:\n  code: MER\nadapter:\n  name: athena\n"
                "intake:\n  endpoint: tcp://127.0.0.1:%d\n"
                "curve:\n  secret_key_file: %s/gateway.key\n  intake_clients_file: %s/intake-clients\n"
                "store:\n  path: %s\n  map_size: 64MiB\n"
                "metrics:\n  listen: 127.0.0.1:%d\n"
                "delivery:\n  transport: dir\n  endpoint: %s\n  group_id: %s\n"
                "kafka:\n  brokers: %s\n  properties:\n" % (port, keys, keys, store, mport, drop,
                                                             group, brokers))
        for k, v in props.items():
            f.write("    %s: \"%s\"\n" % (k, v))
        f.write("log:\n  level: info\n"
                "policy:\n  version: TLS-MER-1\n  agreements: [{name: ISA-TLS, description: tls}]\n"
                "  destinations:\n"
                "    - {name: national, kind: national, topic: %s-mer-out, agreement: ISA-TLS,\n"
                "       max_classification: OFFICIAL-SENSITIVE, kinds: all}\n"
                "  partners:\n    - {force: ESX, topic: %s, agreement: ISA-TLS}\n" % (topic, topic))
    os.chmod(path, 0o600)


def committed(brokers, group, topic):
    """(offsets group committed on topic, the offsets past each partition's last record),
    each summed over the partitions (read on PLAINTEXT, without joining the group; a
    transaction's commit marker after the last record is not a record to commit)."""
    from confluent_kafka import Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        meta = cons.list_topics(topic, timeout=10).topics[topic]
        tps = [TopicPartition(topic, p) for p in meta.partitions]
        done = sum(tp.offset for tp in cons.committed(tps, timeout=10) if tp.offset >= 0)
    finally:
        cons.close()
    out = e2e_atx.run(["kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
                       "-f", "%p %o\n"], timeout=60)
    last = {}
    for line in out.stdout.splitlines():
        p, o = map(int, line.split())
        last[p] = max(last.get(p, -1), o)
    return done, sum(o + 1 for o in last.values())


def delivered(drop):
    """The records in the RMS stand-in's drop directory, in the order sent (ATX: a line
    each): [(type, revision, action)]."""
    out = []
    for path in sorted(glob.glob(os.path.join(drop, "*.ndjson"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)["record"]
                    out.append((r["type"], r["revision"], r["action"]))
    return out


def live_records_delivered(got):
    """Whether the RMS holds ESX's records as ESX last stated them: every entity at its
    revision, and the telephone ESX deleted either never sent (created and deleted in
    one batch) or deleted last."""
    want = [(kind, rev, "UPSERT") for kind, _, rev, _, _ in e2e_atx.ENTITIES
            if kind != e2e_atx.DELETED[0]]
    phone = [r for r in got if r[0] == e2e_atx.DELETED[0]]
    return all(w in got for w in want) and (not phone or phone[-1][2] == "DELETE")


def run_partner_case(c, case, args, info, mat, keys, tmp, topic):
    """MER's polegated consuming ESX's topic through the listener of case."""
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    name = "partner-" + case
    port, mport = e2e_atx.free_port(), e2e_atx.free_port()
    brokers, props = kafka_props(info, mat, case)
    config = os.path.join(tmp, name + ".yaml")
    log_path = os.path.join(tmp, name + ".log")
    drop = os.path.join(tmp, name + "-rms")
    os.mkdir(drop, 0o700)
    group = "pg-kafka-tls-%s-%s" % (name, uuid.uuid4().hex[:8])
    write_partner_config(config, port, mport, os.path.join(tmp, name + "-store"), brokers, props,
                         topic, keys, drop, group)
    good = case in ("sasl_ssl", "mtls")
    # Every record but the tombstones (compaction's business) reaches the RMS.
    tombstones = 1 + len(e2e_atx.DELETED_LINKS)
    want = e2e_atx.EXPECTED_RECORDS - tombstones
    daemon = None
    try:
        with open(log_path, "w") as log:
            daemon = subprocess.Popen([polegated, "--config", config], stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                      preexec_fn=e2e_atx._die_with_parent)
        e2e_atx.wait_listening(port, daemon, log_path)
        samples, status = {}, None
        deadline = time.monotonic() + (90 if good else 20)
        while time.monotonic() < deadline:
            status = ops_metrics.get(mport, "/readyz")
            samples = ops_metrics.parse(ops_metrics.get(mport, "/metrics")[1])
            done, end = committed(info["plaintext_brokers"], group, topic)
            # /readyz read in the same round as the records: one read before the producer
            # was ready, with every record taken by the time of the counters, is not
            # the answer (a loaded run failed so)
            if good and ops_metrics.val(samples, "polegate_partner_updates_total",
                                        outcome="accepted") == want and done == end \
                    and status and status[0] == 200:
                break
            if not good and any(REASONS[case] in line and "kafka consumer" in line
                                for line in open(log_path, encoding="utf-8", errors="replace")):
                time.sleep(3)  # had it been let in, it would have delivered by now
                status = ops_metrics.get(mport, "/readyz")
                samples = ops_metrics.parse(ops_metrics.get(mport, "/metrics")[1])
                break
            time.sleep(0.5)
        accepted = ops_metrics.val(samples, "polegate_partner_updates_total", outcome="accepted")
        if good:
            c.eq("%s: partner records polegated took through the listener" % name, accepted, want)
            got = delivered(drop)
            c.true("%s: the RMS stand-in holds every record ESX shared (%s)" % (name, got),
                   live_records_delivered(got))
            done, end = committed(info["plaintext_brokers"], group, topic)
            c.eq("%s: offsets the group committed (the topic's end)" % name, done, end)
            c.eq("%s: /readyz" % name, status and status[0], 200)
        else:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                dlog = f.read()
            c.true("%s: polegated's consumer logs the reason %r" % (name, REASONS[case]),
                   any(REASONS[case] in line and "kafka consumer" in line
                       for line in dlog.splitlines()))
            c.eq("%s: /readyz (%s)" % (name, status and status[1].strip()), status and status[0], 503)
            c.eq("%s: polegate_ready" % name, ops_metrics.val(samples, "polegate_ready"), 0)
            c.true("%s: partner records taken (%s)" % (name, accepted), not accepted)
            c.eq("%s: records the RMS stand-in received" % name, delivered(drop), [])
            c.eq("%s: offsets the group committed" % name,
                 committed(info["plaintext_brokers"], group, topic)[0], 0)
    finally:
        if daemon is not None:
            c.eq("%s: polegated exit status on SIGTERM" % name, e2e_atx.stop_daemon(daemon), 0)
    return log_path


def plaintext_count(brokers, topic):
    out = e2e_atx.run(["kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
                       "-f", "%o\n"], timeout=60)
    if out.returncode != 0:
        raise RuntimeError("kcat failed (%d): %s" % (out.returncode, out.stderr))
    return len(out.stdout.splitlines())


# What each attack must make polegated and polegate consume say (librdkafka's words).
# A client certificate the broker refuses (unknown CA or expired) is answered with TLS
# alert 46 "certificate unknown" either way; the broker does not tell the client which.
REASONS = {
    "wrong_password": "SASL authentication error: Authentication failed during authentication "
                      "due to invalid credentials with SASL mechanism SCRAM-SHA-512",
    "untrusted_ca": "certificate verify failed",
    "rogue_client_cert": "certificate unknown",
    "expired_cert": "certificate unknown",
}


def run_case(c, case, args, info, mat, keys, tmp):
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    topic = "pg-kafka-tls-%s-%s" % (case.replace("_", "-"), uuid.uuid4().hex[:8])
    port = e2e_atx.free_port()
    brokers, props = kafka_props(info, mat, case)
    config = os.path.join(tmp, case + ".yaml")
    log_path = os.path.join(tmp, case + ".log")
    write_config(config, port, os.path.join(tmp, case + "-store"), brokers, props, topic, keys)
    e2e_atx.create_topic(info["plaintext_brokers"], topic)
    good = case in ("sasl_ssl", "mtls")
    daemon = None
    try:
        with open(log_path, "w") as log:
            daemon = subprocess.Popen([polegated, "--config", config], stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                      preexec_fn=e2e_atx._die_with_parent)
        e2e_atx.wait_listening(port, daemon, log_path)
        sent = e2e_atx.run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % port,
                            "--secret-key", os.path.join(keys, "rms.key"),
                            "--server-key", os.path.join(keys, "gateway.pub"), e2e_atx.FIXTURE], timeout=120)
        if good:
            c.eq("%s: polegate send (stderr: %s)" % (case, sent.stderr.strip()[-300:]), sent.returncode, 0)
        read = e2e_atx.run([polegate, "consume", "--config", config, "--topic", topic, "--from-beginning",
                            "--timeout-ms", "8000" if good else "6000",
                            "--max", str(e2e_atx.EXPECTED_RECORDS)], timeout=120)
        lines = [x for x in read.stdout.splitlines() if x.strip()]
        if good:
            c.eq("%s: records polegate consume read back through the listener (stderr: %s)"
                 % (case, read.stderr.strip()[-300:]), len(lines), e2e_atx.EXPECTED_RECORDS)
        else:
            c.eq("%s: records polegate consume delivered" % case, len(lines), 0)
            c.eq("%s: polegate consume exit status" % case, read.returncode, 2)
            c.true("%s: polegate consume names the reason %r (stderr: %s)"
                   % (case, REASONS[case], read.stderr.strip()[-400:]), REASONS[case] in read.stderr)
        # On PLAINTEXT, what actually is on the topic.
        if good:
            c.eq("%s: records on the topic" % case, plaintext_count(info["plaintext_brokers"], topic),
                 e2e_atx.EXPECTED_RECORDS)
        else:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                dlog = f.read()
            c.true("%s: polegated logs the reason %r" % (case, REASONS[case]), REASONS[case] in dlog)
            c.eq("%s: records on the topic" % case, plaintext_count(info["plaintext_brokers"], topic), 0)
    finally:
        if daemon is not None and good:
            c.eq("%s: polegated exit status on SIGTERM" % case, e2e_atx.stop_daemon(daemon), 0)
        elif daemon is not None:
            # Its spool cannot drain through a refused listener: no 10 s of trying.
            daemon.kill()
            daemon.wait()
    return topic, log_path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", required=True, help="CMake build tree with gateway/polegated and cli/polegate")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pg-kafka-tls-")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    c = e2e_atx.Checks()
    broker_env = None
    last_log = None
    try:
        info = tls_info(os.environ)
        if info is None:
            print("kafka_tls: the running broker has no TLS listeners; starting one")
            info, broker_env = own_broker(tmp)
        print("kafka_tls: SASL_SSL %s, mTLS %s, work folder %s"
              % (info["sasl_ssl_brokers"], info["mtls_brokers"], tmp))
        mat = make_material(info, os.path.join(tmp, "tls"))
        keys = e2e_atx.make_keys(polegate, tmp)
        topics = {}
        for case in ("sasl_ssl", "mtls", "wrong_password", "untrusted_ca", "rogue_client_cert",
                     "expired_cert"):
            t0 = time.monotonic()
            n = len(c.failures)
            topics[case], last_log = run_case(c, case, args, info, mat, keys, tmp)
            print("kafka_tls: %s %s in %.1fs" % (case, "ok" if len(c.failures) == n else "FAILED",
                                                 time.monotonic() - t0))
            if len(c.failures) != n:
                print("--- polegated log (%s):\n%s" % (last_log, e2e_atx.tail(last_log, 30)))
        # The partner direction: MER consumes what ESX published (the attacks read the
        # SASL_SSL case's topic, which holds records).
        for case, topic in (("sasl_ssl", topics["sasl_ssl"]), ("mtls", topics["mtls"]),
                            ("wrong_password", topics["sasl_ssl"]),
                            ("untrusted_ca", topics["sasl_ssl"])):
            t0 = time.monotonic()
            n = len(c.failures)
            last_log = run_partner_case(c, case, args, info, mat, keys, tmp, topic)
            print("kafka_tls: partner %s %s in %.1fs"
                  % (case, "ok" if len(c.failures) == n else "FAILED", time.monotonic() - t0))
            if len(c.failures) != n:
                print("--- polegated log (%s):\n%s" % (last_log, e2e_atx.tail(last_log, 40)))
    except Exception as exc:  # noqa: BLE001  reported as a failure, never a skip
        c.failures.append("error: %s: %s" % (type(exc).__name__, exc))
    finally:
        if broker_env is not None:
            r = subprocess.run([KAFKA_LOCAL, "stop"], capture_output=True, text=True, env=broker_env,
                               timeout=120)
            c.eq("stopping the broker this test started (%s)" % r.stderr.strip()[-300:], r.returncode, 0)
    for f in c.failures:
        print("FAIL: " + f)
    print("kafka_tls: %d passed, %d failed" % (c.passed, len(c.failures)))
    ok = not c.failures
    if ok and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
