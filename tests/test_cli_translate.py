#!/usr/bin/env python3
"""test_cli_translate: `polegate translate` run as a user would, on the vendor samples
and on bad input, checking exit status, stdout and stderr.

Every JSON line is also parsed with Google's json_format into the canonical message
type (classes protoc generated from proto/), so the output is what a partner's own
protobuf library accepts.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback

ARGS = None
ATX_BURGLARY = "atx-burglary.ndjson"
NX5_MERSEYSIDE = "nx5-merseyside-export.xml"
NX5_BURGLARY = "nx5-burglary-import.xml"


def fixture(name):
    return os.path.join(ARGS.fixtures, name)


def run(*args, stdin=None, env=None):
    """(status, stdout, stderr) of `polegate translate ARGS...`."""
    p = subprocess.run([ARGS.polegate, "translate", *args], input=stdin, capture_output=True,
                       env=env, timeout=60)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_usage(args, needle):
    status, out, err = run(*args)
    expect(status == 2, f"{args}: status {status}, want 2; stderr: {err}")
    expect(out == "", f"{args}: stdout should be empty, got {out!r}")
    expect(needle in err, f"{args}: {needle!r} not in stderr {err!r}")


def updates(out):
    """The JSON lines of out as dicts, each checked by Google's parser."""
    from google.protobuf import json_format
    from polegate.pole.v1 import pole_pb2
    lines = out.split("\n")
    expect(lines[-1] == "", "output must end with a newline")
    result = []
    for line in lines[:-1]:
        d = json.loads(line)
        cls = pole_pb2.LinkUpdate if "role" in d else pole_pb2.EntityUpdate
        json_format.Parse(line, cls())  # raises on anything not in the schema
        result.append(d)
    return result


def brief(u):
    """(operation, kind or role, native id of the record or of the link's ends)."""
    if "role" in u:
        return (u["operation"], u["role"], u["from"].get("nativeId"), u["to"].get("nativeId"))
    return (u["operation"], u["kind"], u["origin"]["nativeId"])


def without_message_ids(us):
    for u in us:
        u.get("origin", {}).pop("messageId", None)
    return us


# ---------------------------------------------------------------- usage

def test_help():
    for flag in ("--help", "-h"):
        status, out, err = run(flag)
        expect(status == 0 and err == "", f"{flag}: status {status}, stderr {err!r}")
        expect(out.startswith("usage: polegate translate --from FORMAT --to FORMAT"), out)
        expect("--state DIR" in out and "Exit status" in out, out)


def test_usage_errors():
    expect_usage([], "--from is required")
    expect_usage(["--from", "atx"], "--to is required")
    expect_usage(["--from", "atx", "--to", "json", "--bogus"], "unknown option '--bogus'")
    expect_usage(["--to", "json", "--from"], "option '--from' needs a value")
    expect_usage(["--from=", "--to", "json"], "option '--from' needs a value")
    expect_usage(["--from=json", "--to", "json"], "unknown --from format 'json' (atx or nx5)")
    expect_usage(["--from", "athena", "--to", "json"], "unknown --from format 'athena'")
    expect_usage(["--from", "atx", "--to", "xml"], "unknown --to format 'xml'")
    expect_usage(["--from", "atx", "--to", "json", "-x"], "unknown option '-x'")


def test_atx_to_nx5():
    """The partner direction offline: what an NX5 RMS is sent for the Essex sample."""
    now = "2026-11-01T12:00:00Z"
    status, out, err = run("--from", "atx", "--to", "nx5", "--now", now, "--batch", "b1",
                           fixture(ATX_BURGLARY))
    expect(status == 0 and err == "", f"status {status}, stderr {err!r}")
    docs = [d for d in out.split("<?xml") if d]
    expect(len(docs) == 8, f"{len(docs)} documents, want one per message")
    expect(all('Force="ESX"' in d and 'Batch="b1"' in d for d in docs), docs[0][:200])
    expect(out.count('Op="Add"') == 7 and out.count('Op="Delete"') == 2, out)
    # each document is valid NX5 for our own decoder, and the same run again is the same
    with tempfile.TemporaryDirectory() as tmp:
        for i, d in enumerate(docs):
            path = os.path.join(tmp, f"{i}.xml")
            with open(path, "w") as f:
                f.write("<?xml" + d)
            status, _, err = run("--from", "nx5", "--to", "json", path)
            expect(status == 0, f"document {i}: {err}")
    _, again, _ = run("--from", "atx", "--to", "nx5", "--now", now, "--batch", "b1",
                      fixture(ATX_BURGLARY))
    expect(again == out, "same input: same GIDs, revisions and output")


