#!/usr/bin/env python3
"""tests/integration/e2e_atx.py: the Athena-like force ESX end to end on a real broker.

polegated runs with a generated config (adapter athena, intake on a free tcp port, a
fresh store and a fresh topic), `polegate send` gives it tests/fixtures/atx-burglary.ndjson,
and the topic is then read back by clients nobody here wrote: kcat (keys, headers,
tombstones), confluent-kafka with classes protoc generates from proto/ (every field),
and Kafka's own Java console consumer (keys and headers). Ids are checked against
uuid5 computed here from the documented names (docs/canonical-model.md).

Needs the broker of scripts/kafka-local (ctest's fixture starts it). Exit 0 when every
check passes, 1 with the list of failures otherwise. The daemon is killed at the end
whatever happens.
"""

import argparse
import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import check_topic  # noqa: E402  (after the path is set)

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "atx-burglary.ndjson")
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:polegate:pole:v1")
FORCE, SYSTEM = "ESX", "ATHENA"
ORG_UNIT = "ESX/CID/COLCHESTER"
MSG_PREFIX = "0b7c7a52-6a83-4d71-9a55-5a3f7d0c2e"


def entity_id(kind, native_id):
    return str(uuid.uuid5(NAMESPACE, "%s/%s/%s/%s" % (FORCE, SYSTEM, kind, native_id)))


def link_id(from_id, role, to_id):
    return str(uuid.uuid5(NAMESPACE, "link/%s/%s/%s" % (from_id, role, to_id)))


def instant(text):
    """RFC 3339 text -> (seconds, nanos) since the epoch, as in a protobuf Timestamp."""
    t = datetime.datetime.fromisoformat(text)
    return int(t.timestamp()), t.microsecond * 1000


class Checks:
    """Collects failures so one run reports all of them, not just the first."""

    def __init__(self):
        self.failures = []
        self.passed = 0

    def eq(self, what, got, want):
        if got == want:
            self.passed += 1
        else:
            self.failures.append("%s: got %r, want %r" % (what, got, want))

    def true(self, what, cond):
        if cond:
            self.passed += 1
        else:
            self.failures.append(what)


# ---------------------------------------------------------------- what ESX publishes

# (native type, native id, revision, message id suffix, modifiedAt)
ENTITIES = [
    ("LOCATION", "L0000000045", 3, "00", "2026-03-29T07:12:00+01:00"),
    ("PERSON", "P0000123456", 7, "01", "2026-03-29T07:13:00+01:00"),
    ("PERSON", "P0000123999", 2, "02", "2026-03-29T07:14:00+01:00"),
    ("VEHICLE", "V0000000301", 1, "03", "2026-03-29T07:14:30+01:00"),
    ("ITEM", "I0000000777", 1, "04", "2026-03-29T07:15:00+01:00"),
    ("TELEPHONE", "T0000000042", 1, "05", "2026-03-29T07:15:10+01:00"),
    ("OCCURRENCE", "O0000004711", 3, "06", "2026-03-29T07:20:00+01:00"),
]

# (from type, from id, role, to type, to id, validFrom)
LINKS = [
    ("PERSON", "P0000123456", "USES", "TELEPHONE", "T0000000042", (2025, 11, 1)),
    ("PERSON", "P0000123456", "KEEPER", "VEHICLE", "V0000000301", None),
    ("PERSON", "P0000123999", "HOME_ADDRESS", "LOCATION", "L0000000045", (2021, 6, 1)),
    ("PERSON", "P0000123999", "OWNER", "ITEM", "I0000000777", None),
    ("OCCURRENCE", "O0000004711", "SUSPECT", "PERSON", "P0000123456", None),
    ("OCCURRENCE", "O0000004711", "VICTIM", "PERSON", "P0000123999", None),
    ("OCCURRENCE", "O0000004711", "OCCURRED_AT", "LOCATION", "L0000000045", None),
    ("OCCURRENCE", "O0000004711", "STOLEN", "ITEM", "I0000000777", None),
    ("OCCURRENCE", "O0000004711", "VEHICLE_INVOLVED", "VEHICLE", "V0000000301", None),
]

DELETED = ("TELEPHONE", "T0000000042", 2, "63", "2026-10-25T01:29:00+00:00")
# Deleting the telephone deletes every link from and to it.
DELETED_LINKS = [LINKS[0]]

