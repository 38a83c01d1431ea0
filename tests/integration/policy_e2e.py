#!/usr/bin/env python3
"""tests/integration/policy_e2e.py: the sharing policy end to end on a real broker.

polegated (force ESX, adapter athena) runs with a policy of two destinations, each on
a fresh topic of this run:

- `national`: everything up to OFFICIAL-SENSITIVE except handling-C records;
- `mer` (a partner force): no intelligence and no ethnicity; handling-C records under
  their own agreement.

`polegate send` gives it tests/fixtures/atx-burglary.ndjson with three changes: the
vehicle is marked handling C, and two records are added, an intelligence report about
the suspect (with its SUBJECT link) and a SECRET person. Both topics are read back with
confluent-kafka (content and headers) and kcat (keys and headers), and the audit log
with `polegate audit verify` and `polegate audit query`.

Then a policy change while records wait in the spool (`withheld_in_spool`): what the
new policy withdraws must not be published first.

Needs the broker of scripts/kafka-local (ctest's fixture starts it). Exit 0 when every
check passes, 1 with the list of failures otherwise.
"""

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_atx as e2e  # noqa: E402  helpers: ids, daemon, kcat, checks
from e2e_atx import check_topic, entity_id, link_id  # noqa: E402

POLICY_VERSION = "ESX-E2E-1"
AGREEMENTS = {"national": "ISA-NAT", "mer": "ISA-MER", "mer-c": "ISA-MER-C"}

INTEL = ("INTELLIGENCE", "N0000000088")
SECRET_PERSON = ("PERSON", "P0000666666")
VEHICLE = ("VEHICLE", "V0000000301")
TELEPHONE = ("TELEPHONE", "T0000000042")
PERSONS = [("PERSON", "P0000123456"), ("PERSON", "P0000123999")]

# (from, role, to) of the sample: every link of tests/fixtures/atx-burglary.ndjson.
SAMPLE_LINKS = [tuple(x[:5]) for x in e2e.LINKS]
INTEL_LINK = ("INTELLIGENCE", "N0000000088", "SUBJECT", "PERSON", "P0000123456")
SECRET_LINK = ("PERSON", "P0000666666", "ASSOCIATE", "PERSON", "P0000123456")
DELETED_LINK = tuple(e2e.DELETED_LINKS[0][:5])


def lid(link):
    f, fi, role, t, ti = link
    return link_id(entity_id(f, fi), role, entity_id(t, ti))


def eid(rec):
    return entity_id(*rec)


MER_KINDS = "[person, location, vehicle, item, weapon, telephone, occurrence, custody]"


def write_config(path, port, store_dir, brokers, t_nat, t_mer, audit_path, version=POLICY_VERSION,
                 mer_kinds=MER_KINDS, withdraw_percent=25, mer_redact="[person.ethnicity]"):
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "# policy_e2e: force ESX behind an Athena-like RMS, generated per run.\n"
            "force: {code: ESX}\n"
            "adapter: {name: athena}\n"
            "intake: {endpoint: 'tcp://127.0.0.1:%d'}\n"
            "curve: {insecure: true}\n"
            "store: {path: '%s', map_size: 64MiB, max_withdraw_percent: %d}\n"
            "kafka: {brokers: '%s'}\n"
            "audit: {path: '%s', fsync: event}\n"
            "log: {level: info}\n"
            "policy:\n"
            "  version: %s\n"
            "  agreements:\n"
            "    - {name: ISA-NAT, description: national service}\n"
            "    - {name: ISA-MER, description: Merseyside}\n"
            "    - {name: ISA-MER-C, description: Merseyside accepts handling C conditions}\n"
            "  destinations:\n"
            "    - name: national\n"
            "      kind: national\n"
            "      topic: %s\n"
            "      agreement: ISA-NAT\n"
            "      max_classification: OFFICIAL-SENSITIVE\n"
            "      kinds: all\n"
            "    - name: mer\n"
            "      kind: force\n"
            "      force: MER\n"
            "      topic: %s\n"
            "      agreement: ISA-MER\n"
            "      max_classification: OFFICIAL-SENSITIVE\n"
            "      allow_handling_c: true\n"
            "      handling_c_agreement: ISA-MER-C\n"
            "      kinds: %s\n"
            "      redact: %s\n"
            "  partners:\n"
            "    - {force: MER, topic: polegate.mer.esx.pole.v1, agreement: ISA-MER}\n"
            % (port, store_dir, withdraw_percent, brokers, audit_path, version, t_nat, t_mer,
               mer_kinds, mer_redact))