def test_nx5_to_atx():
    status, out, err = run("--from", "nx5", "--to", "atx", "--now", "2026-11-01T12:00:00Z",
                           fixture(NX5_MERSEYSIDE))
    expect(status == 0 and err == "", f"status {status}, stderr {err!r}")
    recs = [json.loads(l) for l in out.split("\n")[:-1]]
    ids = [r["record"]["id"] for r in recs]
    expect(ids == ["L9000000001", "P9000000001", "W9000000001", "C9000000001", "N9000000001"],
           ids)
    person = recs[1]
    expect(person["header"]["orgUnit"] == "MER" and person["record"]["revision"] == 12, person)
    # ATX carries all of a record's links: the person's two, the deleted USES gone
    roles = sorted(l["role"] for l in person["links"])
    expect(roles == ["HOME_ADDRESS", "OWNER"], roles)


def test_cross_format_state_keeps_ids():
    lines = open(fixture(ATX_BURGLARY), encoding="utf-8").read().split("\n")
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "state")
        first = os.path.join(tmp, "first.ndjson")
        last = os.path.join(tmp, "last.ndjson")
        with open(first, "w") as f:
            f.write("\n".join(lines[:7]) + "\n")
        with open(last, "w") as f:
            f.write(lines[7] + "\n")
        status, one, err = run("--from", "atx", "--to", "nx5", "--state", state, first)
        expect(status == 0, err)
        status, two, err = run("--from", "atx", "--to", "nx5", "--state", state, last)
        expect(status == 0, err)
        # the telephone's Delete names the GID it was given in the first run, Rev 2
        gid = two.split('GID="')[1].split('"')[0]
        expect(f'GID="{gid}" Rev="1" Op="Add"' in one, f"{gid} not added in the first run")
        expect(f'GID="{gid}" Rev="2" Op="Delete"' in two, two)
        # the first file again: stale everywhere, nothing sent
        status, three, err = run("--from", "atx", "--to", "nx5", "--state", state, first)
        expect(status == 0 and three == "", f"{status} {three[:200]!r} {err!r}")


def test_options_that_do_not_apply():
    expect_usage(["--from", "atx", "--to", "atx", "--state", "/tmp/x"],
                 "--state applies to --to json or the other format only")
    expect_usage(["--from", "atx", "--to", "json", "--now", "2026-03-29T07:00:00Z"],
                 "--now and --batch apply to --to atx|nx5 only")
    expect_usage(["--from", "atx", "--to", "atx", "--batch", "b1"],
                 "--batch applies to --to nx5 only")
    expect_usage(["--from", "atx", "--to", "atx", "--now", "29/03/2026 07:00"],
                 "--now: must be an RFC 3339 timestamp")


# ---------------------------------------------------------------- ATX -> JSON

def test_atx_to_json():
    status, out, err = run("--from", "atx", "--to", "json", fixture(ATX_BURGLARY))
    expect(status == 0 and err == "", f"status {status}, stderr {err!r}")
    us = updates(out)
    got = [brief(u) for u in us]
    expect(got[0] == ("OPERATION_UPSERT", "ENTITY_KIND_LOCATION", "L0000000045"), got[0])
    expect(("OPERATION_UPSERT", "LINK_ROLE_HOME_ADDRESS", "P0000123999", "L0000000045") in got,
           got)
    # The later DELETE of the telephone takes the link to it along.
    expect(got[-2:] == [("OPERATION_DELETE", "ENTITY_KIND_TELEPHONE", "T0000000042"),
                        ("OPERATION_DELETE", "LINK_ROLE_USES", "P0000123456", "T0000000042")],
           got[-2:])
    # 7 record upserts and 1 delete; 10 links from them, 1 taken along by the delete.
    expect(len([g for g in got if len(g) == 3]) == 8 and len(got) == 18, got)
    loc = us[0]["location"]
    expect(loc["postcode"] == "CO3 3ES", loc)  # normalised on the way in
    person = next(u for u in us if u.get("person", {}).get("name", {}).get("surname") == "Łukaszewska")
    expect(person["person"]["name"]["forenames"] == ["Zoë", "Anna"], person)
    expect(person["person"]["dateOfBirth"] == {"year": 1990, "month": 2}, person)
    expect(all(isinstance(u["version"], str) for u in us), "uint64 versions are strings")