# Every record has all nine, tombstones too (docs/topics.md).
HEADERS = ["pg-type", "pg-schema", "pg-origin-force", "pg-marking", "pg-operation", "pg-version",
           "pg-agreement", "pg-policy-version", "pg-redactions"]

# Upserts, then per delete the DELETE and its tombstone (docs/topics.md).
EXPECTED_RECORDS = len(ENTITIES) + len(LINKS) + 2 * (1 + len(DELETED_LINKS))


# ---------------------------------------------------------------- running things

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_keys(polegate, tmp):
    """The gateway's CURVE pair and the RMS's, the RMS on the intake's allow-list."""
    keys = os.path.join(tmp, "keys")
    os.mkdir(keys, 0o700)
    for name in ("gateway", "rms"):
        r = subprocess.run([polegate, "keygen", os.path.join(keys, name)], capture_output=True,
                           text=True, check=True)
        if name == "rms":
            with open(os.path.join(keys, "intake-clients"), "w", encoding="ascii") as f:
                f.write("%s athena-rms\n" % r.stdout.strip())
    return keys


def write_config(path, port, store_dir, brokers, topic, keys):
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "# e2e_atx: force ESX behind an Athena-like RMS, generated per run.\n"
            "force:\n  code: ESX\n"
            "adapter:\n  name: athena\n"
            "intake:\n  endpoint: tcp://127.0.0.1:%d\n"
            "curve:\n  secret_key_file: %s/gateway.key\n"
            "  intake_clients_file: %s/intake-clients\n"
            "store:\n  path: %s\n  map_size: 64MiB\n"
            "kafka:\n  brokers: %s\n"
            "log:\n  level: info\n"
            # One destination taking everything the sample has (OFFICIAL-SENSITIVE, P)
            # on the run's own topic (docs/policy.md).
            "policy:\n  version: E2E-1\n"
            "  agreements: [{name: ISA-E2E, description: e2e}]\n"
            "  destinations:\n"
            "    - {name: national, kind: national, topic: %s, agreement: ISA-E2E,\n"
            "       max_classification: OFFICIAL-SENSITIVE, kinds: all}\n"
            % (port, keys, keys, store_dir, brokers, topic)
        )


def create_topic(brokers, topic, partitions=3):
    """The gateway does not create topics (docs/topics.md): a compacted one, as
    partners are told to make."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})  # must outlive the future
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                            config={"cleanup.policy": "compact"})])
    futures[topic].result(timeout=30)


def wait_listening(port, daemon, log_path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError("polegated exited with %s before listening:\n%s"
                               % (daemon.returncode, tail(log_path)))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("polegated is not listening on %d after %.0fs:\n%s" % (port, timeout, tail(log_path)))


def _die_with_parent():
    """In the daemon's child before exec: SIGKILL it if this test dies first (a ctest
    timeout kills the test, not its children)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_daemon(daemon):
    """SIGTERM (a clean shutdown flushes Kafka), then SIGKILL if it hangs."""
    if daemon.poll() is not None:
        return daemon.returncode
    daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(timeout=20)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        return "killed"


def tail(path, n=40):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as exc:
        return "(no log: %s)" % exc


def check_reload_allow_list(c, polegate, daemon, log_path, port, keys, stranger, stranger_pub):
    """SIGHUP reads the allow-list again: the RMS's key, taken off it, is not heard any
    more; the key put on it in its place is (it was served until a restart)."""
    with open(os.path.join(keys, "intake-clients"), "w", encoding="ascii") as f:
        f.write("%s stranger\n" % stranger_pub)
    daemon.send_signal(signal.SIGHUP)
    deadline, text = time.time() + 20, ""
    while time.time() < deadline and "read again: 1 keys (was 1)" not in text:
        time.sleep(0.2)
        with open(log_path, encoding="utf-8") as f:
            text = f.read()
    c.true("SIGHUP reads the allow-list again (logged)", "read again: 1 keys (was 1)" in text)
    server = os.path.join(keys, "gateway.pub")
    gone = run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % port, "--timeout-ms", "1000",
                "--retries", "0", "--secret-key", os.path.join(keys, "rms.key"),
                "--server-key", server, FIXTURE], timeout=60)
    c.eq("send with the key taken off the list at the reload: no answer (exit 2)",
         gone.returncode, 2)
    now = run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % port, "--secret-key",
               stranger + ".key", "--server-key", server, FIXTURE], timeout=120)
    c.eq("send with the key put on the list at the reload (stderr: %s)" % now.stderr.strip(),
         now.returncode, 0)


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def read_kcat(brokers, topic):
    """[(partition, offset, key, value length or -1 for null, headers dict)] from kcat."""
    out = run(["kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", "%p\t%o\t%k\t%S\t%h\n"], timeout=60)
    if out.returncode != 0:
        raise RuntimeError("kcat failed (%d): %s" % (out.returncode, out.stderr))
    rows = []
    for line in out.stdout.splitlines():
        p, o, k, size, hdrs = line.split("\t")
        headers = dict(h.split("=", 1) for h in hdrs.split(",") if h)
        rows.append((int(p), int(o), k, int(size), headers))
    return sorted(rows)


