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

echo
printf '%-44s %12s %12s %9s %11s %7s\n' benchmark ours baseline ratio target result
for line in "${RESULTS[@]}"; do echo "$line"; done