def test_stdin_is_the_same_as_a_file():
    _, from_file, _ = run("--from", "atx", "--to", "json", fixture(ATX_BURGLARY))
    with open(fixture(ATX_BURGLARY), "rb") as f:
        data = f.read()
    for args in (["-"], []):
        status, out, err = run("--from", "atx", "--to", "json", *args, stdin=data)
        expect(status == 0 and err == "", f"{args}: status {status}, stderr {err!r}")
        expect(out == from_file, f"{args}: stdin output differs from the file's")


def test_state_dir_carries_over():
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "ledger")
        status, out, err = run("--from", "atx", "--to", "json", "--state", state,
                               fixture(ATX_BURGLARY))
        expect(status == 0 and len(updates(out)) == 18, f"first run: {status}, {err!r}")
        expect(sorted(os.listdir(state)) == ["data.mdb", "lock.mdb"], os.listdir(state))
        # The same messages again: every one a duplicate, nothing published.
        status, out, err = run("--from", "atx", "--to", "json", "--state", state,
                               fixture(ATX_BURGLARY))
        expect(status == 0 and out == "", f"second run: status {status}, stdout {out!r}")
        notes = err.strip().split("\n")
        expect(len(notes) == 8, notes)
        expect(notes[0] == f"{fixture(ATX_BURGLARY)}:1: note: message "
               "0b7c7a52-6a83-4d71-9a55-5a3f7d0c2e00 was applied before; nothing published",
               notes[0])


def test_private_state_is_removed():
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        status, out, _ = run("--from", "atx", "--to", "json", fixture(ATX_BURGLARY), env=env)
        expect(status == 0 and out, f"status {status}")
        expect(os.listdir(tmp) == [], f"left behind: {os.listdir(tmp)}")
        # Without --state every run starts from an empty ledger.
        _, again, _ = run("--from", "atx", "--to", "json", fixture(ATX_BURGLARY), env=env)
        expect(again == out, "a second run without --state must print the same")


def test_state_dir_that_cannot_be_made():
    with tempfile.NamedTemporaryFile() as f:
        status, out, err = run("--from", "atx", "--to", "json", "--state",
                               os.path.join(f.name, "sub"), fixture(ATX_BURGLARY))
        expect(status == 1 and out == "", f"status {status}")
        expect(f"--state {f.name}/sub: " in err, err)


def test_rejected_messages():
    with open(fixture(ATX_BURGLARY), encoding="utf-8") as f:
        good = f.read().split("\n")
    wrong_schema = good[1].replace('"schema": "atx/2"', '"schema": "atx/3"')
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "bad.ndjson")
        with open(bad, "w", encoding="utf-8") as f:
            f.write("\n".join([good[0], '{"header": 5}', "not json", "", wrong_schema,
                               good[2]]) + "\n")
        status, out, err = run("--from", "atx", "--to", "json", bad)
        expect(status == 1, f"status {status}, want 1")
        lines = err.strip().split("\n")
        expect(len(lines) == 3, lines)
        expect(lines[0].startswith(f"{bad}:2: header: "), lines[0])
        expect(lines[1].startswith(f"{bad}:3: message: invalid JSON"), lines[1])
        # The reason is the adapter's; its member path is what this test relies on.
        expect(lines[2].startswith(f"{bad}:5: header.schema: ") and "atx/3" not in lines[2],
               lines[2])
        # The good messages (lines 1 and 6) are still translated.
        got = [brief(u) for u in updates(out) if "role" not in u]
        expect(got == [("OPERATION_UPSERT", "ENTITY_KIND_LOCATION", "L0000000045"),
                       ("OPERATION_UPSERT", "ENTITY_KIND_PERSON", "P0000123999")], got)


def test_other_force_rejected():
    status, out, err = run("--from", "atx", "--to", "json", "--force", "MER",
                           fixture(ATX_BURGLARY))
    expect(status == 1 and out == "", f"status {status}")
    lines = err.strip().split("\n")
    expect(len(lines) == 8 and all("names another force than this gateway's, MER" in l
                                   for l in lines), lines)
    status, out, err = run("--from", "atx", "--to", "json", "--force", "ESX",
                           fixture(ATX_BURGLARY))
    expect(status == 0 and err == "" and out, f"status {status}, {err!r}")


