#!/usr/bin/env python3
"""tests/interop/check_topic.py: read a polegate topic the way a partner would.

A Kafka client nobody here wrote (confluent-kafka) reads the topic from the beginning,
and classes that `protoc --python_out` generates from proto/ decode each value
according to its `pg-type` header (docs/topics.md). Nothing of polegate's C code is
involved, so this checks the wire contract, not our own reading of it.

As a program it prints one JSON line per record (key, headers, the decoded update in
proto3 JSON with the .proto field names, or null for a tombstone). As a module,
read_topic() returns the same records as dicts with the decoded message object.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(ROOT, "proto")
PROTO_FILE = "polegate/pole/v1/pole.proto"

# The broker of scripts/kafka-local, on the port it is told to use (scripts/common.sh).
DEFAULT_BROKERS = "127.0.0.1:%s" % os.environ.get("POLEGATE_KAFKA_PORT", "19092")

# pg-type header value -> message class name in pole_pb2 (docs/topics.md).
PG_TYPES = {
    "polegate.pole.v1.EntityUpdate": "EntityUpdate",
    "polegate.pole.v1.LinkUpdate": "LinkUpdate",
}


class TopicError(Exception):
    """A record that breaks the wire contract: the message says which and why."""


def load_pole(gen_dir=None):
    """Generate pole_pb2 from proto/ with protoc into gen_dir (a fresh temporary
    folder when None) and import it. Returns the module."""
    if gen_dir is None:
        gen_dir = tempfile.mkdtemp(prefix="pg-pyproto-")
    os.makedirs(gen_dir, exist_ok=True)
    subprocess.run(
        ["protoc", "--python_out=" + gen_dir, "-I" + PROTO_DIR, PROTO_FILE],
        check=True,
    )
    if gen_dir not in sys.path:
        sys.path.insert(0, gen_dir)
    return importlib.import_module("polegate.pole.v1.pole_pb2")


def _headers(msg):
    out = {}
    for name, value in msg.headers() or []:
        if name in out:
            raise TopicError("%s: header %r appears twice" % (_where(msg), name))
        out[name] = value.decode("utf-8") if value is not None else None
    return out


def _where(msg):
    return "%s[%d]@%d" % (msg.topic(), msg.partition(), msg.offset())


def decode(pole, msg):
    """One Kafka message -> a record dict: topic, partition, offset, key (text),
    headers (dict of text), type (the pg-type), value (the decoded message, or None
    for a tombstone). Raises TopicError when the record breaks the contract."""
    headers = _headers(msg)
    key = msg.key()
    if key is None:
        raise TopicError("%s: record without a key" % _where(msg))
    key = key.decode("utf-8")
    pg_type = headers.get("pg-type")
    if pg_type not in PG_TYPES:
        raise TopicError("%s: pg-type %r is not one of %s" % (_where(msg), pg_type, sorted(PG_TYPES)))
    value = None
    if msg.value() is not None:
        value = getattr(pole, PG_TYPES[pg_type])()
        try:
            value.ParseFromString(msg.value())
        except Exception as exc:  # the protobuf runtime raises DecodeError and others
            raise TopicError("%s: value is not a %s: %s" % (_where(msg), pg_type, exc)) from exc
        if value.id != key:
            raise TopicError("%s: key %s but value id %s" % (_where(msg), key, value.id))
    return {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": key,
        "headers": headers,
        "type": pg_type,
        "value": value,
    }


def partition_count(brokers, topic, timeout=10.0):
    """How many partitions topic has (0 when the broker does not know it)."""
    from confluent_kafka.admin import AdminClient

    meta = AdminClient({"bootstrap.servers": brokers}).list_topics(topic, timeout=timeout)
    tmeta = meta.topics.get(topic)
    return len(tmeta.partitions) if tmeta is not None and tmeta.error is None else 0


def read_topic(brokers, topic, pole, expect=None, timeout=30.0):
    """Every record of topic from the beginning, in (partition, offset) order.
    Stops at the end of every partition once `expect` records (if given) are there;
    waits up to `timeout` seconds for them, then returns what it has."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition, OFFSET_BEGINNING

    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "pg-interop-check",  # required by the client; nothing is committed
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "allow.auto.create.topics": False,
    })
    records = []
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while partitions is None:
            meta = consumer.list_topics(topic, timeout=max(1.0, deadline - time.monotonic()))
            tmeta = meta.topics.get(topic)
            if tmeta is not None and tmeta.error is None and tmeta.partitions:
                partitions = sorted(tmeta.partitions)
            elif time.monotonic() >= deadline:
                return records
            else:
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_eof = set()
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_eof.add(msg.partition())
                    if len(at_eof) == len(partitions) and (expect is None or len(records) >= expect):
                        break
                    continue
                raise KafkaException(msg.error())
            at_eof.discard(msg.partition())
            records.append(decode(pole, msg))
    finally:
        consumer.close()
    records.sort(key=lambda r: (r["partition"], r["offset"]))
    return records


