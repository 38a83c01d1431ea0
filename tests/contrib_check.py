#!/usr/bin/env python3
"""tests/contrib_check.py: the alerting rules and the Grafana dashboard in contrib/ only
name metrics polegated exports (gateway/core/metrics.c), and the dashboard is a
Grafana dashboard (JSON, panels with Prometheus targets, unique ids)."""

import json
import re
import sys

root = sys.argv[1]
src = open(root + "/gateway/core/metrics.c", encoding="utf-8").read()
exported = set(re.findall(r'"(polegate_[a-z_]+)', src))
exported |= set(n + s for n in exported for s in ("_bucket", "_sum", "_count"))
failures = []

rules = open(root + "/contrib/prometheus/polegate.rules.yml", encoding="utf-8").read()
dash = json.load(open(root + "/contrib/grafana/polegate.json", encoding="utf-8"))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
for where, text in [("polegate.rules.yml", rules)] + [("polegate.json", e) for e in exprs]:
    for name in set(re.findall(r"\bpolegate_[a-z_]+", text)):
        if name not in exported:
            failures.append("%s names %s, which polegated does not export" % (where, name))

ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    failures.append("polegate.json: panel ids repeat")
if not all(p.get("targets") for p in dash["panels"]):
    failures.append("polegate.json: a panel without a query")
used_in_rules = set(re.findall(r"\bpolegate_[a-z_]+", rules))
for name in ("polegate_spool_records", "polegate_kafka_transactions_total",
             "polegate_intake_dead_letters_total", "polegate_audit_failures_total",
             "polegate_store_used_ratio", "polegate_partner_consumer_lag"):
    if name not in used_in_rules:
        failures.append("polegate.rules.yml: no alert on %s" % name)

for f in failures:
    print(f)
print("contrib: %d panels, %d metric names checked: %s" % (
    len(dash["panels"]), len(exported), "FAILED" if failures else "ok"))
sys.exit(1 if failures else 0)
