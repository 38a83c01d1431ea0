#!/usr/bin/env python3
"""tests/integration/two_force.py: two forces exchanging records through a real broker.

Two polegated run side by side, each beside an RMS stand-in (`polegate receive`):

- ESX, an Athena-like force (ATX/2), shares with MER and reads MER's topic;
- MER, a Niche-like force (NX5), shares with ESX and reads ESX's topic.

Each is sent its sample (ESX tests/fixtures/atx-burglary.ndjson, MER
tests/fixtures/nx5-merseyside-export.xml, preceded by the earlier batch the samples'
README says the Merseyside import assumes: the telephone and the person later merged
away). Then the RMS stand-ins' stores are checked with two_force_check (tests/rms_model):
MER's RMS holds what nx5-burglary-import.xml describes, ESX's what
atx-merseyside-import.ndjson describes (ids aside); after ESX's DELETE, MER's RMS holds
ESX's final state. What an RMS imported and exports again (an echo) is fed back to its
gateway, and must not come back to the other force.

Fault test 3 (docs/reliability.md): a few thousand updates from ESX, MER's daemon killed
with SIGKILL while delivering them, restarted: every update reaches MER's RMS, none is
applied twice (two_force_check --no-repeats: no duplicate message, no stale revision).

--demo prints what each RMS received and skips the fault test (scripts/demo).
"""

import argparse
import datetime
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from e2e_atx import (_die_with_parent, create_topic, free_port, run, stop_daemon,  # noqa: E402
                     tail, wait_listening)

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
ATX_BURGLARY = os.path.join(FIX, "atx-burglary.ndjson")
NX5_MERSEYSIDE = os.path.join(FIX, "nx5-merseyside-export.xml")
NX5_BURGLARY_IMPORT = os.path.join(FIX, "nx5-burglary-import.xml")
ATX_MERSEYSIDE_IMPORT = os.path.join(FIX, "atx-merseyside-import.ndjson")

# What Merseyside sent earlier (the samples' README): the telephone that is deleted and
# the person merged away, who used it. As MER's RMS exported it...
MER_BEFORE_NX5 = """<?xml version="1.0" encoding="UTF-8"?>
<NX5Exchange xmlns="urn:nx:exchange:5" Source="NICHE" Force="MER" Batch="20261020-000101" Created="20/10/2026 10:00:00">
  <Entity Kind="Telephone" GID="7E1E000000000031" Rev="4" Op="Add" Modified="20/10/2026 09:00:00" GPMS="O" Handling="P" MoPI="3" Review="20/10/2032">
    <Number>07700 900031</Number>
    <Type>M</Type>
  </Entity>
  <Entity Kind="Person" GID="7F3A9C2E4B1D0B01" Rev="3" Op="Add" Modified="20/10/2026 09:00:00" GPMS="OS" Handling="P" MoPI="2" Review="20/10/2036">
    <Surname>GARCIA</Surname>
    <Given>JOSE</Given>
  </Entity>
  <Link Role="USES" From="7F3A9C2E4B1D0B01" To="7E1E000000000031"/>
</NX5Exchange>
"""
# ...and as an ATX RMS holds it (test_equivalence's s_mer_before): the state the
# Merseyside import sample starts from.
MER_BEFORE_ATX = (
    '{"header":{"schema":"atx/2","messageId":"5e1d0000-0000-4000-8000-0000000000a1",'
    '"sentAt":"2026-10-20T10:00:00+01:00","system":"ATHENA","orgUnit":"MER"},'
    '"record":{"type":"TELEPHONE","id":"T9000000031","revision":4,"action":"UPSERT",'
    '"modifiedAt":"2026-10-20T09:00:00+01:00","marking":{"classification":"OFFICIAL",'
    '"handling":"P","caveat":null},"retention":{"mopiGroup":3,"reviewDate":"2032-10-20"},'
    '"body":{"number":"07700 900031","kind":"MOBILE"}},"links":[]}\n'
    '{"header":{"schema":"atx/2","messageId":"5e1d0000-0000-4000-8000-0000000000a2",'
    '"sentAt":"2026-10-20T10:00:00+01:00","system":"ATHENA","orgUnit":"MER"},'
    '"record":{"type":"PERSON","id":"P9000000002","revision":3,"action":"UPSERT",'
    '"modifiedAt":"2026-10-20T09:00:00+01:00","marking":{"classification":'
    '"OFFICIAL-SENSITIVE","handling":"P","caveat":null},"retention":{"mopiGroup":2,'
    '"reviewDate":"2036-10-20"},"body":{"surname":"GARCIA","forenames":["JOSE"]}},'
    '"links":[{"target":{"type":"TELEPHONE","id":"T9000000031"},"role":"USES",'
    '"validFrom":null,"validTo":null}]}\n')