def write_input(path):
    """The sample, with the vehicle marked C and an intelligence report and a SECRET
    person added before the telephone's DELETE."""
    with open(e2e.FIXTURE, encoding="utf-8") as f:
        msgs = [json.loads(line) for line in f if line.strip()]
    for m in msgs:
        r = m["record"]
        if (r["type"], r["id"]) == VEHICLE:
            r["marking"] = {"classification": "OFFICIAL-SENSITIVE", "handling": "C",
                            "caveat": "Operation Condor partners only"}
    person = next(m for m in msgs if m["record"]["id"] == "P0000123456")
    intel = copy.deepcopy(person)
    intel["header"]["messageId"] = str(uuid.uuid4())
    intel["record"].update({"type": "INTELLIGENCE", "id": INTEL[1], "revision": 1,
                            "body": {"reference": "INT/26/0088", "reportedAt": "2026-03-29T08:00:00+01:00",
                                     "text": "Subject seen loading a silver Focus at the address.",
                                     "grading": {"source": 2, "intelligence": "B", "handling": "P"}}})
    intel["links"] = [{"target": {"type": "PERSON", "id": "P0000123456"}, "role": "SUBJECT",
                       "validFrom": None, "validTo": None}]
    secret = copy.deepcopy(person)
    secret["header"]["messageId"] = str(uuid.uuid4())
    secret["record"].update({"id": SECRET_PERSON[1], "revision": 1})
    secret["record"]["marking"] = {"classification": "SECRET", "handling": "P", "caveat": None}
    secret["record"]["body"]["surname"] = "Withheld"
    secret["links"] = [{"target": {"type": "PERSON", "id": "P0000123456"}, "role": "ASSOCIATE",
                        "validFrom": None, "validTo": None}]
    last = msgs.pop()  # the DELETE stays last
    msgs += [intel, secret, last]
    with open(path, "w", encoding="utf-8") as f:
        for m in msgs:
            f.write(json.dumps(m, ensure_ascii=False) + "\n")
    return len(msgs)


def expected(dest):
    """{key: [shape...]} of what dest must get: UPSERT, DELETE, tombstone in order."""
    entities = [tuple(e[:2]) for e in e2e.ENTITIES]
    links = list(SAMPLE_LINKS)
    if dest == "national":
        entities.remove(VEHICLE)  # handling C
        links = [l for l in links if (l[3], l[4]) != VEHICLE and (l[0], l[1]) != VEHICLE]
        entities.append(INTEL)
        links.append(INTEL_LINK)
    want = {eid(e): ["OPERATION_UPSERT"] for e in entities}
    want.update({lid(l): ["OPERATION_UPSERT"] for l in links})
    want[eid(TELEPHONE)] += ["OPERATION_DELETE", "tombstone"]
    want[lid(DELETED_LINK)] += ["OPERATION_DELETE", "tombstone"]
    return want


HEADERS = sorted(e2e.HEADERS)


