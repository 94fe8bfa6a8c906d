#!/usr/bin/env python3
"""Check that monitoring/grafana-dashboard.json is an importable Grafana
dashboard whose every query names only metrics that
monitoring/postgres_exporter_queries.yaml makes postgres_exporter produce.

A dashboard: a JSON object with a list of panels, a Prometheus datasource
input DS_PROMETHEUS (so Grafana asks for it on import), and every panel
(rows aside) of a known type, on that datasource, with targets that each
have a PromQL expression.  The metric names come from every expression and
from the template variables' queries; postgres_exporter names a metric
<namespace>_<column> for a GAUGE, COUNTER or MAPPEDMETRIC column,
<namespace>_<column>_milliseconds for a DURATION one, and adds _bucket,
_sum and _count for a HISTOGRAM (LABEL and DISCARD columns are no metric).

    python3 test/check_dashboard.py [--dashboard FILE] [--yaml FILE] [--self-test]

--self-test also proves the check refuses dashboards it must refuse (a
panel naming an unknown metric, a variable naming one, a panel without
queries).  Needs PyYAML (Debian: python3-yaml).  Ends with "dashboard: ...".
"""
import argparse
import copy
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD = os.path.join(HERE, "..", "monitoring", "grafana-dashboard.json")
YAML = os.path.join(HERE, "..", "monitoring", "postgres_exporter_queries.yaml")
PANEL_TYPES = {"timeseries", "stat", "table", "gauge", "bargauge", "text"}
DATASOURCE_UID = "${DS_PROMETHEUS}"
# PromQL words that are not metrics (aggregations and functions are
# recognised by the parenthesis that follows them)
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "inf", "nan", "start", "end", "atan2"}


def exporter_metrics(queries):
    """The names of the metrics postgres_exporter makes of a queries file."""
    names = set()
    for namespace, spec in (queries or {}).items():
        for metric in (spec or {}).get("metrics") or []:
            for column, info in metric.items():
                usage = (info or {}).get("usage")
                base = "%s_%s" % (namespace, column)
                if usage in ("GAUGE", "COUNTER", "MAPPEDMETRIC"):
                    names.add(base)
                elif usage == "DURATION":
                    names.add(base + "_milliseconds")
                elif usage == "HISTOGRAM":
                    names.update({base, base + "_bucket", base + "_sum", base + "_count"})
    return names


def metrics_in(expr):
    """The metric names a PromQL expression selects, and its problems."""
    problems = []
    names = [m.group(2) for m in re.finditer(r'__name__\s*(=~|!=|!~|=)?\s*"([^"]*)"', expr)]
    if re.search(r'__name__\s*(=~|!=|!~)', expr):
        problems.append("selects metrics by a pattern of __name__: name them")
    e = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'|`[^`]*`', " ", expr)   # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                                     # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                                    # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{[^}]*\}|\$\w+", " ", e)                             # Grafana variables
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", e):
        if m.group(2) or m.group(1).lower() in KEYWORDS:
            continue
        names.append(m.group(1))
    return names, problems


def variable_metrics(query):
    """The metric names of a template variable's query (label_values(m, l),
    query_result(expr), or an expression)."""
    if isinstance(query, dict):
        query = query.get("query") or ""
    query = str(query or "")
    m = re.match(r"\s*label_values\s*\((.*)\)\s*$", query, re.S)
    if m:
        parts = m.group(1).rsplit(",", 1)
        return metrics_in(parts[0])[0] if len(parts) == 2 else []
    m = re.match(r"\s*query_result\s*\((.*)\)\s*$", query, re.S)
    return metrics_in(m.group(1) if m else query)[0]


def all_panels(panels):
    """Every panel, those inside rows too."""
    for panel in panels or []:
        yield panel
        yield from all_panels(panel.get("panels"))