class Checks:
    def __init__(self):
        self.passed = 0
        self.failures = []

    def true(self, what, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok   " + what)
        else:
            self.failures.append(what + (": " + detail if detail else ""))
            print("FAIL " + what + (": " + detail if detail else ""))
        return cond


def policy(us, them, t_out, t_in):
    return (
        "policy:\n"
        "  version: %s-2F-1\n"
        "  agreements:\n"
        "    - {name: ISA-2F, description: %s and %s}\n"
        "    - {name: ISA-2F-C, description: handling-C conditions accepted}\n"
        "  destinations:\n"
        "    - name: %s\n"
        "      kind: force\n"
        "      force: %s\n"
        "      topic: %s\n"
        "      agreement: ISA-2F\n"
        "      max_classification: OFFICIAL-SENSITIVE\n"
        "      allow_handling_c: true\n"
        "      handling_c_agreement: ISA-2F-C\n"
        "      kinds: all\n"
        "  partners:\n"
        "    - {force: %s, topic: %s, agreement: ISA-2F}\n"
        % (us, us, them, them.lower(), them, t_out, them, t_in))


class Force:
    """One force: its config, daemon and RMS stand-in."""

    def __init__(self, work, name, adapter, fmt, partner, t_out, t_in, brokers, group,
                 policy_text=None):
        self.name, self.fmt, self.work = name, fmt, os.path.join(work, name.lower())
        os.makedirs(self.work)
        self.port, self.rms_port = free_port(), free_port()
        self.rms_dir = os.path.join(self.work, "rms")
        os.makedirs(self.rms_dir)
        self.config = os.path.join(self.work, "%s.yaml" % name.lower())
        self.log = os.path.join(self.work, "polegated.log")
        self.rms_log = os.path.join(self.work, "rms.log")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write("# two_force: %s, generated per run\n"
                    "force: {code: %s}\n"
                    "adapter: {name: %s}\n"
                    "intake: {endpoint: 'tcp://127.0.0.1:%d'}\n"
                    "curve: {insecure: true}\n"
                    "store: {path: '%s', map_size: 256MiB}\n"
                    "kafka: {brokers: '%s'}\n"
                    "delivery:\n"
                    "  transport: zmq\n"
                    "  endpoint: tcp://127.0.0.1:%d\n"
                    "  window: 16\n"
                    "  ack_timeout_ms: 2000\n"
                    "  group_id: %s\n"
                    "log: {level: info}\n"
                    % (name, name, adapter, self.port, os.path.join(self.work, "store"), brokers,
                       self.rms_port, group))
            f.write(policy_text or policy(name, partner, t_out, t_in))
        self.daemon = self.rms = None

    def start_rms(self, polegate):
        self.rms_out = open(self.rms_log, "a")
        self.rms = subprocess.Popen([polegate, "receive", "--bind", "tcp://127.0.0.1:%d" % self.rms_port,
                                     "--out", self.rms_dir, "--format", self.fmt],
                                    stdin=subprocess.DEVNULL, stdout=self.rms_out,
                                    stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def start(self, polegated):
        for _ in range(5):
            try:
                return self._start(polegated)
            except RuntimeError as exc:
                if "Address already in use" not in str(exc):
                    raise
            # another test took the port between free_port and the bind: a new one
            old, self.port = self.port, free_port()
            with open(self.config, encoding="utf-8") as f:
                text = f.read()
            with open(self.config, "w", encoding="utf-8") as f:
                f.write(text.replace("127.0.0.1:%d'" % old, "127.0.0.1:%d'" % self.port))
        return self._start(polegated)

    def _start(self, polegated):
        with open(self.log, "a") as log:
            self.daemon = subprocess.Popen([polegated, "--config", self.config],
                                           stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True,
                                           preexec_fn=_die_with_parent)
        wait_listening(self.port, self.daemon, self.log)

    def kill(self):
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait()
        self.daemon = None

    def stop(self):
        rc = stop_daemon(self.daemon) if self.daemon else 0
        self.daemon = None
        return rc

    def stop_rms(self):
        if self.rms and self.rms.poll() is None:
            self.rms.send_signal(signal.SIGTERM)
            try:
                self.rms.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.rms.kill()
        if self.rms:
            self.rms_out.close()

    def messages(self):
        return sorted(p for p in glob.glob(os.path.join(self.rms_dir, "*")))


def send(polegate, force, path):
    r = run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % force.port, path], timeout=300)
    return r