def check_topic_records(c, pole, dest, records):
    by_key = {}
    for r in records:
        by_key.setdefault(r["key"], []).append(r)
    shapes = {k: [("tombstone" if r["value"] is None else pole.Operation.Name(r["value"].operation))
                  for r in v] for k, v in by_key.items()}
    want = expected(dest)
    c.eq(dest + ": keys and their records in order", shapes, want)
    for r in records:
        h = r["headers"]
        where = "%s %s" % (dest, r["key"])
        c.eq(where + " headers", sorted(h), HEADERS)
        c.eq(where + " pg-policy-version", h.get("pg-policy-version"), POLICY_VERSION)
        c.eq(where + " pg-origin-force", h.get("pg-origin-force"), "ESX")
    never = [eid(SECRET_PERSON), lid(SECRET_LINK)]
    c.eq(dest + ": nothing of the SECRET person or its link", [k for k in never if k in by_key], [])

    for kind, nid in PERSONS:
        recs = by_key.get(entity_id(kind, nid), [])
        if not recs:
            continue
        p, h = recs[0]["value"], recs[0]["headers"]
        if dest == "national":
            c.eq(dest + " %s ethnicity kept" % nid, p.person.self_defined_ethnicity != 0, True)
            c.eq(dest + " %s pg-redactions" % nid, h.get("pg-redactions"), "none")
            c.eq(dest + " %s pg-agreement" % nid, h.get("pg-agreement"), "ISA-NAT")
        else:
            c.eq(dest + " %s self-defined ethnicity cleared" % nid, p.person.self_defined_ethnicity, 0)
            c.eq(dest + " %s officer-defined ethnicity cleared" % nid, p.person.officer_defined_ethnicity, 0)
            c.true(dest + " %s surname kept" % nid, bool(p.person.name.surname))
            c.eq(dest + " %s pg-redactions" % nid, h.get("pg-redactions"), "person.ethnicity")
            c.eq(dest + " %s pg-agreement" % nid, h.get("pg-agreement"), "ISA-MER")
    if dest == "mer":
        v = by_key.get(eid(VEHICLE), [])
        if v:
            c.eq("mer vehicle (handling C) pg-agreement", v[0]["headers"].get("pg-agreement"), "ISA-MER-C")
            c.eq("mer vehicle pg-marking", v[0]["headers"].get("pg-marking"), "OFFICIAL-SENSITIVE;C")
            c.eq("mer vehicle caveat", v[0]["value"].marking.caveat, "Operation Condor partners only")
    else:
        n = by_key.get(eid(INTEL), [])
        if n:
            c.true("national intelligence text kept", bool(n[0]["value"].intelligence.text))
    return by_key


def audit_lines(polegate, log, *args):
    out = e2e.run([polegate, "audit", "query", log] + list(args), timeout=60)
    if out.returncode != 0:
        raise RuntimeError("polegate audit query %s: %d %s" % (args, out.returncode, out.stderr))
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def check_audit(c, polegate, log, by_dest):
    ver = e2e.run([polegate, "audit", "verify", log], timeout=60)
    c.eq("polegate audit verify exit status (%s %s)" % (ver.stdout.strip(), ver.stderr.strip()),
         ver.returncode, 0)
    for dest, by_key in by_dest.items():
        disclosed = audit_lines(polegate, log, "--destination", dest, "--action", "disclose")
        upserts = sorted(k for k, recs in by_key.items() for r in recs
                         if r["value"] is not None and r["value"].operation == 1)
        c.eq(dest + ": disclose events = UPSERT records", sorted(e["entity_id"] for e in disclosed), upserts)
        c.true(dest + ": disclosures name the policy version",
               all(e["policy_version"] == POLICY_VERSION for e in disclosed))
        withdrawn = audit_lines(polegate, log, "--destination", dest, "--action", "withdraw")
        c.eq(dest + ": withdraw events", sorted((e["entity_id"], e["outcome"]) for e in withdrawn),
             sorted([(eid(TELEPHONE), "deleted"), (lid(DELETED_LINK), "deleted")]))
        withheld = {(e["entity_id"], e["outcome"])
                    for e in audit_lines(polegate, log, "--destination", dest, "--action", "withhold")}
        c.true(dest + ": SECRET person withheld as secret %r" % sorted(withheld),
               (eid(SECRET_PERSON), "secret") in withheld)
        if dest == "national":
            c.true("national: vehicle withheld for handling", (eid(VEHICLE), "handling") in withheld)
        else:
            c.true("mer: intelligence withheld for its kind", (eid(INTEL), "kind") in withheld)
            c.true("mer: intelligence link withheld (link-end)", (lid(INTEL_LINK), "link-end") in withheld)
        redacted = [e for e in disclosed if e["entity_id"] in {entity_id(*p) for p in PERSONS}]
        want = "shared" if dest == "national" else "redacted:person.ethnicity"
        c.true(dest + ": person disclosures say %s" % want, redacted and all(e["outcome"] == want for e in redacted))
    collected = audit_lines(polegate, log, "--action", "collect")
    c.eq("collect events (one per entity UPSERT taken in)", len(collected), len(e2e.ENTITIES) + 2)
    erased = audit_lines(polegate, log, "--action", "erase")
    c.eq("erase events", [e["entity_id"] for e in erased], [eid(TELEPHONE)])
    mine = audit_lines(polegate, log, "--entity", entity_id(*PERSONS[0]))
    c.true("every event of the suspect is metadata only",
           all("surname" not in json.dumps(e) and "O'Brien" not in json.dumps(e) for e in mine))


