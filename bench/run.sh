#!/usr/bin/env bash
# qiwi_kassa benchmarks: each measures ours and a baseline side by side in
# the same run and reports the ratio.  Run as root on Debian 12:
#   bash bench/run.sh          # the full run
#   bash bench/run.sh --quick  # a smoke run (CI uses it to keep the benchmarks working)
source "$(dirname "$0")/../test/lib.sh"

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

install_packages
build_and_install
make_workdir

say "starting a PostgreSQL cluster for the benchmarks"
PGPORT=$(free_port)
export PGPORT PGHOST=$QIWI_WORK
as_user initdb -D "$QIWI_WORK/data" --auth=trust >/dev/null
as_user tee -a "$QIWI_WORK/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = ''
unix_socket_directories = '$QIWI_WORK'
port = $PGPORT
shared_preload_libraries = 'qiwi_kassa'
shared_buffers = '512MB'
max_parallel_workers_per_gather = 0
CONF
as_user pg_ctl -D "$QIWI_WORK/data" -l "$QIWI_WORK/postgres.log" -w start >/dev/null
trap 'as_user pg_ctl -D "$QIWI_WORK/data" -m fast stop >/dev/null 2>&1 || true; cleanup' EXIT
as_user psql -X -q -d postgres -c "CREATE EXTENSION qiwi_kassa" -c "CREATE EXTENSION pgcrypto"

# psql as the unprivileged user, unaligned, quiet
bench_sql() { as_user psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }

RESULTS=()
# report NAME OURS BASELINE UNIT TARGET_RATIO: ratio = baseline / ours (higher is better)
report() {
	local ratio met
	ratio=$(awk -v o="$2" -v b="$3" 'BEGIN { printf "%.1f", b / o }')
	met=$(awk -v r="$ratio" -v t="$5" 'BEGIN { print (r >= t) ? "met" : "MISSED" }')
	RESULTS+=("$(printf '%-44s %12s %12s %8sx %8s %7s' "$1" "$2 $4" "$3 $4" "$ratio" ">= ${5}x" "$met")")
}

# ---- 1. verifying stored notifications: qiwi_verify_signature vs pgcrypto ----
ROWS=1000000
[ $QUICK -eq 1 ] && ROWS=20000
say "signatures: generating $ROWS signed notifications"
bench_sql <<SQL
CREATE TABLE bench_notifications AS
SELECT qiwi_sign_notification(body, 'bench-secret-key') AS signature, body
  FROM (SELECT jsonb_build_object('bill', jsonb_build_object(
               'siteId', '270305', 'billId', 'order-' || i,
               'amount', jsonb_build_object('currency', 'RUB',
                         'value', CASE WHEN i % 2 = 0 THEN to_jsonb(((i % 100000) / 100.0 + 1)::text)
                                       ELSE to_jsonb((i % 100000) + 1) END),
               'status', jsonb_build_object('value', 'PAID', 'changedDateTime', '2026-11-22T10:00:00+03:00')),
               'version', '1') AS body
          FROM generate_series(1, $ROWS) i) s;
VACUUM ANALYZE bench_notifications;
SQL

# seconds of the best of three runs of a query
best_of_three() {
	bench_sql <<SQL
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE timings (seconds float8);
DO \$\$
DECLARE t0 timestamptz; n bigint;
BEGIN
	FOR run IN 1..3 LOOP
		t0 := clock_timestamp();
		EXECUTE \$q\$ $1 \$q\$ INTO n;
		IF n <> $ROWS THEN RAISE EXCEPTION 'only % of $ROWS verified', n; END IF;
		INSERT INTO timings VALUES (extract(epoch FROM clock_timestamp() - t0));
	END LOOP;
END \$\$;
SELECT round(min(seconds)::numeric, 3) FROM timings;
SQL
}
say "signatures: qiwi_verify_signature"
OURS=$(best_of_three "SELECT count(*) FILTER (WHERE qiwi_verify_signature(signature, body, 'bench-secret-key')) FROM bench_notifications")
say "signatures: the same check with pgcrypto in SQL"
BASE=$(best_of_three "SELECT count(*) FILTER (WHERE encode(hmac(concat_ws('|',
		body->'bill'->'amount'->>'currency',
		to_char((body->'bill'->'amount'->>'value')::numeric, 'FM999999990.00'),
		body->'bill'->>'billId', body->'bill'->>'siteId', body->'bill'->'status'->>'value'),
		'bench-secret-key', 'sha256'), 'hex') = signature) FROM bench_notifications")
report "verify $ROWS notifications (1 core)" "$OURS" "$BASE" s 4