def test_unreadable_file_does_not_stop_the_others():
    missing = os.path.join(ARGS.fixtures, "no-such-file.ndjson")
    status, out, err = run("--from", "atx", "--to", "json", missing, fixture(ATX_BURGLARY))
    expect(status == 1, f"status {status}, want 1")
    expect(err == f"polegate translate: {missing}: No such file or directory\n", err)
    expect(len(updates(out)) == 18, "the readable file must still be translated")


# ---------------------------------------------------------------- round trips

def test_atx_round_trip():
    now = "2026-03-29T07:00:00Z"
    status, once, err = run("--from", "atx", "--to", "atx", "--now", now, fixture(ATX_BURGLARY))
    expect(status == 0 and err == "", f"status {status}, {err!r}")
    lines = once.split("\n")[:-1]
    expect(len(lines) == 8, f"{len(lines)} lines")
    expect(all(json.loads(l)["header"]["sentAt"] == "2026-03-29T08:00:00.000+01:00"
               for l in lines), "sentAt must be --now in UK time")
    _, again, _ = run("--from", "atx", "--to", "atx", "--now", now, fixture(ATX_BURGLARY))
    expect(again == once, "same input, same --now: same output")
    status, twice, err = run("--from", "atx", "--to", "atx", "--now", now, stdin=once.encode())
    expect(status == 0 and twice == once, f"round trip of the round trip differs: {err!r}")
    _, j1, _ = run("--from", "atx", "--to", "json", fixture(ATX_BURGLARY))
    _, j2, _ = run("--from", "atx", "--to", "json", stdin=once.encode())
    expect(updates(j1) == updates(j2), "the round trip must keep the canonical content")


def test_nx5_round_trip():
    status, doc, err = run("--from", "nx5", "--to", "nx5", "--now", "2026-03-29T07:00:00Z",
                           "--batch", "gw-test-1", fixture(NX5_MERSEYSIDE))
    expect(status == 0 and err == "", f"status {status}, {err!r}")
    expect('Batch="gw-test-1"' in doc and 'Created="29/03/2026 08:00:00"' in doc, doc[:300])
    _, j1, _ = run("--from", "nx5", "--to", "json", fixture(NX5_MERSEYSIDE))
    status, j2, err = run("--from", "nx5", "--to", "json", stdin=doc.encode())
    expect(status == 0, f"re-reading the output: {err}")
    expect(without_message_ids(updates(j1)) == without_message_ids(updates(j2)),
           "the round trip must keep the canonical content")


# ---------------------------------------------------------------- NX5 -> JSON

def test_nx5_to_json():
    status, out, err = run("--from", "nx5", "--to", "json", fixture(NX5_MERSEYSIDE))
    expect(status == 0 and err == "", f"status {status}, {err!r}")
    us = updates(out)
    got = [brief(u) for u in us]
    # The merge: the survivor, then the merged-away person deleted.
    expect(got[1:3] == [("OPERATION_UPSERT", "ENTITY_KIND_PERSON", "7F3A9C2E4B1D0A66"),
                        ("OPERATION_DELETE", "ENTITY_KIND_PERSON", "7F3A9C2E4B1D0B01")], got)
    # windows-1252 in, UTF-8 out
    expect(us[1]["person"]["name"]["surname"] == "GARCÍA-LÓPEZ", us[1])
    expect(("OPERATION_DELETE", "LINK_ROLE_USES", "7F3A9C2E4B1D0A66", "7E1E000000000031") in got,
           got)
    intel = next(u for u in us if u.get("kind") == "ENTITY_KIND_INTELLIGENCE")
    expect(intel["marking"]["handling"] == "HANDLING_C" and intel["marking"]["caveat"], intel)
    status, out, err = run("--from", "nx5", "--to", "json", fixture(NX5_BURGLARY))
    expect(status == 0 and err == "" and len(updates(out)) > 7, f"burglary import: {err!r}")


def test_nx5_bad_document():
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "bad.xml")
        with open(bad, "w") as f:
            f.write("<NX5Exchange")
        status, out, err = run("--from", "nx5", "--to", "json", bad)
        expect(status == 1 and out == "", f"status {status}")
        expect(err.startswith(f"{bad}:1: ") and err.count("\n") == 1, err)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--polegate", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--pypath", required=True, help="where protoc wrote the _pb2 modules")
    ARGS = ap.parse_args()
    sys.path.insert(0, ARGS.pypath)
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
