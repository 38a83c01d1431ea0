#!/usr/bin/env python3
"""test_reasons: no record content in a reason. Every value of every record of the
vendor samples (ATX JSON leaves; NX5 attributes and element texts) is replaced, one at
a time, by values with distinctive content (text with a newline, long text, dates,
times, numbers and positions no sample holds), and each message is translated by
`polegate translate` the way polegated takes it (decode: the reason an RMS gets in its
ack and the intake's dead letter keeps) and, across formats, delivers it (encode: the
reason a partner dead letter keeps). The reasons, printed on stderr, must name the
member path and the rule only: none may hold a distinctive value, and none may break a
line (a value with a newline once forged a log line).
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

# (value, what in a reason would show it); each tell is text no reason holds otherwise.
STRINGS = [
    ("QZXa\nQZXb forged: line", "QZX"),
    ("QZXc" * 40, "QZX"),
    ("1987-02-31", "1987-02-3"),
    ("1987-02-28T25:61:00+01:00", "1987-02-28"),
    ("1987-02-28T10:00:00+19:99", "19:99"),
    ("31/02/1987", "31/02/198"),
    ("28/02/1987 25:61:77", "25:61"),
    ("00/13/1987", "13/198"),
    ("9876543210123", "98765"),
    ("QZX 9ZZ", "QZX"),
    ("-91.123456", "91.12"),
    ("7654.321", "7654"),
]
NUMBERS = [(987654321, "98765"), (-91.123456, "91.12"), (7654.321, "7654"), (True, None)]


def leaves(node, path=()):
    """The paths of every leaf of a JSON value."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, path + (i,))
    else:
        yield path


def put(node, path, value):
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


# Messages a parser stops in, at a value (jansson and libxml2 quote what they stop at).
BROKEN_ATX = ['{"header": QZXa}', '{"header": {"schema": "QZXa\\uZZZZ"}}', '{"QZXa": 1, "QZXa": 2}',
              '{"header": "QZXa', '{"header": {"orgUnit": "QZXa\x01b"}}',
              # a quote inside the token jansson quotes once ended the masking early
              '{"header": "Sm\'QZXa\' \\x"}', '{"Sm\'QZXa\'": 1, "Sm\'QZXa\'": 2}',
              '{"header": "O\'QZXa\x01"}']
BROKEN_NX5 = ['<NX5Exchange xmlns="urn:nx:exchange:5"><Surname>&QZXa;</Surname></NX5Exchange>',
              '<NX5Exchange xmlns="urn:nx:exchange:5"><Surname>&#xQZXa;</Surname></NX5Exchange>',
              '<NX5Exchange xmlns="urn:nx:exchange:5" Source="QZXa></NX5Exchange>',
              '<NX5Exchange xmlns="urn:nx:exchange:5"><Surname>QZX\xe9\xe9\xe9</Surname></NX5Exchange>',
              '<NX5Exchange xmlns="urn:nx:exchange:5"><Surname QZXa="1"/></NX5Exchange>']


def atx_messages(fixture):
    """Mutated ATX messages: [(message line, tell)]."""
    out = [(m, "QZX") for m in BROKEN_ATX]
    with open(fixture, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    for rec in records:
        for path in leaves(rec):
            for value, tell in STRINGS + NUMBERS:
                m = copy.deepcopy(rec)
                put(m, path, value)
                out.append((json.dumps(m, ensure_ascii=False), tell))
    return out


def nx5_messages(fixture):
    """Mutated NX5 documents: [(document text, tell)]."""
    ET.register_namespace("", "urn:nx:exchange:5")
    with open(fixture, "rb") as f:
        root = ET.fromstring(f.read())
    out = [('<?xml version="1.0" encoding="UTF-8"?>\n' + m + "\n", "QZX") for m in BROKEN_NX5]
    places = []  # (index of the element in iter order, attribute name or None for text)
    for i, el in enumerate(root.iter()):
        for name in el.attrib:
            places.append((i, name))
        if len(el) == 0:
            places.append((i, None))
    for i, name in places:
        for value, tell in STRINGS:
            doc = copy.deepcopy(root)
            el = list(doc.iter())[i]
            if name is None:
                el.text = value
            else:
                el.set(name, value)
            text = ET.tostring(doc, encoding="unicode")
            out.append(('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n", tell))
    return out


def translate(polegate, src, dst, path, force):
    now = ["--now", "2026-10-25T12:00:00Z"] if dst != "json" else []
    p = subprocess.run([polegate, "translate", "--from", src, "--to", dst, "--force", force,
                        *now, path], capture_output=True, timeout=600)
    return p.returncode, p.stderr.decode("utf-8", errors="replace")


def check(polegate, tmp, src, messages, force, joiner):
    """Translate every message to JSON and to the other format; (reasons seen, failures)."""
    path = os.path.join(tmp, "poisoned." + ("ndjson" if src == "atx" else "xml"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(joiner.join(m for m, _ in messages))
    tells = sorted({t for _, t in messages if t})
    failures, reasons = [], 0
    for dst in ("json", "nx5" if src == "atx" else "atx"):
        status, err = translate(polegate, src, dst, path, force)
        lines = [x for x in err.splitlines() if x.strip()]
        reasons += len(lines)
        if status not in (0, 1):
            failures.append("%s -> %s: exit status %d: %s" % (src, dst, status, err[-500:]))
        for line in lines:
            for tell in tells:
                if tell in line:
                    failures.append("%s -> %s: a reason holds %r: %s" % (src, dst, tell, line))
            if not line.startswith(("polegate", path + ":")):
                failures.append("%s -> %s: a line that is not a reason (a forged line?): %r"
                                % (src, dst, line))
    return reasons, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--polegate", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--show", type=int, default=60, help="failures to print")
    args = ap.parse_args()
    failures = []
    with tempfile.TemporaryDirectory(prefix="pg-test-reasons-") as tmp:
        for src, fixture, force, joiner, make in (
                ("atx", "atx-burglary.ndjson", "ESX", "\n", atx_messages),
                ("nx5", "nx5-merseyside-export.xml", "MER", "", nx5_messages)):
            messages = make(os.path.join(args.fixtures, fixture))
            reasons, bad = check(args.polegate, tmp, src, messages, force, joiner)
            print("test_reasons: %s: %d poisoned messages, %d reasons, %d with content"
                  % (src, len(messages), reasons, len(bad)))
            if reasons < len(messages) // 4:
                bad.append("%s: only %d reasons for %d poisoned messages: the rejection paths "
                           "were not reached" % (src, reasons, len(messages)))
            failures += bad
    for f in sorted(set(failures))[:args.show]:
        print("FAIL: " + f)
    print("test_reasons: %d failures" % len(set(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