def read_java(brokers, topic, count):
    """[(key, headers dict, null?)] from Kafka's own console consumer (scripts/kafka-local tool)."""
    out = run([os.path.join(ROOT, "scripts", "kafka-local"), "tool",
               "org.apache.kafka.tools.consumer.ConsoleConsumer",
               "--bootstrap-server", brokers, "--topic", topic, "--from-beginning",
               "--max-messages", str(count), "--timeout-ms", "30000",
               "--property", "print.key=true", "--property", "print.headers=true",
               "--property", "print.value=false", "--property", "print.partition=true",
               "--property", "print.offset=true", "--property", "null.literal=<null>"],
              timeout=120)
    if out.returncode != 0:
        raise RuntimeError("kafka-console-consumer failed (%d): %s" % (out.returncode, out.stderr[-2000:]))
    rows = []
    for line in out.stdout.splitlines():
        # Partition:P<TAB>Offset:O<TAB>headers<TAB>key
        part, off, hdrs, key = line.split("\t")
        headers = dict(h.split(":", 1) for h in hdrs.split(",") if h and hdrs != "NO_HEADERS")
        rows.append((int(part.split(":")[1]), int(off.split(":")[1]), key, headers))
    return sorted(rows)


# ---------------------------------------------------------------- the checks

def check_envelope(c, pole, rec, want_type, native_type, native_id):
    v = rec["value"]
    where = "%s %s/%s" % (rec["type"].rsplit(".", 1)[1], native_type, native_id)
    c.eq(where + " origin.force", v.origin.force, FORCE)
    c.eq(where + " origin.system", v.origin.system, SYSTEM)
    c.eq(where + " origin.org_unit", v.origin.org_unit, ORG_UNIT)
    c.eq(where + " marking.classification", v.marking.classification,
         pole.CLASSIFICATION_OFFICIAL_SENSITIVE)
    c.eq(where + " marking.handling", v.marking.handling, pole.HANDLING_P)
    c.eq(where + " pg-type", rec["type"], want_type)
    h = rec["headers"]
    c.eq(where + " header pg-origin-force", h.get("pg-origin-force"), FORCE)
    c.eq(where + " header pg-version", h.get("pg-version"), str(v.version))
    c.eq(where + " header pg-operation", h.get("pg-operation"),
         pole.Operation.Name(v.operation).replace("OPERATION_", ""))
    c.eq(where + " header pg-schema", h.get("pg-schema"), "polegate.pole.v1")
    c.eq(where + " header pg-marking", h.get("pg-marking"), "OFFICIAL-SENSITIVE;P")
    c.eq(where + " headers", sorted(h), sorted(HEADERS))