def check(dashboard, known):
    """The problems of a dashboard (an empty list when it is right), and
    how many panels and queries it has."""
    problems = []
    if not isinstance(dashboard, dict) or not isinstance(dashboard.get("panels"), list) \
            or not dashboard["panels"]:
        return ["not a dashboard: no list of panels"], 0, 0
    if not any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus"
               for i in dashboard.get("__inputs") or []):
        problems.append("no __inputs entry DS_PROMETHEUS of type prometheus: Grafana would not ask for a datasource on import")
    if not dashboard.get("title") or not dashboard.get("uid"):
        problems.append("no title or uid")
    npanels = nqueries = 0
    for panel in all_panels(dashboard["panels"]):
        title = "panel %r" % panel.get("title", panel.get("id"))
        if panel.get("type") == "row":
            continue
        npanels += 1
        if panel.get("type") not in PANEL_TYPES:
            problems.append("%s: type %r is not one of %s" % (title, panel.get("type"), sorted(PANEL_TYPES)))
        if panel.get("type") == "text":
            continue
        if (panel.get("datasource") or {}).get("uid") != DATASOURCE_UID:
            problems.append("%s: its datasource is not %s" % (title, DATASOURCE_UID))
        targets = panel.get("targets") or []
        if not targets:
            problems.append("%s: no targets" % title)
        for target in targets:
            expr = str(target.get("expr") or "").strip()
            if not expr:
                problems.append("%s: target %s has no expr" % (title, target.get("refId")))
                continue
            nqueries += 1
            names, expr_problems = metrics_in(expr)
            problems += ["%s: %s" % (title, p) for p in expr_problems]
            if not names:
                problems.append("%s: %r names no metric" % (title, expr))
            for name in names:
                if name not in known:
                    problems.append("%s: %s is not a metric of the exporter's queries file (in %r)"
                                    % (title, name, expr))
    for var in (dashboard.get("templating") or {}).get("list") or []:
        if var.get("type") != "query":
            continue
        nqueries += 1
        names = variable_metrics(var.get("query"))
        if not names:
            problems.append("variable %r: its query names no metric" % var.get("name"))
        for name in names:
            if name not in known:
                problems.append("variable %r: %s is not a metric of the exporter's queries file"
                                % (var.get("name"), name))
    return problems, npanels, nqueries


def self_test(dashboard, known):
    """Dashboards the check must refuse, each with what it must say; the
    problems of the check itself (an empty list when it refuses them all)."""
    failures = []
    panels = [p for p in all_panels(dashboard["panels"]) if p.get("targets")]
    cases = []
    bad = copy.deepcopy(dashboard)
    target = [p for p in all_panels(bad["panels"]) if p.get("targets")][0]["targets"][0]
    target["expr"] = "sum(rate(qiwi_no_such_metric[5m])) + " + target["expr"]
    cases.append(("a panel naming an unknown metric", bad, "qiwi_no_such_metric"))
    bad = copy.deepcopy(dashboard)
    bad["templating"] = {"list": [{"name": "m", "type": "query",
                                   "query": "label_values(qiwi_money_nowhere, merchant)"}]}
    cases.append(("a variable naming an unknown metric", bad, "qiwi_money_nowhere"))
    bad = copy.deepcopy(dashboard)
    [p for p in all_panels(bad["panels"]) if p.get("targets")][0]["targets"] = []
    cases.append(("a panel without targets", bad, "no targets"))
    bad = copy.deepcopy(dashboard)
    del bad["panels"]
    cases.append(("no panels", bad, "not a dashboard"))
    for what, bad, needle in cases:
        problems = check(bad, known)[0]
        if not any(needle in p for p in problems):
            failures.append("the check accepts %s (problems: %r)" % (what, problems))
        else:
            print("ok   refuses %s" % what)
    if not panels:
        failures.append("the dashboard has no panel with targets to test with")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dashboard", default=DASHBOARD)
    parser.add_argument("--yaml", default=YAML)
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    with open(args.yaml) as f:
        known = exporter_metrics(yaml.safe_load(f))
    with open(args.dashboard) as f:
        dashboard = json.load(f)
    problems, npanels, nqueries = check(dashboard, known)
    for problem in problems:
        print("FAIL " + problem)
    if args.self_test and not problems:
        problems += self_test(dashboard, known)
        for problem in problems:
            print("FAIL " + problem)
    print("dashboard: %d panels, %d queries, %d metrics known, %d problems"
          % (npanels, nqueries, len(known), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
