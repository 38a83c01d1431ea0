#!/usr/bin/env python3
"""pbjson interop check: our proto3 JSON against Google's own implementation.

Runs pbjson_dump (C), which prints for each sample message its name, full type name,
packed protobuf bytes (hex) and the JSON line pg_pbjson_encode wrote. For each one,
with classes that protoc generated from the same .proto files, asserts:

  json_format.MessageToDict(msg) == json.loads(our line)
  json_format.Parse(our line, Type()) == msg

Needs Python's protobuf package (tests/interop/requirements.txt).
"""
import argparse
import json
import math
import struct
import subprocess
import sys


FLT_MAX = struct.unpack("<f", bytes.fromhex("ffff7f7f"))[0]


def as_float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def equal(a, b):
    """== but NaN equals NaN, and -0.0 differs from 0.0 (both matter on the wire).

    One documented exception: Google's Python writes FLT_MAX as 3.4028235e+38, which
    reads back above FLT_MAX and which its own Parse then refuses (protobuf issue
    #8336); we write the exact value, the same float32. The Parse check below still
    compares every number bit for bit."""
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if abs(a) > FLT_MAX and abs(b) == FLT_MAX and as_float32(a) == b:
            return True
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(b, float) and isinstance(a, int) and not isinstance(a, bool):
        return equal(b, a)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True, help="path of the pbjson_dump program")
    ap.add_argument("--pypath", required=True, help="where protoc wrote the _pb2 modules")
    args = ap.parse_args()

    sys.path.insert(0, args.pypath)
    try:
        from google.protobuf import json_format, symbol_database
    except ImportError as e:
        print(f"pbjson_check: {e}: scripts/install-deps (tests/interop/requirements.txt)",
              file=sys.stderr)
        return 1
    import pbjson_legacy_pb2  # noqa: F401  (registers the types)
    import pbjson_types_pb2  # noqa: F401
    from polegate.pole.v1 import pole_pb2  # noqa: F401

    db = symbol_database.Default()
    out = subprocess.run([args.dump], check=True, capture_output=True).stdout
    # Not splitlines(): that also splits at U+2028, which a JSON string may hold raw.
    lines = [ln for ln in out.decode("utf-8").split("\n") if ln]
    passed = failed = 0
    for line in lines:
        name, type_name, packed, ours = line.split("\t", 3)
        cls = db.GetSymbol(type_name)
        msg = cls()
        msg.ParseFromString(bytes.fromhex(packed))
        problems = []
        try:
            theirs = json_format.MessageToDict(msg)
            mine = json.loads(ours)
            if not equal(theirs, mine):
                problems.append(f"MessageToDict differs:\n  google: {json.dumps(theirs, sort_keys=True)}"
                                f"\n  ours:   {json.dumps(mine, sort_keys=True)}")
            parsed = json_format.Parse(ours, cls())
            # Compared as bytes, not with ==, so that a NaN field can compare equal.
            if parsed.SerializeToString(deterministic=True) != msg.SerializeToString(deterministic=True):
                problems.append(f"Parse differs:\n  parsed: {parsed}\n  packed: {msg}")
        except (ValueError, json_format.ParseError) as e:
            problems.append(f"{type(e).__name__}: {e}\n  ours: {ours}")
        if problems:
            failed += 1
            print(f"FAIL {name} ({type_name})")
            for p in problems:
                print("  " + p)
        else:
            passed += 1
            print(f"ok   {name} ({type_name})")
    if passed + failed < 10:
        print(f"pbjson_check: only {passed + failed} samples from {args.dump}", file=sys.stderr)
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