def check_bodies(c, pole, by_key):
    def body(kind, nid):
        rec = by_key.get(entity_id(kind, nid))
        return rec["value"] if rec else None

    p = body("PERSON", "P0000123456")
    if p:
        c.eq("O'Brien kind", p.kind, pole.ENTITY_KIND_PERSON)
        c.eq("O'Brien surname", p.person.name.surname, "O'Brien")
        c.eq("O'Brien forenames (accents kept)", list(p.person.name.forenames), ["Seán", "Patrick"])
        c.eq("O'Brien title", p.person.title, "Mr")
        c.eq("O'Brien date of birth", (p.person.date_of_birth.year, p.person.date_of_birth.month,
                                       p.person.date_of_birth.day), (1985, 7, 14))
        c.eq("O'Brien place of birth", p.person.place_of_birth, "Cork")
        c.eq("O'Brien sex", p.person.sex, pole.SEX_MALE)
        c.eq("O'Brien SDE", p.person.self_defined_ethnicity, pole.SELF_DEFINED_ETHNICITY_W2)
        c.eq("O'Brien ODE", p.person.officer_defined_ethnicity, pole.OFFICER_DEFINED_ETHNICITY_IC1)
        c.eq("O'Brien nationality", p.person.nationality, "IRL")
        c.eq("O'Brien PNC", p.person.pnc_id, "1985/0123456J")
        c.eq("O'Brien CRO", p.person.cro_number, "123456/99L")
        c.eq("O'Brien warning markers", list(p.person.warning_markers), [pole.WARNING_MARKER_VI])
        c.eq("O'Brien aliases", len(p.person.aliases), 1)
        if p.person.aliases:
            a = p.person.aliases[0]
            c.eq("alias name", (a.name.surname, list(a.name.forenames)), ("Bryan", ["Sean"]))
            c.eq("alias partial date of birth (day unknown = 0)",
                 (a.date_of_birth.year, a.date_of_birth.month, a.date_of_birth.day), (1985, 7, 0))
        c.eq("O'Brien retention", (p.retention.mopi_group, p.retention.review_date.year,
                                   p.retention.review_date.month, p.retention.review_date.day),
             (2, 2036, 3, 29))
    z = body("PERSON", "P0000123999")
    if z:
        c.eq("Łukaszewska surname", z.person.name.surname, "Łukaszewska")
        c.eq("Łukaszewska forenames", list(z.person.name.forenames), ["Zoë", "Anna"])
        c.eq("Łukaszewska partial date of birth", (z.person.date_of_birth.year, z.person.date_of_birth.month,
                                                   z.person.date_of_birth.day), (1990, 2, 0))
        c.eq("Łukaszewska sex", z.person.sex, pole.SEX_FEMALE)
        c.eq("Łukaszewska SDE", z.person.self_defined_ethnicity, pole.SELF_DEFINED_ETHNICITY_W9)
        c.eq("Łukaszewska nationality", z.person.nationality, "POL")
    loc = body("LOCATION", "L0000000045")
    if loc:
        c.eq("location kind", loc.kind, pole.ENTITY_KIND_LOCATION)
        c.eq("postcode normalised", loc.location.postcode, "CO3 3ES")
        c.eq("premises", loc.location.premises, "Flat 2")
        c.eq("street", loc.location.street, "14 Crouch Street")
        c.eq("town", loc.location.town, "Colchester")
        c.eq("uprn", loc.location.uprn, "100091234567")
        c.true("geo lat/lon %r" % (loc.location.geo,),
               abs(loc.location.geo.lat - 51.8891) < 1e-9 and abs(loc.location.geo.lon - 0.9042) < 1e-9)
    veh = body("VEHICLE", "V0000000301")
    if veh:
        c.eq("VRM normalised", veh.vehicle.vrm, "AB12CDE")
        c.eq("vehicle make/model", (veh.vehicle.make, veh.vehicle.model), ("FORD", "FOCUS"))
        c.eq("vehicle colour", veh.vehicle.colour, pole.COLOUR_SILVER)
        c.eq("vehicle year", veh.vehicle.year, 2012)
    item = body("ITEM", "I0000000777")
    if item:
        c.eq("item category", item.item.category, pole.ITEM_CATEGORY_ELECTRONICS)
        c.eq("item serial", item.item.serial_number, "CN0X1234")
        c.eq("item value", (item.item.value.currency, item.item.value.minor_units), ("GBP", 125000))
    tel = body("TELEPHONE", "T0000000042")
    if tel:
        c.eq("telephone E.164", tel.telephone.number, "+447700900123")
        c.eq("telephone kind", tel.telephone.kind, pole.TELEPHONE_KIND_MOBILE)
    occ = body("OCCURRENCE", "O0000004711")
    if occ:
        o = occ.occurrence
        c.eq("occurrence reference", o.reference, "42/12345/26")
        c.eq("occurrence kind", o.kind, pole.OCCURRENCE_KIND_CRIME)
        c.eq("offences", [(x.ho_class, x.ho_subclass, x.description) for x in o.offences],
             [(28, 1, "Burglary - dwelling")])
        c.eq("occurred_from", (o.occurred_from.seconds, o.occurred_from.nanos), instant("2026-03-28T23:30:00+00:00"))
        c.eq("occurred_to", (o.occurred_to.seconds, o.occurred_to.nanos), instant("2026-03-29T00:45:00+00:00"))
        c.eq("reported_at (offset +01:00 converted)", (o.reported_at.seconds, o.reported_at.nanos),
             instant("2026-03-29T07:10:00+01:00"))
        c.eq("occurrence status", o.status, pole.OCCURRENCE_STATUS_UNDER_INVESTIGATION)
        c.true("occurrence summary", o.summary.startswith("Rear door forced overnight"))


