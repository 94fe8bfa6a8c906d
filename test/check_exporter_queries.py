#!/usr/bin/env python3
"""Run every query of monitoring/postgres_exporter_queries.yaml against a
database with qiwi_kassa, as postgres_exporter would, and fail when a query
errors, returns a column the file does not declare, lacks one it declares,
declares a usage postgres_exporter does not know or no description, or
gives a metric value that is not a number.

Either against a database psql reaches with the usual PG* environment
(PGHOST, PGPORT, PGDATABASE, PGUSER), where the extension is installed:

    python3 test/check_exporter_queries.py

or in a scratch cluster it makes in DIR (initdb, pg_ctl and psql on PATH,
qiwi_kassa installed; not as root), seeded with bills in every status, Payin
invoices, payments, holds and refunds, Pull bills and refunds, and
notifications, where it runs the queries as the role qiwi_exporter,
granted only the duty monitor (qiwi_grant), as the file's header says to:

    python3 test/check_exporter_queries.py --scratch DIR

Needs PyYAML (Debian: python3-yaml).  Ends with "exporter queries: N ok, N failed".
"""
import argparse
import csv
import io
import os
import socket
import subprocess
import sys

import yaml

YAML = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "monitoring",
                    "postgres_exporter_queries.yaml")
USAGES = {"LABEL", "COUNTER", "GAUGE", "DISCARD", "MAPPEDMETRIC", "DURATION", "HISTOGRAM"}
# The APIs the seed gives rows of: a query with an api label must show each
APIS = {"bill", "payin", "pull"}

# Bills in every status, refunds, a failing open bill, Payin money in every
# state, Pull bills and refunds (one failing), notifications that did not
# verify: every query has rows
SEED = """
CREATE EXTENSION qiwi_kassa;
INSERT INTO qiwi_bills (bill_id, site_id, amount, currency, status, status_changed_at, checked_at,
                        next_check_at, failures, last_error, qiwi_amount, qiwi_currency, qiwi_status)
SELECT 'ex-' || s, '270305', 10.50, 'RUB', s, now(), now(), now() - interval '1 minute',
       CASE WHEN s = 'WAITING' THEN 2 ELSE 0 END, CASE WHEN s = 'WAITING' THEN 'QKNET: refused' END,
       CASE WHEN s = 'MISMATCH' THEN 1 END, CASE WHEN s = 'MISMATCH' THEN 'RUB' END,
       CASE WHEN s = 'MISMATCH' THEN 'PAID' END
  FROM unnest(ARRAY['WAITING', 'PAID', 'REJECTED', 'EXPIRED', 'CREATING', 'CREATE_FAILED', 'MISMATCH']) s;
INSERT INTO qiwi_refunds (bill_id, refund_id, amount, currency, status, created_at, checked_at)
VALUES ('ex-PAID', 'r1', 0.50, 'RUB', 'PARTIAL', now(), now());
INSERT INTO qiwi_payin_invoices (merchant, bill_id, amount, currency, status, capture, created_at,
                                 expires_at, checked_at)
VALUES ('default', 'pi-open', 20.00, 'RUB', 'CREATED', 'auto', now() - interval '2 hours',
        now() + interval '1 day', now()),
       ('default', 'pi-paid', 30.00, 'RUB', 'PAID', 'auto', now(), now() + interval '1 day', now()),
       ('default', 'pi-held', 40.00, 'RUB', 'PAID', 'manual', now(), now() + interval '1 day', now());
INSERT INTO qiwi_payin_payments (merchant, payment_id, bill_id, status, amount, currency, captured_amount,
                                 status_changed_at, capture_deadline, checked_at)
VALUES ('default', 'pp-paid', 'pi-paid', 'COMPLETED', 30.00, 'RUB', 30.00, now(), NULL, now()),
       ('default', 'pp-held', 'pi-held', 'COMPLETED', 40.00, 'RUB', 0, now() - interval '1 hour',
        now() + interval '71 hours', now());
INSERT INTO qiwi_payin_refunds (merchant, payment_id, refund_id, amount, currency, status, reversal, checked_at)
VALUES ('default', 'pp-paid', 'pr-1', 5.00, 'RUB', 'COMPLETED', false, now());
SET qiwi.secret_key = 'exporter-check-key';
INSERT INTO qiwi_notifications (signature, body) VALUES ('00', '{"bill": {"billId": "ex-WAITING"}}');
INSERT INTO qiwi_payin_notifications (site_id, signature, body) VALUES ('ex', '00', '{"type": "PAYMENT"}');
INSERT INTO qiwi_pull_bills (merchant, bill_id, amount, currency, status, status_changed_at, checked_at,
                             next_check_at, failures, last_error)
VALUES ('ex_pull', 'pb-waiting', 12.00, 'RUB', 'waiting', now(), now(), now() - interval '1 minute', 1,
        'QKNET: refused'),
       ('ex_pull', 'pb-paid', 15.00, 'RUB', 'paid', now(), now(), now(), 0, NULL);
INSERT INTO qiwi_pull_refunds (merchant, bill_id, refund_id, amount, currency, status, status_changed_at,
                               checked_at)
VALUES ('ex_pull', 'pb-paid', 'r1', 5.00, 'RUB', 'processing', now(), now()),
       ('ex_pull', 'pb-paid', 'r2', 2.00, 'RUB', 'success', now(), now());
INSERT INTO qiwi_pull_notifications (prv_id, credential, body) VALUES ('1', 'x', '{"bill_id": "pb-paid"}');

INSERT INTO qiwi_wallet_sync (merchant, synced_until, last_sync_at, last_error, blocked_until)
VALUES ('wallet-ex', now() - interval '1 minute', now(), '423: blocked', now() + interval '4 minutes');
INSERT INTO qiwi_wallet_payments (merchant, txn_id, type, date, status, amount, currency, item, source)
VALUES ('wallet-ex', 1, 'IN', now(), 'WAITING', 1.50, 'RUB', '{}', 'reconciler');
-- the exporter's role: the duty monitor, nothing else
CREATE ROLE qiwi_exporter LOGIN;
SELECT qiwi_grant('qiwi_exporter', 'monitor');
"""