def person_updates(path):
    """The two persons of the sample again, each one revision later (links as before)."""
    with open(e2e.FIXTURE, encoding="utf-8") as f:
        msgs = [json.loads(line) for line in f if line.strip()]
    out = []
    for m in msgs:
        r = m["record"]
        if (r["type"], r["id"]) in PERSONS and r.get("action", "UPSERT") == "UPSERT":
            m["header"]["messageId"] = str(uuid.uuid4())
            r["revision"] += 1
            out.append(m)
    with open(path, "w", encoding="utf-8") as f:
        for m in out:
            f.write(json.dumps(m, ensure_ascii=False) + "\n")
    return len(out)


def start_polegated(polegated, config, log_path, mode):
    """polegated started with config, its output written ("w") or appended ("a") to
    log_path."""
    with open(log_path, mode) as log:
        return subprocess.Popen([polegated, "--config", config], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=e2e._die_with_parent)


def withheld_in_spool(c, args, polegated, polegate, tmp, topics, pole, port, store, audit_log):
    """A policy change while records wait in the spool. The broker is away (polegated is
    given a port nothing listens on) while new revisions of the two persons are taken
    in and spooled for both destinations; polegated stops; the next policy version no
    longer lets `mer` receive persons, and polegated starts on the real broker. What the
    new policy withdraws must not be published first: `mer` gets no new revision of a
    person, only the withdrawals of what it had; `national` gets the new revisions."""
    dead = "127.0.0.1:%d" % e2e.free_port()
    config = os.path.join(tmp, "esx-away.yaml")
    log_path = os.path.join(tmp, "polegated-2.log")
    write_config(config, port, store, dead, topics["national"], topics["mer"], audit_log)
    feed = os.path.join(tmp, "persons.ndjson")
    n = person_updates(feed)
    c.eq("person updates written", n, len(PERSONS))
    daemon = start_polegated(polegated, config, log_path, "w")
    try:
        e2e.wait_listening(port, daemon, log_path)
        sent = e2e.run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % port, feed], timeout=120)
        c.eq("send with the broker away: accepted into the spool (%s)" % sent.stderr.strip(),
             sent.returncode, 0)
    finally:
        e2e.stop_daemon(daemon)
    v2 = "ESX-E2E-2"
    config2 = os.path.join(tmp, "esx-2.yaml")
    write_config(config2, port, store, args.brokers, topics["national"], topics["mer"], audit_log,
                 version=v2, mer_kinds=MER_KINDS.replace("person, ", ""), withdraw_percent=100,
                 mer_redact="[]")
    daemon = start_polegated(polegated, config2, log_path, "a")
    try:
        e2e.wait_listening(port, daemon, log_path)
        want_nat = sum(len(v) for v in expected("national").values()) + len(PERSONS)
        nat = check_topic.read_topic(args.brokers, topics["national"], pole, expect=want_nat,
                                     timeout=60)
        persons = {eid(p) for p in PERSONS}
        # mer had each person once; now each is withdrawn (DELETE, tombstone), and so is
        # every link with a person at one end.
        want_mer = sum(len(v) for v in expected("mer").values()) + 2 * len(PERSONS)
        mer = check_topic.read_topic(args.brokers, topics["mer"], pole, expect=want_mer,
                                     timeout=60)
    finally:
        c.eq("polegated (policy %s) exit status on SIGTERM" % v2, e2e.stop_daemon(daemon), 0)
    shape = {}
    for r in mer:
        if r["key"] in persons:
            shape.setdefault(r["key"], []).append(
                "tombstone" if r["value"] is None else
                "%s v%d" % (pole.Operation.Name(r["value"].operation), r["value"].version))
    for p in persons:
        ops = shape.get(p, [])
        c.eq("mer %s: one UPSERT (before the change), then withdrawn, no new revision: %s"
             % (p, ops), [o.split()[0] for o in ops],
             ["OPERATION_UPSERT", "OPERATION_DELETE", "tombstone"])
    new_nat = [r for r in nat if r["key"] in persons and r["value"] is not None
               and r["headers"].get("pg-policy-version") in (POLICY_VERSION, v2)]
    c.eq("national: each person twice (before, and the revision spooled while the broker "
         "was away)", sorted(r["key"] for r in new_nat), sorted(list(persons) * 2))
    withheld = audit_lines(polegate, audit_log, "--destination", "mer", "--action", "withhold",
                           "--party", "policy:" + v2)
    c.eq("mer: the spooled person revisions are withhold events of policy %s" % v2,
         sorted(e["entity_id"] for e in withheld if e["entity_id"] in persons), sorted(persons))
    disclosed = audit_lines(polegate, audit_log, "--destination", "mer", "--action", "disclose")
    c.eq("mer: one disclose event per person (the first revision only)",
         sorted(e["entity_id"] for e in disclosed if e["entity_id"] in persons), sorted(persons))
    ver = e2e.run([polegate, "audit", "verify", audit_log], timeout=60)
    c.eq("audit verify after the policy change (%s)" % ver.stderr.strip(), ver.returncode, 0)
    said = e2e.tail(log_path, 400)
    c.true("polegated says what it withheld", "spooled records not yet published withheld" in said)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--brokers", default="127.0.0.1:19092")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    tmp = tempfile.mkdtemp(prefix="pg-policy-e2e-")
    run_id = uuid.uuid4().hex[:10]
    topics = {"national": "polegate.esx.national.e2e-%s.pole.v1" % run_id,
              "mer": "polegate.esx.mer.e2e-%s.pole.v1" % run_id}
    port = e2e.free_port()
    config = os.path.join(tmp, "esx.yaml")
    audit_log = os.path.join(tmp, "audit.log")
    log_path = os.path.join(tmp, "polegated.log")
    feed = os.path.join(tmp, "input.ndjson")
    write_config(config, port, os.path.join(tmp, "store"), args.brokers, topics["national"],
                 topics["mer"], audit_log)
    write_input(feed)
    print("policy_e2e: topics %s, work folder %s" % (", ".join(topics.values()), tmp))

    c = e2e.Checks()
    daemon = None
    ok = False
    try:
        chk = e2e.run([polegated, "--config", config, "--check-config"])
        c.eq("--check-config (%s)" % chk.stderr.strip(), chk.returncode, 0)
        pole = check_topic.load_pole(os.path.join(tmp, "py"))
        for t in topics.values():
            e2e.create_topic(args.brokers, t)
        daemon = start_polegated(polegated, config, log_path, "w")
        e2e.wait_listening(port, daemon, log_path)
        sent = e2e.run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % port, feed], timeout=120)
        print(sent.stdout, end="")
        c.eq("polegate send exit status (stderr: %s)" % sent.stderr.strip(), sent.returncode, 0)

        by_dest = {}
        for dest, topic in topics.items():
            want = sum(len(v) for v in expected(dest).values())
            records = check_topic.read_topic(args.brokers, topic, pole, expect=want, timeout=60)
            print("policy_e2e: %s: %d records" % (dest, len(records)))
            by_dest[dest] = check_topic_records(c, pole, dest, records)
            kc = e2e.read_kcat(args.brokers, topic)
            c.eq(dest + ": kcat keys and headers = confluent-kafka's",
                 sorted((k, tuple(sorted(h.items()))) for _, _, k, _, h in kc),
                 sorted((r["key"], tuple(sorted(r["headers"].items()))) for r in records))
        # The producer writes disclose/withdraw once the broker has the records; a clean
        # stop leaves the log complete.
        rc = e2e.stop_daemon(daemon)
        daemon = None
        c.eq("polegated exit status on SIGTERM", rc, 0)
        check_audit(c, polegate, audit_log, by_dest)
        withheld_in_spool(c, args, polegated, polegate, tmp, topics, pole, port,
                          os.path.join(tmp, "store"), audit_log)
        ok = not c.failures
    except Exception as exc:  # noqa: BLE001  reported with the daemon's log
        c.failures.append("error: %s: %s" % (type(exc).__name__, exc))
    finally:
        if daemon is not None:
            e2e.stop_daemon(daemon)
    for f in c.failures:
        print("FAIL: " + f)
    if not ok:
        print("--- polegated log (%s):\n%s" % (log_path, e2e.tail(log_path, 60)))
    print("policy_e2e: %d passed, %d failed" % (c.passed, len(c.failures)))
    if ok and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
