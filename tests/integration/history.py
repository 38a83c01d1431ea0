"""tests/integration/history.py: seeded change histories of an RMS (ATX/2 and NX5, as
docs/formats/ write them) and an independent reference model of what each partner RMS
must hold at the end. Written from the vendor specs and docs/policy.md, not from the
gateway's code: the model_e2e test compares the gateway against it.

A history is a list of native messages (ATX: one JSON object each; NX5: one document
each) with the source's own semantics: revisions rise, a stale or repeated message
changes nothing, a merge removes the merged-away records and moves their links, a
delete removes the record and its links. `source_state` applies a history as the source
RMS does; `expected` restricts that final state to what a policy lets through; `Rms`
applies what a partner RMS stored (files written by `polegate receive`); `compare`
matches both record by record (by the key each record carries in its content) and link
by link.
"""

import datetime
import json
import os
import random
import re
import uuid
import xml.etree.ElementTree as ET

NS = "urn:nx:exchange:5"

KINDS = ["person", "location", "vehicle", "item", "weapon", "telephone", "occurrence", "custody",
         "intelligence"]
ATX_TYPE = {"person": "PERSON", "location": "LOCATION", "vehicle": "VEHICLE", "item": "ITEM",
            "weapon": "WEAPON", "telephone": "TELEPHONE", "occurrence": "OCCURRENCE",
            "custody": "CUSTODY", "intelligence": "INTELLIGENCE"}
ATX_KIND = {v: k for k, v in ATX_TYPE.items()}
ATX_LETTER = {"person": "P", "location": "L", "vehicle": "V", "item": "I", "weapon": "W",
              "telephone": "T", "occurrence": "O", "custody": "C", "intelligence": "N"}
NX5_KIND = {"person": "Person", "location": "Address", "vehicle": "Vehicle", "item": "Property",
            "weapon": "Property", "telephone": "Telephone", "occurrence": "Occurrence",
            "custody": "Custody", "intelligence": "IntelReport"}
CLASSES = ["OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET", "TOP-SECRET"]
GPMS = {"OFFICIAL": "O", "OFFICIAL-SENSITIVE": "OS", "SECRET": "S", "TOP-SECRET": "TS"}
GPMS_CLASS = {v: k for k, v in GPMS.items()}

# ROLE table (codes.md): (canonical name, ATX, NX5, from kind, to kinds)
ROLES = [
    ("home", "HOME_ADDRESS", "HOME", "person", ["location"]),
    ("addr", "OTHER_ADDRESS", "ADDR", "person", ["location"]),
    ("suspect", "SUSPECT", "SUSP", "occurrence", ["person"]),
    ("victim", "VICTIM", "VICT", "occurrence", ["person"]),
    ("witness", "WITNESS", "WIT", "occurrence", ["person"]),
    ("locn", "OCCURRED_AT", "LOCN", "occurrence", ["location"]),
    ("locn", "OCCURRED_AT", "LOCN", "custody", ["location"]),
    ("locn", "OCCURRED_AT", "LOCN", "intelligence", ["location"]),
    ("stolen", "STOLEN", "STLN", "occurrence", ["item"]),
    ("used", "USED", "USED", "occurrence", ["item", "weapon"]),
    ("vinv", "VEHICLE_INVOLVED", "VINV", "occurrence", ["vehicle"]),
    ("keeper", "KEEPER", "KEEP", "person", ["vehicle"]),
    ("owner", "OWNER", "OWN", "person", ["item", "weapon", "vehicle"]),
    ("uses", "USES", "USES", "person", ["telephone"]),
    ("detained", "DETAINED", "DETD", "custody", ["person"]),
    ("subject", "SUBJECT", "SUBJ", "intelligence", ["person", "vehicle", "telephone", "location"]),
    ("assoc", "ASSOCIATE", "ASSOC", "person", ["person"]),
]
ROLE_OF_ATX = {r[1]: r[0] for r in ROLES}
ROLE_OF_NX5 = {r[2]: r[0] for r in ROLES}
ATX_ROLE = {r[0]: r[1] for r in ROLES}
NX5_ROLE = {r[0]: r[2] for r in ROLES}