def check_records(c, pole, records):
    """Every record, link, delete and tombstone, with the right key, headers and content."""
    c.eq("records on the topic", len(records), EXPECTED_RECORDS)
    by_key = {}
    for rec in records:
        by_key.setdefault(rec["key"], []).append(rec)

    upserts = {}
    for kind, nid, rev, msg, modified in ENTITIES:
        key = entity_id(kind, nid)
        recs = by_key.get(key, [])
        ups = [r for r in recs if r["value"] is not None and r["value"].operation == pole.OPERATION_UPSERT]
        c.eq("UPSERTs of %s/%s (key %s)" % (kind, nid, key), len(ups), 1)
        if not ups:
            continue
        rec = ups[0]
        upserts[key] = rec
        v = rec["value"]
        check_envelope(c, pole, rec, "polegate.pole.v1.EntityUpdate", kind, nid)
        c.eq("%s/%s id" % (kind, nid), v.id, key)
        c.eq("%s/%s version" % (kind, nid), v.version, rev)
        c.eq("%s/%s native type/id" % (kind, nid), (v.origin.native_type, v.origin.native_id), (kind, nid))
        c.eq("%s/%s message id" % (kind, nid), v.origin.message_id, MSG_PREFIX + msg)
        c.eq("%s/%s kind" % (kind, nid), pole.EntityKind.Name(v.kind), "ENTITY_KIND_" + kind)
        c.eq("%s/%s modified_at" % (kind, nid), (v.modified_at.seconds, v.modified_at.nanos), instant(modified))
        c.eq("%s/%s body" % (kind, nid), v.WhichOneof("body"), kind.lower())
    check_bodies(c, pole, upserts)

    link_upserts = {}
    for ftype, fid, role, ttype, tid, valid_from in LINKS:
        fu, tu = entity_id(ftype, fid), entity_id(ttype, tid)
        key = link_id(fu, role, tu)
        what = "link %s -%s-> %s" % (fid, role, tid)
        ups = [r for r in by_key.get(key, []) if r["value"] is not None
               and r["value"].operation == pole.OPERATION_UPSERT]
        c.eq("UPSERTs of %s (key %s)" % (what, key), len(ups), 1)
        if not ups:
            continue
        rec = ups[0]
        link_upserts[key] = rec
        v = rec["value"]
        check_envelope(c, pole, rec, "polegate.pole.v1.LinkUpdate", ftype, fid + " " + role)
        c.eq(what + " id", v.id, key)
        c.eq(what + " role", pole.LinkRole.Name(v.role), "LINK_ROLE_" + role)
        c.eq(what + " from", (getattr(v, "from").id, pole.EntityKind.Name(getattr(v, "from").kind),
                              getattr(v, "from").native_id), (fu, "ENTITY_KIND_" + ftype, fid))
        c.eq(what + " to", (v.to.id, pole.EntityKind.Name(v.to.kind), v.to.native_id),
             (tu, "ENTITY_KIND_" + ttype, tid))
        c.true(what + " version >= 1", v.version >= 1)
        if valid_from:
            c.eq(what + " valid_from", (v.valid_from.year, v.valid_from.month, v.valid_from.day), valid_from)
        else:
            c.true(what + " valid_from absent (open)", not v.HasField("valid_from"))
        c.true(what + " valid_to absent (open)", not v.HasField("valid_to"))

    # The DELETE of the telephone, then its tombstone, after its UPSERT, on one partition.
    kind, nid, rev, msg, modified = DELETED
    key = entity_id(kind, nid)
    recs = by_key.get(key, [])
    shape = [("tombstone" if r["value"] is None else pole.Operation.Name(r["value"].operation)) for r in recs]
    c.eq("records of the deleted telephone, in order", shape,
         ["OPERATION_UPSERT", "OPERATION_DELETE", "tombstone"])
    c.eq("the telephone's records share one partition", len({r["partition"] for r in recs}), 1)
    if shape == ["OPERATION_UPSERT", "OPERATION_DELETE", "tombstone"]:
        d, t = recs[1], recs[2]
        v = d["value"]
        check_envelope(c, pole, d, "polegate.pole.v1.EntityUpdate", kind, nid)
        c.eq("DELETE version", v.version, rev)
        c.eq("DELETE message id", v.origin.message_id, MSG_PREFIX + msg)
        c.eq("DELETE modified_at", (v.modified_at.seconds, v.modified_at.nanos), instant(modified))
        c.eq("DELETE has no body", v.WhichOneof("body"), None)
        c.eq("tombstone headers = DELETE headers", t["headers"], d["headers"])
        c.eq("tombstone pg-type", t["type"], "polegate.pole.v1.EntityUpdate")

    for ftype, fid, role, ttype, tid, _ in DELETED_LINKS:
        key = link_id(entity_id(ftype, fid), role, entity_id(ttype, tid))
        what = "deleted link %s -%s-> %s" % (fid, role, tid)
        recs = by_key.get(key, [])
        shape = [("tombstone" if r["value"] is None else pole.Operation.Name(r["value"].operation)) for r in recs]
        c.eq(what + ": records in order", shape, ["OPERATION_UPSERT", "OPERATION_DELETE", "tombstone"])
        if shape == ["OPERATION_UPSERT", "OPERATION_DELETE", "tombstone"]:
            up, d, t = recs
            c.true(what + ": DELETE version %d > UPSERT version %d" % (d["value"].version, up["value"].version),
                   d["value"].version > up["value"].version)
            c.eq(what + ": DELETE ends", (getattr(d["value"], "from").id, d["value"].role, d["value"].to.id),
                 (getattr(up["value"], "from").id, up["value"].role, up["value"].to.id))
            c.eq(what + ": tombstone headers = DELETE headers", t["headers"], d["headers"])
            c.eq(what + ": header pg-operation", d["headers"].get("pg-operation"), "DELETE")

    # No other link lost its life: only the telephone's link was deleted.
    deleted = {r["key"] for r in records if r["value"] is not None and r["value"].operation == pole.OPERATION_DELETE}
    want_deleted = {entity_id(*DELETED[:2])} | {
        link_id(entity_id(f, fi), ro, entity_id(t, ti)) for f, fi, ro, t, ti, _ in DELETED_LINKS}
    c.eq("keys with a DELETE", deleted, want_deleted)
    known = {entity_id(k, n) for k, n, *_ in ENTITIES} | {
        link_id(entity_id(f, fi), ro, entity_id(t, ti)) for f, fi, ro, t, ti, _ in LINKS}
    c.eq("keys nobody expected", sorted(set(by_key) - known), [])