def murmur2_partition(key, partitions):
    """The partition Kafka's Java producer picks for key (bytes): murmur2 of the key,
    made positive, modulo the partition count (org.apache.kafka.common.utils.Utils)."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(key)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    tail = length - rest
    if rest == 3:
        h ^= key[tail + 2] << 16
    if rest >= 2:
        h ^= key[tail + 1] << 8
    if rest >= 1:
        h ^= key[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def _date(d):
    """A Date as text; a partial date shows only what is known (1990-02)."""
    parts = [("%04d" % d.year) if d.year else "", ("%02d" % d.month) if d.month else "",
             ("%02d" % d.day) if d.day else ""]
    return "-".join(p for p in parts if p) if d.year else "?"


def summary(pole, record):
    """One line a person can read: where, what, which version, which record."""
    where = "%d@%-3d" % (record["partition"], record["offset"])
    v = record["value"]
    if v is None:
        return "%s %-9s %s (tombstone: compaction forgets this key)" % (where, "", record["key"])
    op = pole.Operation.Name(v.operation).replace("OPERATION_", "")
    head = "%s %-6s v%-3d %s" % (where, op, v.version, v.id)
    if record["type"].endswith("LinkUpdate"):
        ends = getattr(v, "from"), v.to
        return "%s  link %s -%s-> %s" % (head, ends[0].native_id or ends[0].id,
                                         pole.LinkRole.Name(v.role).replace("LINK_ROLE_", ""),
                                         ends[1].native_id or ends[1].id)
    kind = pole.EntityKind.Name(v.kind).replace("ENTITY_KIND_", "")
    body = v.WhichOneof("body")
    text = ""
    if body == "person":
        p = v.person
        ethnicity = "/".join(x for x in (
            pole.SelfDefinedEthnicity.Name(p.self_defined_ethnicity).replace("SELF_DEFINED_ETHNICITY_", ""),
            pole.OfficerDefinedEthnicity.Name(p.officer_defined_ethnicity).replace("OFFICER_DEFINED_ETHNICITY_", ""),
        ) if x != "UNSPECIFIED") or "-"
        text = "%s, %s  born %s  %s  ethnicity %s" % (p.name.surname, " ".join(p.name.forenames),
                                                      _date(p.date_of_birth), p.nationality, ethnicity)
    elif body == "location":
        a = v.location
        text = ", ".join(x for x in (a.premises, a.street, a.town, a.postcode) if x)
    elif body == "vehicle":
        text = "%s %s %s" % (v.vehicle.vrm, v.vehicle.make, v.vehicle.model)
    elif body == "item":
        text = "%s (%s %d.%02d)" % (v.item.description, v.item.value.currency, v.item.value.minor_units // 100,
                                    v.item.value.minor_units % 100)
    elif body == "telephone":
        text = v.telephone.number
    elif body == "occurrence":
        text = "%s %s" % (v.occurrence.reference, v.occurrence.offences[0].description if v.occurrence.offences else "")
    elif body is not None:
        text = body
    return "%s  %-10s %s %s" % (head, kind, v.origin.native_id, text)


def as_json(record):
    """A record as a JSON-serialisable dict (value in proto3 JSON, .proto names)."""
    from google.protobuf.json_format import MessageToDict

    out = dict(record)
    if record["value"] is not None:
        out["value"] = MessageToDict(record["value"], preserving_proto_field_name=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", default=DEFAULT_BROKERS)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--expect", type=int, help="wait until at least this many records are there")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    ap.add_argument("--gen-dir", help="where protoc writes pole_pb2 (default: a temporary folder)")
    ap.add_argument("--summary", action="store_true", help="one readable line per record instead of JSON")
    args = ap.parse_args(argv)

    pole = load_pole(args.gen_dir)
    try:
        records = read_topic(args.brokers, args.topic, pole, args.expect, args.timeout)
    except TopicError as exc:
        print("check_topic: %s" % exc, file=sys.stderr)
        return 1
    for r in records:
        if args.summary:
            print(summary(pole, r))
        else:
            print(json.dumps(as_json(r), ensure_ascii=False, sort_keys=True))
    if args.expect is not None and len(records) < args.expect:
        print("check_topic: %d records on %s, expected at least %d" % (len(records), args.topic, args.expect),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