# The field of each kind that carries the record's key (its source id: how a record at
# the partner is matched to the source's) and the one that carries its revision's
# content, with the redaction that clears it (docs/policy.md "Redactions").
VERSION_REDACTION = {"person": "person.occupation", "location": "location.description",
                     "telephone": "telephone.imei", "occurrence": "occurrence.summary",
                     "intelligence": "intelligence.text"}
REDACTIONS = sorted(VERSION_REDACTION.values()) + ["origin.org_unit", "person.ethnicity"]

BASE = datetime.datetime(2026, 1, 5, 9, 0, 0, tzinfo=datetime.timezone.utc)  # GMT: no DST


# ------------------------------------------------------------------ content

def key_of(force, native):
    return "K%s%s" % (force, native)


def phone_of(serial):
    return "07700 9%05d" % (serial % 100000)


def content(kind, key, serial, rev):
    """The canonical content the generator gives a record at a revision: the key and the
    revision's value ("V<rev>"; for a telephone the IMEI)."""
    ver = "V%d" % rev if kind != "telephone" else "35%06d%07d" % (serial % 1000000, rev)
    return {"kind": kind, "key": key if kind != "telephone" else "T%05d" % (serial % 100000),
            "ver": ver}


# ------------------------------------------------------------------ generator

class Rec:
    def __init__(self, native, kind, serial):
        self.native, self.kind, self.serial = native, kind, serial
        self.rev = 0
        self.state = "new"  # new, live, deleted, merged
        self.marking = ("OFFICIAL", "P", None)
        self.mopi = 3
        self.links = set()  # ATX: (role, to native)
        self.sent = []      # earlier messages of it (for stale re-sends)
        self.survivor = None  # merged: the record it was merged into