def check_partitions(c, records, count):
    """Every key on the partition a Java producer would pick (murmur2), so Java and
    librdkafka producers of the same key agree."""
    c.true("the topic has partitions", count > 0)
    for r in records:
        c.eq("partition of %s" % r["key"], r["partition"],
             check_topic.murmur2_partition(r["key"].encode(), count) if count else None)


def check_kcat(c, records, rows):
    """kcat must see exactly what the Python client saw: partition, offset, key, value
    size (-1 for a tombstone) and headers."""
    want = sorted((r["partition"], r["offset"], r["key"],
                   -1 if r["value"] is None else len(r["value"].SerializeToString()), r["headers"])
                  for r in records)
    c.eq("kcat rows", len(rows), len(want))
    for got, exp in zip(rows, want):
        c.eq("kcat %d@%d key" % got[:2], got[2], exp[2])
        c.eq("kcat %d@%d headers" % got[:2], got[4], exp[4])
        c.eq("kcat %d@%d null value" % got[:2], got[3] == -1, exp[3] == -1)
    c.eq("kcat tombstones", sum(1 for r in rows if r[3] == -1), 1 + len(DELETED_LINKS))


def check_java(c, records, rows):
    want = sorted((r["partition"], r["offset"], r["key"], r["headers"]) for r in records)
    c.eq("Java console consumer rows", rows, want)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", required=True, help="CMake build tree with gateway/polegated and cli/polegate")
    ap.add_argument("--brokers", default=check_topic.DEFAULT_BROKERS)
    ap.add_argument("--no-java", action="store_true", help="skip Kafka's Java console consumer")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (config, store, log)")
    args = ap.parse_args()

    polegated = os.path.join(args.build_dir, "gateway", "polegated")
    polegate = os.path.join(args.build_dir, "cli", "polegate")
    tmp = tempfile.mkdtemp(prefix="pg-e2e-atx-")
    topic = "pg-e2e-atx-" + uuid.uuid4().hex[:12]
    port = free_port()
    config = os.path.join(tmp, "esx.yaml")
    log_path = os.path.join(tmp, "polegated.log")
    keys = make_keys(polegate, tmp)
    write_config(config, port, os.path.join(tmp, "store"), args.brokers, topic, keys)
    print("e2e_atx: topic %s, intake tcp://127.0.0.1:%d, work folder %s" % (topic, port, tmp))

    c = Checks()
    daemon = None
    ok = False
    try:
        c.eq("polegate namespace", str(NAMESPACE), "19d2bfc8-4ff4-5442-bc13-c99cd15d5dc1")
        pole = check_topic.load_pole(os.path.join(tmp, "py"))
        create_topic(args.brokers, topic)
        with open(log_path, "w") as log:
            daemon = subprocess.Popen([polegated, "--config", config], stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                      preexec_fn=_die_with_parent)
        wait_listening(port, daemon, log_path)

        # A client whose key is not on the allow-list is not heard (docs/security.md).
        stranger = os.path.join(tmp, "stranger")
        stranger_pub = run([polegate, "keygen", stranger], timeout=10).stdout.strip()
        refused = run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % port, "--timeout-ms",
                       "1000", "--retries", "0", "--secret-key", stranger + ".key",
                       "--server-key", os.path.join(keys, "gateway.pub"), FIXTURE], timeout=60)
        c.eq("send with a key not on the allow-list: no answer (exit 2)", refused.returncode, 2)
        sent = run([polegate, "send", "--to", "tcp://127.0.0.1:%d" % port,
                    "--secret-key", os.path.join(keys, "rms.key"),
                    "--server-key", os.path.join(keys, "gateway.pub"), FIXTURE], timeout=120)
        print(sent.stdout, end="")
        c.eq("polegate send exit status (stderr: %s)" % sent.stderr.strip(), sent.returncode, 0)

        records = check_topic.read_topic(args.brokers, topic, pole, expect=EXPECTED_RECORDS, timeout=60)
        print("e2e_atx: %d records read back with confluent-kafka %s" % (len(records), _ck_version()))
        with open(log_path, encoding="utf-8") as f:
            daemon_log = f.read()
        c.true("the refused connection is logged with the peer address and key",
               "intake: connection from 127.0.0.1 refused: key not on the allow-list: "
               in daemon_log)
        check_records(c, pole, records)
        check_partitions(c, records, check_topic.partition_count(args.brokers, topic))
        check_reload_allow_list(c, polegate, daemon, log_path, port, keys, stranger, stranger_pub)
        check_kcat(c, records, read_kcat(args.brokers, topic))
        if not args.no_java:
            check_java(c, records, read_java(args.brokers, topic, len(records)))
        ok = not c.failures
    except Exception as exc:  # noqa: BLE001  any failure is reported with the daemon's log
        c.failures.append("error: %s: %s" % (type(exc).__name__, exc))
    finally:
        if daemon is not None:
            rc = stop_daemon(daemon)
            c.eq("polegated exit status on SIGTERM", rc, 0)
            ok = ok and rc == 0
    for f in c.failures:
        print("FAIL: " + f)
    if not ok:
        print("--- polegated log (%s):\n%s" % (log_path, tail(log_path, 60)))
    print("e2e_atx: %d passed, %d failed" % (c.passed, len(c.failures)))
    if ok and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


def _ck_version():
    import confluent_kafka
    return confluent_kafka.version()[0]


if __name__ == "__main__":
    sys.exit(main())