def check_rms(args, force, expect, expect_fmt=None, no_repeats=False):
    cmd = [args.check, "--format", force.fmt, "--dir", force.rms_dir]
    if expect_fmt:
        cmd += ["--expect-format", expect_fmt]
    for e in expect:
        cmd += ["--expect", e]
    if no_repeats:
        cmd.append("--no-repeats")
    return run(cmd, timeout=120)


def wait_rms(args, force, expect, expect_fmt=None, no_repeats=False, timeout=60.0):
    """Poll until the RMS's state equals the expected one; the last result."""
    deadline = time.monotonic() + timeout
    while True:
        r = check_rms(args, force, expect, expect_fmt, no_repeats)
        if r.returncode == 0 or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def fault_corpus(path, n):
    """n persons, n locations, then the persons again with a HOME_ADDRESS link each:
    3n ATX messages, every one shareable."""
    with open(ATX_BURGLARY, encoding="utf-8") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    loc, person = lines[0], lines[1]
    out = []
    for i in range(n):
        p = json.loads(json.dumps(person))
        p["header"]["messageId"] = str(uuid.uuid4())
        p["record"].update({"id": "P00002%05d" % i, "revision": 1})
        # a date of birth of its own: the comparator pairs persons by surname and birth
        dob = datetime.date(1950, 1, 1) + datetime.timedelta(days=i)
        p["record"]["body"] = {"surname": "Fault", "forenames": ["Test%d" % i], "sex": "FEMALE",
                               "dateOfBirth": dob.isoformat()}
        p["links"] = []
        out.append(p)
    for i in range(n):
        l = json.loads(json.dumps(loc))
        l["header"]["messageId"] = str(uuid.uuid4())
        l["record"].update({"id": "L00002%05d" % i, "revision": 1})
        l["record"]["body"] = {"street": "%d Fault Street" % (i + 1), "town": "Colchester",
                               "postcode": "CO3 3ES"}
        out.append(l)
    for i in range(n):
        p = json.loads(json.dumps(out[i]))
        p["header"]["messageId"] = str(uuid.uuid4())
        p["record"]["revision"] = 2
        p["links"] = [{"target": {"type": "LOCATION", "id": "L00002%05d" % i},
                       "role": "HOME_ADDRESS", "validFrom": None, "validTo": None}]
        out.append(p)
    with open(path, "w", encoding="utf-8") as f:
        for m in out:
            f.write(json.dumps(m, ensure_ascii=False) + "\n")
    return len(out)