class Generator:
    """A seeded history of one force in one format ("atx" or "nx5")."""

    def __init__(self, seed, force, fmt, changes, pool=None):
        self.rng = random.Random("%s/%s/%s" % (seed, force, fmt))
        self.force, self.fmt, self.changes = force, fmt, changes
        self.pool = pool or max(20, changes // 2)
        self.recs = []
        self.by_native = {}
        self.t = 0  # minutes since BASE
        self.messages = []  # (text, kind of step)
        self.original = []  # what the source RMS did: no repeats, no stale re-sends
        self.nx5_links = {}  # (from, role, to) -> live? (NX5 source bookkeeping)
        self.batch = 0
        self.serial0 = self.rng.randrange(0, 90000)

    # ---- records
    def _new_native(self, kind, i):
        if self.fmt == "atx":
            return "%s%010d" % (ATX_LETTER[kind], 3000000 + self.serial0 + i)
        return "%016X" % (0xA000000000000000 + (self.serial0 << 20) + i)

    def _mk_records(self):
        for i in range(self.pool):
            kind = self.rng.choice(KINDS)
            r = Rec(self._new_native(kind, i), kind, self.serial0 + i)
            self.recs.append(r)
            self.by_native[r.native] = r

    def _marking(self, r, change=True):
        rng = self.rng
        if not change and r.rev:
            return r.marking
        c = rng.choices(CLASSES, [45, 35, 15, 5])[0]
        h = "C" if rng.random() < 0.2 else "P"
        cav = "Conditions %s rev %d: not for onward disclosure" % (r.native, r.rev + 1) \
            if h == "C" else None
        return (c, h, cav)

    def _time(self, minutes):
        return BASE + datetime.timedelta(minutes=minutes)

    # ---- ATX
    def _atx_body(self, r):
        c = content(r.kind, key_of(self.force, r.native), r.serial, r.rev)
        k, v = c["key"], c["ver"]
        if r.kind == "person":
            return {"surname": k, "forenames": ["Alex"], "sex": "UNKNOWN", "occupation": v}
        if r.kind == "location":
            return {"street": k, "town": "Chelmsford", "description": v}
        if r.kind == "vehicle":
            return {"make": k, "model": v, "colour": "BLUE"}
        if r.kind == "item":
            return {"category": "TOOLS", "description": k, "serialNumber": v}
        if r.kind == "weapon":
            return {"category": "KNIFE", "description": k, "serialNumber": v}
        if r.kind == "telephone":
            return {"number": phone_of(r.serial), "kind": "MOBILE", "imei": v}
        if r.kind == "occurrence":
            return {"reference": k, "kind": "INCIDENT", "summary": v}
        if r.kind == "custody":
            return {"reference": k, "station": v}
        return {"reference": k, "text": v}

    def _atx_msg(self, r, action, when, merged=(), mid=None):
        m = {"header": {"schema": "atx/2", "messageId": mid or str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                        "sentAt": when.strftime("%Y-%m-%dT%H:%M:%S.000+00:00"), "system": "ATHENA",
                        "orgUnit": "%s/CID/CHELMSFORD" % self.force},
             "record": {"type": ATX_TYPE[r.kind], "id": r.native, "revision": r.rev, "action": action,
                        "modifiedAt": when.strftime("%Y-%m-%dT%H:%M:%S.000+00:00"),
                        "marking": {"classification": r.marking[0], "handling": r.marking[1],
                                    "caveat": r.marking[2]}}}
        if action == "UPSERT":
            m["record"]["retention"] = {"mopiGroup": r.mopi, "reviewDate": "2032-01-05"}
            m["record"]["body"] = self._atx_body(r)
            if merged:
                m["record"]["mergedFrom"] = [x.native for x in merged]
            m["links"] = [{"target": {"type": ATX_TYPE[self.by_native[t].kind], "id": t},
                           "role": ATX_ROLE[role], "validFrom": None, "validTo": None}
                          for role, t in sorted(r.links)]
        return json.dumps(m)

    # ---- NX5
    def _nx5_entity(self, r, op, when, merged=()):
        d = when.strftime("%d/%m/%Y %H:%M:%S")
        kind = NX5_KIND[r.kind]
        a = ('<Entity Kind="%s" GID="%s" Rev="%d" Op="%s" Modified="%s" GPMS="%s" Handling="%s" '
             'MoPI="%d" Review="05/01/2032"' % (kind, r.native, r.rev, op, d, GPMS[r.marking[0]],
                                                 r.marking[1], r.mopi))
        if op == "Delete":
            return a + "/>"
        kids = []
        if r.marking[1] == "C":
            kids.append("<Caveat>%s</Caveat>" % r.marking[2])
        for x in merged:
            kids.append('<MergedFrom GID="%s"/>' % x.native)
        c = content(r.kind, key_of(self.force, r.native), r.serial, r.rev)
        k, v = c["key"], c["ver"]
        if r.kind == "person":
            kids += ["<Surname>%s</Surname>" % k, "<Given>ALEX</Given>", "<Occupation>%s</Occupation>" % v]
        elif r.kind == "location":
            kids += ["<Line/>", "<Line>%s</Line>" % k, "<Line/>", "<Line>Liverpool</Line>",
                     "<Description>%s</Description>" % v]
        elif r.kind == "vehicle":
            kids += ["<Make>%s</Make>" % k, "<Model>%s</Model>" % v, "<Colour>BLU</Colour>"]
        elif r.kind == "item":
            kids += ["<Category>TLS</Category>", "<Description>%s</Description>" % k,
                     "<Serial>%s</Serial>" % v]
        elif r.kind == "weapon":
            kids += ["<Category>WPN-KN</Category>", "<Description>%s</Description>" % k,
                     "<Serial>%s</Serial>" % v]
        elif r.kind == "telephone":
            kids += ["<Number>%s</Number>" % phone_of(r.serial), "<Type>M</Type>", "<IMEI>%s</IMEI>" % v]
        elif r.kind == "occurrence":
            kids += ["<Reference>%s</Reference>" % k, "<Type>Incident</Type>", "<Summary>%s</Summary>" % v]
        elif r.kind == "custody":
            kids += ["<Reference>%s</Reference>" % k, "<Station>%s</Station>" % v]
        else:
            kids += ["<Reference>%s</Reference>" % k, "<Text>%s</Text>" % v]
        return a + ">" + "".join(kids) + "</Entity>"

    def _nx5_doc(self, parts, when):
        self.batch += 1
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<NX5Exchange xmlns="%s" Source="NICHE" '
                'Force="%s" Batch="%s-%06d" Created="%s">%s</NX5Exchange>\n'
                % (NS, self.force, self.force, self.batch, when.strftime("%d/%m/%Y %H:%M:%S"),
                   "".join(parts)))

    def _nx5_link(self, role, f, t, delete=False):
        return '<Link Role="%s" From="%s" To="%s"%s/>' % (NX5_ROLE[role], f, t,
                                                            ' Op="Delete"' if delete else "")

    # ---- steps
    def _link_choices(self, r):
        out = []
        for name, _, _, fk, tks in ROLES:
            if fk != r.kind:
                continue
            for x in self.recs:
                if x is not r and x.kind in tks and x.state in ("new", "live"):
                    out.append((name, x.native))
        return out

    def _new_links(self, r, keep):
        """A new link set for r: some of its links kept, some added."""
        rng = self.rng
        links = set(l for l in sorted(r.links) if rng.random() < keep and
                    self.by_native[l[1]].state in ("new", "live"))
        cands = self._link_choices(r)
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            if cands:
                links.add(rng.choice(cands))
        return links

    def _final(self, native):
        """native, or the record it was merged into (through later merges)."""
        x = self.by_native.get(native)
        while x is not None and x.state == "merged" and x.survivor is not None:
            x = x.survivor
        return x.native if x is not None else native

    def _upsert(self, r, merged=(), raise_to=None):
        """The next UPSERT of r (ATX) or its entity and link changes (NX5)."""
        rng = self.rng
        first = r.state == "new"
        r.rev += rng.choice([1, 1, 1, 2, 5])
        if first or rng.random() < 0.35:
            r.marking = self._marking(r)
        elif r.marking[1] == "C":
            r.marking = (r.marking[0], "C", "Conditions %s rev %d: not for onward disclosure"
                         % (r.native, r.rev))
        if raise_to:
            r.marking = (raise_to, r.marking[1], r.marking[2])
        if first or rng.random() < 0.2:
            r.mopi = rng.randint(1, 4)
        r.state = "live"
        self.t += rng.choice([1, 1, 2, 30])
        when = self._time(self.t)
        old = set(r.links)
        r.links = self._new_links(r, 0.8)
        for m in merged:  # the survivor takes the merged-away records' links
            m.state = "merged"
            m.survivor = r
            for role, t in m.links:
                # a link to a record merged away before is its survivor's now (the RMS
                # moved it at that merge)
                t = self._final(t)
                if t != r.native and role in [x[0] for x in ROLES if x[3] == r.kind]:
                    r.links.add((role, t))
            m.links = set()
        if self.fmt == "atx":
            msg = self._atx_msg(r, "UPSERT", when, merged)
            r.sent.append(msg)
            return [msg]
        op = "Merge" if merged else ("Add" if first else "Modify")
        parts = [self._nx5_entity(r, op, when, merged)]
        # NX5: links change one at a time
        for role, t in sorted(r.links - old):
            parts.append(self._nx5_link(role, r.native, t))
        for role, t in sorted(old - r.links):
            if self.by_native[t].state != "merged":
                parts.append(self._nx5_link(role, r.native, t, delete=True))
        if rng.random() < 0.3:
            rng.shuffle(parts)  # links before the records they name
        doc = self._nx5_doc(parts, when)
        r.sent.append(doc)
        return [doc]

    def _delete(self, r):
        rng = self.rng
        r.rev += rng.choice([1, 1, 3])
        r.state = "deleted"
        # a DELETE may carry an earlier time than the UPSERT before it (other clock)
        back = rng.random() < 0.3
        when = self._time(self.t - (90 if back else -1))
        self.t += 1
        r.links = set()
        if self.fmt == "atx":
            return [self._atx_msg(r, "DELETE", when)]
        return [self._nx5_doc([self._nx5_entity(r, "Delete", when)], when)]

    def _links_only(self, r):
        """NX5: a document of link changes only (ATX has no such message)."""
        old = set(r.links)
        r.links = self._new_links(r, 0.7)
        self.t += 1
        when = self._time(self.t)
        parts = [self._nx5_link(role, r.native, t) for role, t in sorted(r.links - old)]
        parts += [self._nx5_link(role, r.native, t, True) for role, t in sorted(old - r.links)
                  if self.by_native[t].state != "merged"]
        return [self._nx5_doc(parts, when)] if parts else []

    def generate(self):
        rng = self.rng
        self._mk_records()
        out = self.messages
        while len(out) < self.changes:
            live = [r for r in self.recs if r.state == "live"]
            new = [r for r in self.recs if r.state == "new"]
            step = rng.choices(["create", "update", "delete", "quickdel", "merge", "stale", "dup",
                                "links"], [30, 30, 7, 5, 6, 5, 4, 8 if self.fmt == "nx5" else 0])[0]
            if step == "create" or not live:
                if not new:
                    step = "update" if live else None
                    if not step:
                        break
                else:
                    r = rng.choice(new)
                    out += [(m, "create") for m in self._upsert(r)]
                    continue
            if step == "quickdel" and new:
                # created then deleted close together (one consumer batch)
                r = rng.choice(new)
                out += [(m, "create") for m in self._upsert(r)]
                out += [(m, "delete") for m in self._delete(r)]
            elif step == "update":
                r = rng.choice(live)
                out += [(m, "update") for m in self._upsert(r)]
            elif step == "delete":
                r = rng.choice(live)
                out += [(m, "delete") for m in self._delete(r)]
            elif step == "merge":
                r = rng.choice(live)
                same = [x for x in live if x is not r and x.kind == r.kind]
                if not same:
                    continue
                merged = rng.sample(same, min(len(same), rng.choice([1, 1, 2])))
                raise_to = rng.choice([None, None, "SECRET", "OFFICIAL-SENSITIVE"])
                out += [(m, "merge") for m in self._upsert(r, merged, raise_to)]
            elif step == "stale":
                cands = [r for r in self.recs if len(r.sent) > 1]
                if not cands:
                    continue
                r = rng.choice(cands)
                old = rng.choice(r.sent[:-1])
                if self.fmt == "atx":  # an old revision again, as a new message
                    m = json.loads(old)
                    m["header"]["messageId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    old = json.dumps(m)
                else:  # NX5 links have no revision: only the record's old revision
                    old = re.sub(r"<Link [^>]*/>", "", old)
                out.append((old, "stale"))
            elif step == "dup":
                # ATX: any message again (its messageId says so); NX5 has no message
                # id and its links no revision: a document delivered twice in a row
                if out:
                    out.append((rng.choice(out)[0] if self.fmt == "atx" else out[-1][0], "dup"))
            elif step == "links":
                r = rng.choice(live)
                out += [(m, "links") for m in self._links_only(r)]
        self.original = [m for m, step in out if step not in ("dup", "stale")]
        return [m for m, _ in out]


# ------------------------------------------------------------------ RMS semantics

class Rms:
    """What an RMS holds after applying native messages as its format's spec says:
    records by id ({kind, key, ver, marking, mopi}) and links {(from, role, to)}."""

    def __init__(self, fmt, force=None):
        self.fmt = fmt
        self.records = {}
        self.rev = {}
        self.links = set()
        self.seen = set()
        self.stale = self.dups = 0

    def _drop(self, i):
        self.records.pop(i, None)
        self.links = {l for l in self.links if l[0] != i and l[2] != i}

    def _repoint(self, gone, survivor, keep_from=True):
        out = set()
        for f, role, t in self.links:
            if f == gone:
                if not keep_from:
                    continue
                f = survivor
            if t == gone:
                t = survivor
            if f != t:
                out.add((f, role, t))
        self.links = out

    def _fresh(self, i, rev):
        if rev <= self.rev.get(i, 0):
            self.stale += 1
            return False
        self.rev[i] = rev
        return True

    def apply(self, text):
        if self.fmt == "atx":
            for line in text.splitlines():
                if line.strip():
                    self._atx(json.loads(line))
        else:
            data = text.encode("utf-8") if isinstance(text, str) else text
            for doc in split_nx5(data):
                self._nx5(ET.fromstring(doc))

    def _atx(self, m):
        mid = m["header"]["messageId"]
        if mid in self.seen:
            self.dups += 1
            return
        self.seen.add(mid)
        r = m["record"]
        i = r["id"]
        if not self._fresh(i, r["revision"]):
            return
        if r["action"] == "DELETE":
            self._drop(i)
            return
        self.records[i] = _atx_record(r)
        for g in r.get("mergedFrom") or []:
            self.records.pop(g, None)
            self._repoint(g, i, keep_from=False)  # the survivor's list is complete
        self.links = {l for l in self.links if l[0] != i}
        for l in m.get("links") or []:
            self.links.add((i, ROLE_OF_ATX[l["role"]], l["target"]["id"]))

    def _nx5(self, doc):
        for el in doc:
            tag = el.tag.split("}")[-1]
            if tag == "Link":
                key = (el.get("From"), ROLE_OF_NX5[el.get("Role")], el.get("To"))
                if el.get("Op") == "Delete":
                    self.links.discard(key)
                else:
                    self.links.add(key)
                continue
            if tag != "Entity":
                continue
            i, op = el.get("GID"), el.get("Op")
            if not self._fresh(i, int(el.get("Rev"))):
                continue
            if op == "Delete":
                self._drop(i)
                continue
            self.records[i] = _nx5_record(el)
            if op == "Merge":
                for mf in el.findall("{%s}MergedFrom" % NS):
                    g = mf.get("GID")
                    self.records.pop(g, None)
                    self._repoint(g, i)


def _atx_record(r):
    b = r.get("body") or {}
    kind = ATX_KIND[r["type"]]
    if kind == "person":
        key, ver = b.get("surname"), b.get("occupation")
    elif kind == "location":
        key, ver = b.get("street"), b.get("description")
    elif kind == "vehicle":
        key, ver = b.get("make"), b.get("model")
    elif kind in ("item", "weapon"):
        key, ver = b.get("description"), b.get("serialNumber")
    elif kind == "telephone":
        key, ver = "T" + re.sub(r"\D", "", b.get("number") or "")[-5:], b.get("imei")
    elif kind == "custody":
        key, ver = b.get("reference"), b.get("station")
    elif kind == "occurrence":
        key, ver = b.get("reference"), b.get("summary")
    else:
        key, ver = b.get("reference"), b.get("text")
    mk = r.get("marking") or {}
    return {"kind": kind, "key": (key or "").upper(), "ver": (ver or None) and ver.upper(),
            "marking": (mk.get("classification"), mk.get("handling"), mk.get("caveat") or None),
            "mopi": (r.get("retention") or {}).get("mopiGroup")}


def _nx5_record(el):
    def t(name):
        x = el.find("{%s}%s" % (NS, name))
        return x.text if x is not None and x.text else None

    nk = el.get("Kind")
    kind = {v: k for k, v in NX5_KIND.items()}[nk]
    if nk == "Property":
        kind = "weapon" if (t("Category") or "").startswith("WPN-") else "item"
    if kind == "person":
        key, ver = t("Surname"), t("Occupation")
    elif kind == "location":
        lines = [x.text or "" for x in el.findall("{%s}Line" % NS)]
        key, ver = (lines[1] if len(lines) > 1 else None), t("Description")
    elif kind == "vehicle":
        key, ver = t("Make"), t("Model")
    elif kind in ("item", "weapon"):
        key, ver = t("Description"), t("Serial")
    elif kind == "telephone":
        key, ver = "T" + re.sub(r"\D", "", t("Number") or "")[-5:], t("IMEI")
    elif kind == "custody":
        key, ver = t("Reference"), t("Station")
    elif kind == "occurrence":
        key, ver = t("Reference"), t("Summary")
    else:
        key, ver = t("Reference"), t("Text")
    return {"kind": kind, "key": (key or "").upper(), "ver": (ver or None) and ver.upper(),
            "marking": (GPMS_CLASS.get(el.get("GPMS")), el.get("Handling"), t("Caveat")),
            "mopi": int(el.get("MoPI")) if el.get("MoPI") else None}


def split_nx5(data):
    """The documents of an NX5 stream (bytes; one per XML declaration)."""
    parts = re.split(rb"(?=<\?xml )", data)
    return [p for p in parts if p.strip()]


def source_state(fmt, messages):
    rms = Rms(fmt)
    for m in messages:
        rms.apply(m)
    return rms


# ------------------------------------------------------------------ policy

RANK = {"OFFICIAL": 0, "OFFICIAL-SENSITIVE": 1}


def random_policy(rng):
    """What one destination may receive, varied per seed."""
    kinds = list(KINDS) if rng.random() < 0.4 else sorted(rng.sample(KINDS, rng.randint(4, 8)))
    mopi = "all" if rng.random() < 0.5 else sorted(rng.sample([1, 2, 3, 4], rng.randint(2, 3)))
    red = [x for x in REDACTIONS if rng.random() < 0.3 and
           (x.split(".")[0] == "origin" or x.split(".")[0] in kinds)]
    return {"max": rng.choice(["OFFICIAL", "OFFICIAL-SENSITIVE"]),
            "handling_c": rng.random() < 0.6, "kinds": kinds, "mopi": mopi, "redact": red}


def policy_yaml(p, name, force, topic):
    kinds = "all" if len(p["kinds"]) == len(KINDS) else "[%s]" % ", ".join(p["kinds"])
    mopi = "all" if p["mopi"] == "all" else "[%s]" % ", ".join(str(g) for g in p["mopi"])
    s = ("    - name: %s\n      kind: force\n      force: %s\n      topic: %s\n"
         "      agreement: ISA-MB\n      max_classification: %s\n      kinds: %s\n"
         "      mopi_groups: %s\n      redact: [%s]\n"
         % (name, force, topic, p["max"], kinds, mopi, ", ".join(p["redact"])))
    if p["handling_c"]:
        s += "      allow_handling_c: true\n      handling_c_agreement: ISA-MB-C\n"
    return s


def passes(rec, p):
    if p is None:
        return True
    c, h, _ = rec["marking"]
    if c not in RANK or RANK[c] > RANK[p["max"]]:
        return False
    if h == "C" and not p["handling_c"]:
        return False
    if rec["kind"] not in p["kinds"]:
        return False
    return p["mopi"] == "all" or rec["mopi"] in p["mopi"]


def expected(src, p):
    """What a partner must hold of the source's final state under policy p (None: all
    of it, as `polegate translate` carries it): by source id."""
    recs = {}
    for i, r in src.records.items():
        if not passes(r, p):
            continue
        e = dict(r)
        if p and VERSION_REDACTION.get(r["kind"]) in p["redact"]:
            e["ver"] = None
        recs[i] = e
    links = {l for l in src.links if l[0] in recs and l[2] in recs}
    return recs, links


# ------------------------------------------------------------------ compare

def compare(want, rms):
    """Match the partner's RMS (local ids) to the expected state (source ids) by key.
    Returns (figure dict, [differences])."""
    recs, links = want
    by_key = {r["key"]: i for i, r in recs.items()}
    local = {}  # local id -> source id
    diffs = []
    extra = 0
    right = 0
    seen = set()
    for lid, r in sorted(rms.records.items()):
        sid = by_key.get(r["key"])
        if sid is None:
            extra += 1
            diffs.append("extra record %s %s (%s %s)" % (r["kind"], lid, r["key"], r["marking"][0]))
            continue
        if sid in seen:
            extra += 1
            diffs.append("record %s held twice (%s)" % (sid, lid))
            continue
        seen.add(sid)
        local[lid] = sid
        w = recs[sid]
        got = (r["kind"], r["ver"], r["marking"], r["mopi"])
        exp = (w["kind"], w["ver"], w["marking"], w["mopi"])
        if got == exp:
            right += 1
        else:
            diffs.append("record %s (%s): holds %s, expected %s" % (sid, lid, got, exp))
    for sid in sorted(set(recs) - seen):
        diffs.append("missing record %s %s %s" % (recs[sid]["kind"], sid, recs[sid]["marking"]))
    got_links = set()
    dangling = 0
    for f, role, t in rms.links:
        if f in local and t in local:
            got_links.add((local[f], role, local[t]))
        elif f in local or t in local or f not in rms.records:
            dangling += 1  # a link to a record the RMS was never sent
    lright = len(got_links & links)
    lextra = got_links - links
    for l in sorted(lextra):
        diffs.append("extra link %s -%s-> %s" % l)
    for l in sorted(links - got_links):
        diffs.append("missing link %s -%s-> %s" % l)
    fig = {"entities_right": right, "entities": len(recs), "links_right": lright,
           "links": len(links), "extra": extra + len(lextra), "dangling": dangling}
    return fig, diffs


def figure_text(fig):
    return ("entities %d / %d right, links %d / %d right, extra %d"
            % (fig["entities_right"], fig["entities"], fig["links_right"], fig["links"],
               fig["extra"]))


def read_rms_dir(path, fmt):
    rms = Rms(fmt)
    for name in sorted(os.listdir(path)):
        if name.startswith("."):
            continue
        with open(os.path.join(path, name), "rb") as f:
            data = f.read()
        rms.apply(data.decode("utf-8") if fmt == "atx" else data)
    return rms


# ------------------------------------------------------------------ policy change

def _held_fields(rec, fmt):
    """The redactions (of REDACTIONS) that would clear something this record carries:
    its revision's field, and origin.org_unit for ATX (whose header names the unit; an
    NX5 document has none). The generator gives no person an ethnicity."""
    out = set()
    if VERSION_REDACTION.get(rec["kind"]) and rec["ver"]:
        out.add(VERSION_REDACTION[rec["kind"]])
    if fmt == "atx":
        out.add("origin.org_unit")
    return out


def changed_policy(rng, p1):
    """A second policy for a destination that had p1: drawn as any, but with each
    redaction (of a kind it receives) flipped from p1's by a coin, so that a change
    often redacts what was sent and lifts what was redacted."""
    p = random_policy(rng)
    p["redact"] = [x for x in REDACTIONS
                   if (x.split(".")[0] == "origin" or x.split(".")[0] in p["kinds"]) and
                   ((x in p1["redact"]) != (rng.random() < 0.5))]
    return p


def expected_policies(fmt, segments):
    """What a partner holds when the source's messages went in segments [(messages,
    policy), ...], the policy changing (a new version each time) between two segments
    (docs/policy.md "Routing", "Policy change"): each update decided under the policy
    of its time; at a change everything held re-decided under the new policy and
    withdrawn when it no longer passes, or when it is held with a field the new policy
    newly redacts (it comes back, redacted, only with its next revision); then every
    live record not held, not withdrawn at its current revision (at an equal revision
    the partner keeps the DELETE), and shareable under the new policy is published,
    redacted as it says. A record held across a change keeps the form it was sent in
    (a redaction lifted shows only at its next revision). Links follow their ends. By
    source id, as `expected`."""
    src = Rms(fmt)
    held = {}  # id -> redactions it was sent with (held)
    withdrawn = {}  # id -> revision of a withdrawal other than a deletion

    def step(m, p):
        old_rev, old_ids = dict(src.rev), set(src.records)
        src.apply(m)
        for i in old_ids - set(src.records):
            if src.rev.get(i) == old_rev.get(i):  # merged away: a deletion at source
                held.pop(i, None)
                withdrawn.pop(i, None)
        for i, v in src.rev.items():
            if old_rev.get(i) == v:
                continue
            r = src.records.get(i)
            if r is None:  # a deletion at source: the state goes
                held.pop(i, None)
                withdrawn.pop(i, None)
            elif passes(r, p):
                held[i] = set(p["redact"])
                withdrawn.pop(i, None)
            elif i in held:
                del held[i]
                withdrawn[i] = v

    for k, (messages, p) in enumerate(segments):
        if k:  # the change to p
            for i in sorted(held):
                r = src.records[i]
                if not passes(r, p) or (set(p["redact"]) - held[i]) & _held_fields(r, fmt):
                    del held[i]
                    withdrawn[i] = src.rev[i]
            for i, r in src.records.items():
                if i not in held and passes(r, p) and withdrawn.get(i) != src.rev[i]:
                    held[i] = set(p["redact"])
        for m in messages:
            step(m, p)
    recs = {}
    for i, red in held.items():
        r = src.records[i]
        e = dict(r)
        if VERSION_REDACTION.get(r["kind"]) in red:
            e["ver"] = None
        recs[i] = e
    links = {l for l in src.links if l[0] in recs and l[2] in recs}
    return recs, links