# ---- 2. reconciler throughput against a QIWI answering in 50 ms ----
say "reconciler: starting a sandbox and pointing the reconciler at it"
SANDBOX_PORT=$(free_port)
start_sandbox "$SANDBOX_PORT"
SANDBOX_URL="http://127.0.0.1:$SANDBOX_PORT"
bench_sql >/dev/null <<SQL
ALTER SYSTEM SET qiwi.api_url = '$SANDBOX_URL';
ALTER SYSTEM SET qiwi.secret_key = '$SANDBOX_SECRET';
ALTER SYSTEM SET qiwi.database = 'postgres';
ALTER SYSTEM SET qiwi.reconcile_batch_size = 100000;
ALTER SYSTEM SET qiwi.reconcile_interval = '1h';
SELECT pg_reload_conf();
SQL
LATENCY_MS=50
# the reconciler of this cluster starts once the reload reaches the launcher
sleep 2

# reconcile N WAITING bills at concurrency C in one round; prints
# "round_seconds|writes_per_bill|status_events"
reconcile_run() {
	local n=$1 c=$2
	curl -s -X POST "$SANDBOX_URL/sandbox/latency" -d '{"ms": 0}' >/dev/null
	bench_sql <<SQL >/dev/null
TRUNCATE qiwi_bills, qiwi_bill_events;
SELECT count(qiwi_create_bill('bench-' || i, 1, expires_at => now() + interval '1 day')) FROM generate_series(1, $n) i;
ALTER SYSTEM SET qiwi.reconcile_concurrency = $c;
SELECT pg_reload_conf();
SQL
	sleep 1.5	# the reload reaches the worker; the stats are flushed
	curl -s -X POST "$SANDBOX_URL/sandbox/latency" -d "{\"ms\": $LATENCY_MS}" >/dev/null
	local rounds_before writes_before made_due
	rounds_before=$(bench_sql -c "SELECT rounds FROM qiwi_reconciler_status")
	writes_before=$(bench_sql -c "SELECT n_tup_upd + n_tup_ins FROM pg_stat_user_tables WHERE relname = 'qiwi_bills'")
	made_due=$(bench_sql -c "SELECT qiwi_reconcile_now()")
	while [ "$(bench_sql -c "SELECT rounds FROM qiwi_reconciler_status")" -le "$rounds_before" ]; do
		sleep 0.1
	done
	sleep 0.5	# the worker's stats reach pg_stat_user_tables
	bench_sql -c "SELECT round(extract(epoch FROM last_round_duration)::numeric, 2) || '|' ||
		round(((SELECT n_tup_upd + n_tup_ins FROM pg_stat_user_tables WHERE relname = 'qiwi_bills')
		       - $writes_before - $made_due)::numeric / last_round_checked, 2) || '|' ||
		(SELECT count(*) FROM qiwi_bill_events WHERE source = 'reconciler')
		FROM qiwi_reconciler_status WHERE last_round_checked = $n"
}

# report_reconcile N C: bills per second in a round against concurrency / latency
report_reconcile() {
	local out seconds writes events rate ideal pct met
	out=$(reconcile_run "$1" "$2" | grep '|')
	IFS='|' read -r seconds writes events <<<"$out"
	rate=$(awk -v n="$1" -v s="$seconds" 'BEGIN { printf "%.0f", n / s }')
	ideal=$(awk -v c="$2" -v l="$LATENCY_MS" 'BEGIN { printf "%.0f", c * 1000 / l }')
	pct=$(awk -v r="$rate" -v i="$ideal" 'BEGIN { printf "%.0f", 100 * r / i }')
	met=$(awk -v p="$pct" 'BEGIN { print (p >= 80) ? "met" : "MISSED" }')
	RESULTS+=("$(printf '%-44s %12s %12s %8s%% %8s %7s' "reconcile $1 bills, concurrency $2" "$rate/s" "$ideal/s" "$pct" ">= 80%" "$met")")
	met=$(awk -v w="$writes" -v e="$events" 'BEGIN { print (w <= 1.0 && e == 0) ? "met" : "MISSED" }')
	RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "  writes per checked bill; status events" "$writes" "$events" "" "<= 1; 0" "$met")")
}
if [ $QUICK -eq 1 ]; then
	report_reconcile 100 16
else
	report_reconcile 100 1
	report_reconcile 1000 16
	report_reconcile 10000 16
	report_reconcile 1000 64
	report_reconcile 10000 64
fi

echo
printf '%-44s %12s %12s %9s %11s %7s\n' benchmark ours baseline ratio target result
for line in "${RESULTS[@]}"; do echo "$line"; done