def psql(sql, env):
    """Run sql with psql; return (ok, header, rows, error text)."""
    p = subprocess.run(["psql", "-X", "-q", "--csv", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return False, [], [], p.stderr.strip()
    table = list(csv.reader(io.StringIO(p.stdout)))
    return True, (table[0] if table else []), table[1:], ""


def check_namespace(name, spec, env, seeded):
    """The problems of one namespace (an empty list when it is right);
    seeded: the database holds SEED, so an api label names every API."""
    problems = []
    if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
        return ["no query"]
    declared = {}
    for metric in spec.get("metrics") or []:
        if not isinstance(metric, dict) or len(metric) != 1:
            problems.append("a metric is not one column: %r" % (metric,))
            continue
        (column, info), = metric.items()
        info = info or {}
        if info.get("usage") not in USAGES:
            problems.append("%s: usage %r is not one of %s" % (column, info.get("usage"), sorted(USAGES)))
        if not str(info.get("description") or "").strip():
            problems.append("%s: no description" % column)
        declared[column] = info.get("usage")
    if not declared:
        problems.append("no metrics")
    ok, header, rows, error = psql(spec["query"], env)
    if not ok:
        return problems + ["the query fails: " + error]
    for column in header:
        if column not in declared:
            problems.append("the query returns %s, which is not declared" % column)
    for column in declared:
        if column not in header:
            problems.append("%s is declared, but the query does not return it" % column)
    if not rows:
        problems.append("the query returns no row")
    if seeded and "api" in header:
        missing = APIS - {row[header.index("api")] for row in rows}
        if missing:
            problems.append("no row for api %s" % ", ".join(sorted(missing)))
    for row in rows:
        for column, value in zip(header, row):
            if declared.get(column) in ("GAUGE", "COUNTER"):
                try:
                    float(value)
                except ValueError:
                    problems.append("%s is not a number: %r" % (column, value))
    return problems


def free_port():
    """A TCP port nobody listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--yaml", default=YAML)
    parser.add_argument("--scratch", metavar="DIR", help="make, seed and stop a cluster in DIR")
    args = parser.parse_args()
    with open(args.yaml) as f:
        queries = yaml.safe_load(f)

    env = dict(os.environ)
    data = None
    if args.scratch:
        data = os.path.join(os.path.abspath(args.scratch), "data")
        port = str(free_port())
        subprocess.run(["initdb", "-D", data, "--auth=trust", "-U", "postgres"], check=True,
                       stdout=subprocess.DEVNULL)
        with open(os.path.join(data, "postgresql.conf"), "a") as conf:
            conf.write("listen_addresses = ''\nunix_socket_directories = '%s'\nport = %s\n"
                       "shared_preload_libraries = 'qiwi_kassa'\nqiwi.database = ''\n"
                       % (os.path.abspath(args.scratch), port))
        subprocess.run(["pg_ctl", "-D", data, "-l", os.path.join(args.scratch, "postgres.log"),
                        "-w", "start"], check=True, stdout=subprocess.DEVNULL)
        env.update(PGHOST=os.path.abspath(args.scratch), PGPORT=port, PGDATABASE="postgres",
                   PGUSER="postgres")
        exporter_env = dict(env, PGUSER="qiwi_exporter")
    passed = failed = 0
    try:
        if args.scratch:
            ok, _, _, error = psql(SEED, env)
            if not ok:
                print("FAIL seeding the scratch database: " + error)
                failed += 1
            print("as the role qiwi_exporter, granted the duty monitor only")
        for name, spec in (queries or {}).items():
            problems = check_namespace(name, spec, exporter_env if args.scratch else env,
                                       bool(args.scratch))
            if problems:
                failed += 1
                print("FAIL %s" % name)
                for problem in problems:
                    print("     " + problem)
            else:
                passed += 1
                print("ok   %s (%d metrics)" % (name, len(spec["metrics"])))
        if not queries:
            failed += 1
            print("FAIL %s has no query" % args.yaml)
    finally:
        if data:
            subprocess.run(["pg_ctl", "-D", data, "-m", "fast", "stop"], stdout=subprocess.DEVNULL)
    print("exporter queries: %d ok, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