def summary(force):
    """What an RMS received: one line per message."""
    lines = []
    for p in force.messages():
        with open(p, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if force.fmt == "atx":
            for line in text.splitlines():
                m = json.loads(line)
                r = m["record"]
                lines.append("  %-12s %s rev %-3s %-6s orgUnit %s, %d link(s)"
                             % (r["type"], r["id"], r["revision"], r["action"],
                                m["header"]["orgUnit"], len(m.get("links") or [])))
        else:
            import re
            ents = re.findall(r'<Entity Kind="(\w+)" GID="(\w+)" Rev="(\d+)" Op="(\w+)"', text)
            links = re.findall(r'<Link Role="(\w+)" From="(\w+)" To="(\w+)"( Op="Delete")?', text)
            force_attr = re.search(r'Force="(\w+)"', text)
            lines.append("  document %s (Force %s): %d entities, %d links"
                         % (os.path.basename(p), force_attr.group(1) if force_attr else "?",
                            len(ents), len(links)))
            for k, gid, rev, op in ents:
                lines.append("    %-12s %s Rev %-3s %s" % (k, gid, rev, op))
            for role, f, t, d in links:
                lines.append("    link %-5s %s -> %s%s" % (role, f, t, " (delete)" if d else ""))
    return lines


def audit_events(force, **match):
    """The events of force's audit log (its store's audit.log) with every field given."""
    out = []
    path = os.path.join(force.work, "store", "audit.log")
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if all(ev.get(k) == v for k, v in match.items()):
                out.append(ev)
    return out


def poll(what, fn, timeout=30.0):
    """fn() until it returns something true, or None after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.25)
    return None


def unencodable(args, c, polegate, esx, mer, work, t_em):
    """docs/security.md: an ESX person whose surname holds U+FFFF (ATX carries it, NX5
    cannot): ESX discloses it in the name of the RMS that sent it; MER keeps it as a
    partner dead letter, audited, while the rest flows; `polegate dlq replay` while
    MER runs is answered by MER's own partner thread (refused again); the next
    version, without it, reaches MER's RMS."""
    with open(ATX_BURGLARY, encoding="utf-8") as f:
        person = json.loads(f.readlines()[1])
    person["header"]["messageId"] = str(uuid.uuid4())
    person["record"].update({"id": "P0000999001", "revision": 1})
    person["record"]["body"]["surname"] = "SMITH\uffff"
    person["links"] = []
    bad = os.path.join(work, "esx-unencodable.ndjson")
    with open(bad, "w", encoding="utf-8") as f:
        f.write(json.dumps(person) + "\n")
    r = send(polegate, esx, bad)
    c.true("ESX takes a person whose surname NX5 cannot carry", r.returncode == 0, r.stderr)
    ev = poll("disclose", lambda: audit_events(esx, action="disclose", native_id="P0000999001"))
    c.true("ESX's disclose event names the RMS that sent it (rms:insecure)",
           ev and ev[0].get("party") == "rms:insecure", str(ev))

    def dead_letters():
        r = run([polegate, "dlq", "list", "--config", mer.config, "--json"])
        return [d for d in (json.loads(l) for l in r.stdout.splitlines() if l.strip())
                if d.get("kind") == "partner" and "person.name.surname" in d.get("reason", "")]
    dl = poll("dead letter", dead_letters)
    c.true("MER keeps it as a partner dead letter (topic, offset, origin, the adapter's reason)",
           dl and dl[0]["ref"].startswith(t_em + " [") and dl[0]["origin"] == "ESX"
           and "the nx5 RMS cannot carry it" in dl[0]["reason"], str(dl))
    rej = audit_events(mer, action="reject", native_id="P0000999001", outcome="PG_EUNSUPPORTED")
    c.true("MER audits it as rejected (PG_EUNSUPPORTED, party partner:<topic>)",
           rej and rej[0].get("party") == "partner:" + t_em, str(rej))
    if dl:
        r = run([polegate, "dlq", "replay", "--config", mer.config, str(dl[0]["id"])], timeout=60)
        c.true("dlq replay while MER runs: answered by MER (refused again, exit 1)",
               r.returncode == 1 and '"status":"refused"' in r.stdout
               and "U+FFFE/U+FFFF" in r.stdout, r.stdout + r.stderr)
        with open(mer.log, encoding="utf-8", errors="replace") as f:
            c.true("MER's log says it replayed it as the operator asked",
                   "replayed as the operator asked: refused" in f.read())
    person["header"]["messageId"] = str(uuid.uuid4())
    person["record"].update({"revision": 2})
    person["record"]["body"]["surname"] = "SMITH"
    good = os.path.join(work, "esx-unencodable-fixed.ndjson")
    with open(good, "w", encoding="utf-8") as f:
        f.write(json.dumps(person) + "\n")
    r = send(polegate, esx, good)
    c.true("ESX takes its next version", r.returncode == 0, r.stderr)
    got = poll("receive", lambda: audit_events(mer, action="receive", native_id="P0000999001",
                                               version=2))
    c.true("MER takes the next version (the refused one noted nothing)", bool(got))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--check", help="two_force_check binary (default: in the build dir)")
    ap.add_argument("--brokers", default="127.0.0.1:19092")
    ap.add_argument("--fault-records", type=int, default=1000,
                    help="persons (and locations) of the fault test: 3x as many messages")
    ap.add_argument("--demo", action="store_true", help="print what each RMS received; no fault test")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    args.check = args.check or os.path.join(args.build_dir, "tests", "integration", "two_force_check")

    run_id = uuid.uuid4().hex[:10]
    t_em = "pg-2f-%s-esx-mer" % run_id  # ESX -> MER
    t_me = "pg-2f-%s-mer-esx" % run_id  # MER -> ESX
    work = tempfile.mkdtemp(prefix="pg-two-force-")
    esx = Force(work, "ESX", "athena", "atx", "MER", t_em, t_me, args.brokers, "pg-2f-%s-esx" % run_id)
    mer = Force(work, "MER", "niche", "nx5", "ESX", t_me, t_em, args.brokers, "pg-2f-%s-mer" % run_id)
    print("two_force: topics %s, %s; work folder %s" % (t_em, t_me, work))
    before_nx5 = os.path.join(work, "mer-before.xml")
    before_atx = os.path.join(work, "mer-before.ndjson")
    first7 = os.path.join(work, "esx-first7.ndjson")
    last1 = os.path.join(work, "esx-last.ndjson")
    with open(before_nx5, "w", encoding="utf-8") as f:
        f.write(MER_BEFORE_NX5)
    with open(before_atx, "w", encoding="utf-8") as f:
        f.write(MER_BEFORE_ATX)
    with open(ATX_BURGLARY, encoding="utf-8") as f:
        sample = [l for l in f if l.strip()]
    with open(first7, "w", encoding="utf-8") as f:
        f.writelines(sample[:7])
    with open(last1, "w", encoding="utf-8") as f:
        f.writelines(sample[7:])

    c = Checks()
    ok = False
    try:
        create_topic(args.brokers, t_em)
        create_topic(args.brokers, t_me)
        for force in (esx, mer):
            force.start_rms(polegate)
            force.start(polegated)

        # Merseyside's earlier batch, then Essex's seven UPSERTs
        r = send(polegate, mer, before_nx5)
        c.true("MER takes its earlier batch", r.returncode == 0, r.stderr.strip())
        r = wait_rms(args, esx, [before_atx])
        c.true("ESX's RMS holds MER's earlier batch", r.returncode == 0, r.stdout)
        r = send(polegate, esx, first7)
        c.true("ESX takes its 7 UPSERTs", r.returncode == 0, r.stderr.strip())
        r = wait_rms(args, mer, [NX5_BURGLARY_IMPORT])
        print(r.stdout, end="")
        c.true("MER's RMS = nx5-burglary-import.xml (ids aside)", r.returncode == 0, r.stdout)

        # Merseyside's export: a merge, a delete, a link delete, a handling-C report
        r = send(polegate, mer, NX5_MERSEYSIDE)
        c.true("MER takes its export", r.returncode == 0, r.stderr.strip())
        r = wait_rms(args, esx, [before_atx, ATX_MERSEYSIDE_IMPORT], no_repeats=True)
        print(r.stdout, end="")
        c.true("ESX's RMS = atx-merseyside-import.ndjson (ids aside)", r.returncode == 0, r.stdout)

        # Essex deletes the telephone
        r = send(polegate, esx, last1)
        c.true("ESX takes its DELETE", r.returncode == 0, r.stderr.strip())
        r = wait_rms(args, mer, [ATX_BURGLARY], expect_fmt="atx", no_repeats=True)
        print(r.stdout, end="")
        c.true("MER's RMS = ESX's final state (telephone and its link gone)", r.returncode == 0,
               r.stdout)

        # Echoes: each RMS exports what it imported; nothing may come back
        # (each gateway recognises them, accepts them and publishes nothing: the ack
        # says accepted with no ids)
        esx_before, mer_before = len(esx.messages()), len(mer.messages())
        echoes = [(mer, p) for p in mer.messages()] + [(esx, p) for p in esx.messages()]
        for force, p in echoes:
            r = send(polegate, force, p)
            c.true("%s drops its RMS's echo %s" % (force.name, os.path.basename(p)),
                   r.returncode == 0 and '"status":"accepted","ids":[]' in r.stdout,
                   r.stdout + r.stderr)
        time.sleep(3)
        c.true("no echo reaches ESX's RMS", len(esx.messages()) == esx_before,
               "%d -> %d" % (esx_before, len(esx.messages())))
        c.true("no echo reaches MER's RMS", len(mer.messages()) == mer_before,
               "%d -> %d" % (mer_before, len(mer.messages())))
        own = [p for p in esx.messages() if '"orgUnit":"ESX' in open(p, encoding="utf-8").read()]
        c.true("ESX's RMS never got ESX's own records", not own, ", ".join(own))

        if args.demo:
            for force in (esx, mer):
                print("\n== what %s's RMS (%s) received: %d message(s)"
                      % (force.name, force.fmt.upper(), len(force.messages())))
                print("\n".join(summary(force)))
        else:
            # Fault test 3: SIGKILL of MER's daemon while it delivers a backlog
            corpus = os.path.join(work, "fault.ndjson")
            n = fault_corpus(corpus, args.fault_records)
            c.true("MER stops cleanly", mer.stop() == 0)
            r = send(polegate, esx, corpus)
            c.true("ESX takes %d more messages" % n, r.returncode == 0, r.stderr.strip())
            stored = len(mer.messages())
            mer.start(polegated)
            deadline = time.monotonic() + 60
            while len(mer.messages()) == stored and time.monotonic() < deadline:
                time.sleep(0.02)
            mer.kill()
            killed_at = len(mer.messages())
            print("two_force: MER's daemon killed with %d of its documents stored"
                  % (killed_at - stored))
            c.true("killed while delivering", killed_at > stored)
            mer.start(polegated)
            r = wait_rms(args, mer, [ATX_BURGLARY, corpus], expect_fmt="atx", no_repeats=True,
                         timeout=240)
            print(r.stdout.splitlines()[0] if r.stdout else r.stderr)
            c.true("after the restart every update reached MER's RMS, none twice",
                   r.returncode == 0, r.stdout[-3000:])
            repeats = sum(1 for l in open(mer.rms_log, encoding="utf-8", errors="replace")
                          if l.startswith("repeat "))
            print("two_force: the RMS stand-in recognised %d message(s) sent again" % repeats)
            unencodable(args, c, polegate, esx, mer, work, t_em)
        ok = not c.failures
    except Exception as exc:  # noqa: BLE001
        c.failures.append("error: %s: %s" % (type(exc).__name__, exc))
        print("FAIL error: %s: %s" % (type(exc).__name__, exc))
    finally:
        for force in (esx, mer):
            rc = force.stop()
            c.true("%s exits 0 on SIGTERM" % force.name, rc == 0, str(rc))
            force.stop_rms()
    ok = ok and not c.failures
    if not ok:
        for force in (esx, mer):
            print("--- %s polegated log:\n%s" % (force.name, tail(force.log, 40)))
            print("--- %s RMS stand-in log:\n%s" % (force.name, tail(force.rms_log, 10)))
    print("two_force: %d passed, %d failed" % (c.passed, len(c.failures)))
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
