#!/usr/bin/env bash
# qiwi_kassa benchmarks: each measures ours and a baseline side by side in
# the same run and reports the ratio.  Run as root on Debian 12:
#   bash bench/run.sh               # the full run
#   bash bench/run.sh --quick       # a smoke run (CI uses it to keep the benchmarks working)
#   bash bench/run.sh --signatures  # only the signature benchmarks (with --quick: on small data)
#   bash bench/run.sh --calls       # only the per-call benchmark
#   bash bench/run.sh --reconciler  # only the reconciler's benchmarks (with --quick: on small data)
#   bash bench/run.sh --ceiling     # only the reconciler's rounds of 100,000 items against nginx
# With QIWI_PGROOT=DIR it installs into a private copy of PostgreSQL under
# DIR (made on first use) instead of the system's (test/lib.sh).
source "$(dirname "$0")/../test/lib.sh"
# a step that fails stops the run (set -e) and says which it was: curl -s
# and commands whose output is discarded would otherwise stop it silently
set -E
trap 'echo "bench/run.sh: line $LINENO: exit $?: $BASH_COMMAND" >&2' ERR

QUICK=0
ONLY_SIGNATURES=0
ONLY_CALLS=0
ONLY_RECONCILER=0
ONLY_CEILING=0
for arg in "$@"; do
	case "$arg" in
		--quick) QUICK=1 ;;
		--signatures) ONLY_SIGNATURES=1 ;;
		--calls) ONLY_CALLS=1 ;;
		--reconciler) ONLY_RECONCILER=1 ;;
		--ceiling) ONLY_RECONCILER=1; ONLY_CEILING=1 ;;
		*) echo "usage: bash bench/run.sh [--quick] [--signatures | --calls | --reconciler | --ceiling]" >&2; exit 2 ;;
	esac
done
QIWI_PACKAGES+=(nginx-light postgresql-plpython3-$PG_MAJOR iproute2)

install_packages
build_and_install
make_workdir

say "starting a PostgreSQL cluster for the benchmarks"
start_cluster <<CONF
shared_buffers = '512MB'
max_parallel_workers_per_gather = 0
qiwi.database = ''
qiwi.secret_key = 'bench-key'
CONF
as_user psql -X -q -d postgres -c "CREATE EXTENSION qiwi_kassa" -c "CREATE EXTENSION pgcrypto"

# psql as the unprivileged user, unaligned, quiet
bench_sql() { as_user psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }

RESULTS=()
# report_at_most NAME OURS BASELINE UNIT MAX_RATIO: ratio = ours / baseline (lower is better)
report_at_most() {
	local ratio met
	ratio=$(awk -v o="$2" -v b="$3" 'BEGIN { printf "%.2f", o / b }')
	met=$(awk -v r="$ratio" -v t="$5" 'BEGIN { print (r <= t) ? "met" : "MISSED" }')
	RESULTS+=("$(printf '%-44s %12s %12s %8sx %8s %7s' "$1" "$2 $4" "$3 $4" "$ratio" "<= ${5}x" "$met")")
}

# report NAME OURS BASELINE UNIT TARGET_RATIO: ratio = baseline / ours (higher is better)
report() {
	local ratio met
	ratio=$(awk -v o="$2" -v b="$3" 'BEGIN { printf "%.1f", b / o }')
	met=$(awk -v r="$ratio" -v t="$5" 'BEGIN { print (r >= t) ? "met" : "MISSED" }')
	RESULTS+=("$(printf '%-44s %12s %12s %8sx %8s %7s' "$1" "$2 $4" "$3 $4" "$ratio" ">= ${5}x" "$met")")
}

# ---- 1. verifying stored notifications: qiwi_verify_signature vs pgcrypto ----
if [ $ONLY_CALLS -eq 0 ] && [ $ONLY_RECONCILER -eq 0 ]; then
ROWS=1000000
[ $QUICK -eq 1 ] && ROWS=20000
say "signatures: generating $ROWS signed notifications"
bench_sql <<SQL
CREATE TABLE bench_notifications AS
SELECT qiwi_sign_notification(body, 'bench-secret-key') AS signature, body
  FROM (SELECT jsonb_build_object('bill', jsonb_build_object(
               'siteId', '270305', 'billId', 'order-' || i,
               'amount', jsonb_build_object('currency', 'RUB',
                         'value', CASE WHEN i % 2 = 0 THEN to_jsonb(to_char((i % 100000) / 100.0 + 1, 'FM999999990.00'))
                                       ELSE to_jsonb(trim_scale((i % 100000) / 100.0 + 1)) END),
               'status', jsonb_build_object('value', 'PAID', 'changedDateTime', '2026-11-22T10:00:00+03:00')),
               'version', '1') AS body
          FROM generate_series(1, $ROWS) i) s;
VACUUM ANALYZE bench_notifications;
SQL

# ours and pgcrypto's check, run alternately (A B A B ...) RUNS times each in
# one session; prints "ours|baseline", each side's best run in seconds
RUNS=5
say "signatures: qiwi_verify_signature and the same check with pgcrypto in SQL, alternately, $RUNS runs each"
IFS='|' read -r OURS BASE <<<"$(bench_sql <<SQL
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE timings (side text, seconds float8);
DO \$\$
DECLARE t0 timestamptz; n bigint;
BEGIN
	FOR run IN 1..$RUNS LOOP
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE qiwi_verify_signature(signature, body, 'bench-secret-key'))
		  INTO n FROM bench_notifications;
		IF n <> $ROWS THEN RAISE EXCEPTION 'ours verified only % of $ROWS', n; END IF;
		INSERT INTO timings VALUES ('ours', extract(epoch FROM clock_timestamp() - t0));
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE encode(hmac(concat_ws('|',
				body->'bill'->'amount'->>'currency',
				to_char((body->'bill'->'amount'->>'value')::numeric, 'FM999999990.00'),
				body->'bill'->>'billId', body->'bill'->>'siteId', body->'bill'->'status'->>'value'),
				'bench-secret-key', 'sha256'), 'hex') = signature)
		  INTO n FROM bench_notifications;
		IF n <> $ROWS THEN RAISE EXCEPTION 'pgcrypto verified only % of $ROWS', n; END IF;
		INSERT INTO timings VALUES ('pgcrypto', extract(epoch FROM clock_timestamp() - t0));
	END LOOP;
END \$\$;
SELECT round(min(seconds) FILTER (WHERE side = 'ours')::numeric, 3) || '|' ||
       round(min(seconds) FILTER (WHERE side = 'pgcrypto')::numeric, 3) FROM timings;
SQL
)"
report "verify $ROWS notifications (1 core)" "$OURS" "$BASE" s 5

# ---- 1b. verifying stored Payin PAYMENT notifications, the same way ----
say "signatures: generating $ROWS signed Payin PAYMENT notifications"
bench_sql <<SQL
CREATE TABLE bench_payin_notifications AS
SELECT encode(hmac((body->'payment'->>'paymentId') || '|' || (body->'payment'->>'createdDateTime') || '|' ||
                   to_char((body->'payment'->'amount'->>'value')::numeric, 'FM999999990.00'),
                   'bench-secret-key', 'sha256'), 'hex') AS signature, body
  FROM (SELECT jsonb_build_object('type', 'PAYMENT', 'version', '1', 'payment', jsonb_build_object(
               'paymentId', (4000000 + i)::text, 'type', 'PAYMENT', 'billId', 'order-' || i,
               'createdDateTime', '2026-11-22T10:' || lpad((i % 60)::text, 2, '0') || ':' || lpad((i / 60 % 60)::text, 2, '0') || '+03:00',
               'status', jsonb_build_object('value', 'SUCCESS', 'changedDateTime', '2026-11-22T10:05:00+03:00'),
               'amount', jsonb_build_object('currency', 'RUB',
                         'value', CASE WHEN i % 2 = 0 THEN to_jsonb(round((i % 100000) / 100.0 + 1, 2))
                                       ELSE to_jsonb(trim_scale((i % 100000) / 100.0 + 1)) END),
               'paymentMethod', jsonb_build_object('type', 'CARD', 'maskedPan', '425600******0003'),
               'customer', jsonb_build_object('account', 'buyer-' || (i % 1000)))) AS body
          FROM generate_series(1, $ROWS) i) s;
VACUUM ANALYZE bench_payin_notifications;
SQL

# ours and pgcrypto's check of the Payin table, and ours of the bills' table,
# alternately RUNS times each; prints "ours|baseline|bill check", each best
say "signatures: qiwi_payin_verify_signature, the same check with pgcrypto in SQL and qiwi_verify_signature on the bills' table, alternately, $RUNS runs each"
IFS='|' read -r PAYIN_OURS PAYIN_BASE BILL_OURS <<<"$(bench_sql <<SQL
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE timings (side text, seconds float8);
DO \$\$
DECLARE t0 timestamptz; n bigint;
BEGIN
	FOR run IN 1..$RUNS LOOP
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE qiwi_payin_verify_signature(signature, body, 'bench-secret-key'))
		  INTO n FROM bench_payin_notifications;
		IF n <> $ROWS THEN RAISE EXCEPTION 'ours verified only % of $ROWS', n; END IF;
		INSERT INTO timings VALUES ('ours', extract(epoch FROM clock_timestamp() - t0));
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE encode(hmac((body->'payment'->>'paymentId') || '|' ||
				(body->'payment'->>'createdDateTime') || '|' ||
				to_char((body->'payment'->'amount'->>'value')::numeric, 'FM999999990.00'),
				'bench-secret-key', 'sha256'), 'hex') = signature)
		  INTO n FROM bench_payin_notifications;
		IF n <> $ROWS THEN RAISE EXCEPTION 'pgcrypto verified only % of $ROWS', n; END IF;
		INSERT INTO timings VALUES ('pgcrypto', extract(epoch FROM clock_timestamp() - t0));
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE qiwi_verify_signature(signature, body, 'bench-secret-key'))
		  INTO n FROM bench_notifications;
		IF n <> $ROWS THEN RAISE EXCEPTION 'the bill check verified only % of $ROWS', n; END IF;
		INSERT INTO timings VALUES ('bill', extract(epoch FROM clock_timestamp() - t0));
	END LOOP;
END \$\$;
SELECT round(min(seconds) FILTER (WHERE side = 'ours')::numeric, 3) || '|' ||
       round(min(seconds) FILTER (WHERE side = 'pgcrypto')::numeric, 3) || '|' ||
       round(min(seconds) FILTER (WHERE side = 'bill')::numeric, 3) FROM timings;
SQL
)"
report "verify $ROWS Payin notifications (1 core)" "$PAYIN_OURS" "$PAYIN_BASE" s 5
report_at_most "  Payin check vs the bill check, same rows" "$PAYIN_OURS" "$BILL_OURS" s 1

# ---- 1c. verifying stored Pull notifications (form parameters, HMAC-SHA1 base64) ----
say "signatures: generating $ROWS signed Pull notifications"
bench_sql <<SQL
-- the pgcrypto check of the side below, as one function: it signs the rows too
CREATE FUNCTION pull_signature_sql(params jsonb, password text) RETURNS text
LANGUAGE sql IMMUTABLE AS \$\$
	SELECT encode(hmac(convert_to((SELECT string_agg(value, '|' ORDER BY convert_to(key, 'UTF8'))
	                                 FROM jsonb_each_text(params)), 'UTF8'),
	                   convert_to(password, 'UTF8'), 'sha1'), 'base64')
\$\$;
CREATE TABLE bench_pull_notifications AS
SELECT pull_signature_sql(params, 'bench-pull-password') AS signature, params
  FROM (SELECT jsonb_build_object('command', 'bill', 'bill_id', 'order-' || i,
               'status', CASE WHEN i % 5 = 0 THEN 'rejected' ELSE 'paid' END,
               'error', '0', 'amount', to_char((i % 100000) / 100.0 + 1, 'FM999999990.00'),
               'user', 'tel:+7' || (9000000000 + i % 1000000), 'prv_name', 'Bench shop',
               'ccy', 'RUB', 'comment', CASE WHEN i % 10 = 0 THEN '' ELSE 'Order ' || i END) AS params
          FROM generate_series(1, $ROWS) i) s;
VACUUM ANALYZE bench_pull_notifications;
SQL

# ours and pgcrypto's check, alternately RUNS times each; prints
# "ours|baseline", each side's best run in seconds
say "signatures: qiwi_pull_verify_notification and the same check with pgcrypto in SQL, alternately, $RUNS runs each"
IFS='|' read -r PULL_OURS PULL_BASE <<<"$(bench_sql <<SQL
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE timings (side text, seconds float8);
DO \$\$
DECLARE t0 timestamptz; n bigint;
BEGIN
	FOR run IN 1..$RUNS LOOP
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE qiwi_pull_verify_notification(params, signature, 'bench-pull-password'))
		  INTO n FROM bench_pull_notifications;
		IF n <> $ROWS THEN RAISE EXCEPTION 'ours verified only % of $ROWS', n; END IF;
		INSERT INTO timings VALUES ('ours', extract(epoch FROM clock_timestamp() - t0));
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE encode(hmac(convert_to((SELECT string_agg(value, '|' ORDER BY convert_to(key, 'UTF8'))
				                                             FROM jsonb_each_text(params)), 'UTF8'),
				                               convert_to('bench-pull-password', 'UTF8'), 'sha1'), 'base64') = signature)
		  INTO n FROM bench_pull_notifications;
		IF n <> $ROWS THEN RAISE EXCEPTION 'pgcrypto verified only % of $ROWS', n; END IF;
		INSERT INTO timings VALUES ('pgcrypto', extract(epoch FROM clock_timestamp() - t0));
	END LOOP;
END \$\$;
SELECT round(min(seconds) FILTER (WHERE side = 'ours')::numeric, 3) || '|' ||
       round(min(seconds) FILTER (WHERE side = 'pgcrypto')::numeric, 3) FROM timings;
SQL
)"
report "verify $ROWS Pull notifications (1 core)" "$PULL_OURS" "$PULL_BASE" s 5

# ---- 1d. verifying stored Wallet webhooks, the same way ----
say "signatures: generating $ROWS signed Wallet webhooks"
bench_sql <<SQL
CREATE TABLE bench_wallet_webhooks AS
SELECT jsonb_set(body, '{hash}', to_jsonb(encode(hmac(convert_to(concat_ws('|', body->'payment'->'sum'->>'currency',
               trim_scale((body->'payment'->'sum'->>'amount')::numeric), body->'payment'->>'type',
               body->'payment'->>'account', body->'payment'->>'txnId'), 'UTF8'),
               decode('JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=', 'base64'), 'sha256'), 'hex'))) AS body
  FROM (SELECT jsonb_build_object('messageId', 'msg-' || i, 'hookId', 'hook-1', 'version', '1.0.0', 'test', false,
               'payment', jsonb_build_object('txnId', (20000000000 + i)::text, 'personId', 79161112233,
               'date', '2026-11-22T10:00:00+03:00', 'type', 'IN', 'status', 'SUCCESS', 'errorCode', '0',
               'account', '+7916' || lpad((i % 10000000)::text, 7, '0'), 'comment', 'order ' || i, 'provider', 99,
               'sum', jsonb_build_object('currency', 643,
                      'amount', CASE WHEN i % 2 = 0 THEN to_jsonb(round((i % 100000) / 100.0 + 1, 2))
                                     ELSE to_jsonb(trim_scale((i % 100000) / 100.0 + 1)) END),
               'signFields', 'sum.currency,sum.amount,type,account,txnId')) AS body
          FROM generate_series(1, $ROWS) i) s;
VACUUM ANALYZE bench_wallet_webhooks;
SQL

# ours and pgcrypto's check, alternately RUNS times each; prints "ours|baseline", each best
say "signatures: qiwi_wallet_verify_webhook and the same check with pgcrypto in SQL, alternately, $RUNS runs each"
IFS='|' read -r WALLET_OURS WALLET_BASE <<<"$(bench_sql <<SQL
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE timings (side text, seconds float8);
DO \$\$
DECLARE t0 timestamptz; n bigint;
BEGIN
	FOR run IN 1..$RUNS LOOP
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE qiwi_wallet_verify_webhook(body, 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc='))
		  INTO n FROM bench_wallet_webhooks;
		IF n <> $ROWS THEN RAISE EXCEPTION 'ours verified only % of $ROWS', n; END IF;
		INSERT INTO timings VALUES ('ours', extract(epoch FROM clock_timestamp() - t0));
		t0 := clock_timestamp();
		SELECT count(*) FILTER (WHERE encode(hmac(convert_to(concat_ws('|', body->'payment'->'sum'->>'currency',
				trim_scale((body->'payment'->'sum'->>'amount')::numeric), body->'payment'->>'type',
				body->'payment'->>'account', body->'payment'->>'txnId'), 'UTF8'),
				decode('JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=', 'base64'), 'sha256'), 'hex') = body->>'hash')
		  INTO n FROM bench_wallet_webhooks;
		IF n <> $ROWS THEN RAISE EXCEPTION 'pgcrypto verified only % of $ROWS', n; END IF;
		INSERT INTO timings VALUES ('pgcrypto', extract(epoch FROM clock_timestamp() - t0));
	END LOOP;
END \$\$;
SELECT round(min(seconds) FILTER (WHERE side = 'ours')::numeric, 3) || '|' ||
       round(min(seconds) FILTER (WHERE side = 'pgcrypto')::numeric, 3) FROM timings;
SQL
)"
report "verify $ROWS Wallet webhooks (1 core)" "$WALLET_OURS" "$WALLET_BASE" s 5
fi

# print the results table
print_results() {
	echo
	printf '%-44s %12s %12s %9s %11s %7s\n' benchmark ours baseline ratio target result
	for line in "${RESULTS[@]}"; do echo "$line"; done
}
if [ $ONLY_SIGNATURES -eq 1 ]; then
	print_results
	exit 0
fi

# ---- a fast static QIWI over TLS: nginx answers every GET of a bill ----
NGINX_PORT=$(free_port)
make_tls_material
cat >"$QIWI_WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $QIWI_WORK/nginx.pid;
error_log $QIWI_WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 10000000;
	keepalive_timeout 600s;
	server {
		listen 127.0.0.1:$NGINX_PORT ssl;
		server_name localhost;
		ssl_certificate $TLS_DIR/server.pem;
		ssl_certificate_key $TLS_DIR/server.key;
		location ~ ^/partner/bill/v1/bills/missing-[^/]+\$ {
			default_type application/json;
			return 404 '{"serviceName":"invoicing-api","errorCode":"api.invoice.not.found","description":"Invoice not found","userMessage":"Invoice not found","dateTime":"2026-11-22T10:00:00.000+03:00","traceId":"b3d41cafa0c6d088"}';
		}
		location ~ ^/partner/bill/v1/bills/busy-[^/]+\$ {
			return 503 '<html><body>Service Unavailable</body></html>';
		}
		location ~ ^/partner/payin/v1/sites/bench-nginx/bills/([^/]+)/details\$ {
			default_type application/json;
			return 200 '{"billId":"\$1","invoiceUid":"u-\$1","amount":{"currency":"RUB","value":"1.00"},"expirationDateTime":"2026-12-22T10:00:00+03:00","status":{"value":"CREATED","changedDateTime":"2026-11-22T10:00:00+03:00"},"comment":null,"flags":["SALE"],"payUrl":"https://oplata.qiwi.com/form?invoiceUid=u-\$1","payments":[]}';
		}
		location ~ ^/partner/bill/v1/bills/([^/]+)\$ {
			default_type application/json;
			return 200 '{"siteId":"270305","billId":"\$1","amount":{"currency":"RUB","value":"1.00"},"status":{"value":"WAITING","changedDateTime":"2026-11-22T10:00:00.000+03:00"},"comment":null,"creationDateTime":"2026-11-22T10:00:00.000+03:00","expirationDateTime":"2026-12-22T10:00:00.000+03:00","payUrl":"https://oplata.qiwi.com/form/?invoice_uid=0b1c"}';
		}
	}
}
NGINX
nginx -c "$QIWI_WORK/nginx.conf" -p "$QIWI_WORK" &
QIWI_PIDS+=($!)
NGINX_URL="https://localhost:$NGINX_PORT"
for _ in $(seq 1 50); do
	curl -s -o /dev/null --cacert "$TLS_DIR/ca.pem" "$NGINX_URL/partner/bill/v1/bills/x" && break
	sleep 0.1
done
# every session of this benchmark talks to nginx unless told otherwise
bench_sql >/dev/null <<SQL
ALTER DATABASE postgres SET qiwi.api_url = '$NGINX_URL';
ALTER DATABASE postgres SET qiwi.ca_file = '$TLS_DIR/ca.pem';
SQL

# ---- 2. one call over HTTPS: qiwi_bill_status, the limits, plpython3u ----
CALLS=10000
PY_CALLS=1000
RUNS=5
[ $QUICK -eq 1 ] && CALLS=300 && PY_CALLS=50 && RUNS=2
# best SIDE SECONDS: keep the smallest figure of each side
declare -A BEST
best() { BEST[$1]=$(awk -v a="${BEST[$1]:-}" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'); }
if [ $ONLY_RECONCILER -eq 0 ]; then
# start the timed sections from a checkpoint: the signature table left
# hundreds of MB of dirty buffers that would otherwise be flushed meanwhile
bench_sql -c "CHECKPOINT"
gcc -O2 -o "$QIWI_WORK/limit" "$QIWI_SRC/bench/limit.c" -lcurl
bench_sql <<'SQL'
CREATE EXTENSION IF NOT EXISTS plpython3u;
-- the same request and parsing in plpython3u; kept_alive: one
-- http.client connection kept in SD, else a TLS connection per call (urllib)
CREATE FUNCTION py_bill_status(bill_id text, kept_alive boolean) RETURNS qiwi_bill
LANGUAGE plpython3u AS $py$
import http.client, json, ssl, urllib.parse, urllib.request
from decimal import Decimal
if 'ctx' not in SD:
    settings = plpy.execute("SELECT current_setting('qiwi.api_url') AS url, current_setting('qiwi.ca_file') AS ca, current_setting('qiwi.secret_key') AS key")[0]
    SD['ctx'] = ssl.create_default_context(cafile=settings['ca'])
    SD['url'] = settings['url'] + '/partner/bill/v1/bills/'
    SD['parts'] = urllib.parse.urlsplit(settings['url'])
    SD['key'] = settings['key']
headers = {'Authorization': 'Bearer ' + SD['key'], 'Accept': 'application/json'}
path = urllib.parse.quote(bill_id, safe='')
if kept_alive:
    for attempt in (1, 2):
        if 'conn' not in SD:
            SD['conn'] = http.client.HTTPSConnection(SD['parts'].hostname, SD['parts'].port, context=SD['ctx'], timeout=10)
        try:
            SD['conn'].request('GET', '/partner/bill/v1/bills/' + path, headers=headers)
            answer = SD['conn'].getresponse()
            body = answer.read()
            break
        except (http.client.HTTPException, OSError):
            SD.pop('conn').close()
            if attempt == 2:
                raise
else:
    with urllib.request.urlopen(urllib.request.Request(SD['url'] + path, headers=headers),
                                context=SD['ctx'], timeout=10) as answer:
        body = answer.read()
b = json.loads(body)
return {'bill_id': b['billId'], 'site_id': b.get('siteId'),
        'amount': Decimal(str(b['amount']['value'])).quantize(Decimal('0.01')),
        'currency': b['amount']['currency'], 'status': b['status']['value'],
        'status_changed_at': b['status'].get('changedDateTime'),
        'created_at': b.get('creationDateTime'), 'expires_at': b.get('expirationDateTime'),
        'pay_url': b.get('payUrl'), 'comment': b.get('comment'),
        'customer': json.dumps(b['customer']) if 'customer' in b else None,
        'custom_fields': json.dumps(b['customFields']) if 'customFields' in b else None}
$py$;
SQL
# record the bills once, as the first call of each does
bench_sql -c "SELECT count(*) FROM generate_series(1, $CALLS) i, qiwi_bill_status('b' || i)" >/dev/null
# a row write of the kind each call makes: one UPDATE of a recorded bill by key
bench_sql <<'SQL'
CREATE FUNCTION write_rows(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..n LOOP
		UPDATE qiwi_bills SET checked_at = clock_timestamp() WHERE merchant = 'default' AND bill_id = 'b' || i;
	END LOOP;
END $$;
SQL

# time_sql SQL: seconds one statement takes in a fresh session, after a warm-up call
time_sql() {
	bench_sql <<SQL | tail -1
SELECT qiwi_bill_status('b1'), py_bill_status('b1', true), py_bill_status('b1', false);
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
$1;
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 4);
SQL
}
# pgbench_us SQL: average microseconds of one transaction running SQL, one client
pgbench_us() {
	printf '\\set i random(1, %s)\n%s\n' $CALLS "$1" >"$QIWI_WORK/pgbench.sql"
	chmod a+r "$QIWI_WORK/pgbench.sql"
	as_user pgbench -n -t $((CALLS / 5)) -f "$QIWI_WORK/pgbench.sql" postgres 2>&1 |
		awk '/latency average/ { printf "%.1f", $4 * 1000 }'
}

say "per call: $RUNS rounds, the sides alternating: libcurl, row writes, qiwi_bill_status, plpython3u kept alive and per connection, then one call per transaction"
for _ in $(seq 1 $RUNS); do
	best limit "$("$QIWI_WORK/limit" "$NGINX_URL/partner/bill/v1/bills/b" $CALLS "$TLS_DIR/ca.pem" bench-key)"
	best write "$(time_sql "SELECT write_rows($CALLS)")"
	best ours "$(time_sql "SELECT count(*) FROM generate_series(1, $CALLS) i, qiwi_bill_status('b' || i)")"
	best py_kept "$(time_sql "SELECT count(*) FROM generate_series(1, $CALLS) i, py_bill_status('b' || i, true)")"
	best py_conn "$(time_sql "SELECT count(*) FROM generate_series(1, $PY_CALLS) i, py_bill_status('b' || i, false)")"
	best xact_ours "$(pgbench_us "SELECT qiwi_bill_status('b' || :i);")"
	best xact_write "$(pgbench_us "UPDATE qiwi_bills SET checked_at = clock_timestamp() WHERE merchant = 'default' AND bill_id = 'b' || :i;")"
done
per_call_ms() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.4f", 1000 * s / n }'; }
LIMIT_MS=$(per_call_ms "${BEST[limit]}" $CALLS)
WRITE_MS=$(per_call_ms "${BEST[write]}" $CALLS)
FAIR_MS=$(awk -v a="$LIMIT_MS" -v b="$WRITE_MS" 'BEGIN { printf "%.4f", a + b }')
OURS_MS=$(per_call_ms "${BEST[ours]}" $CALLS)
PY_KEPT_MS=$(per_call_ms "${BEST[py_kept]}" $CALLS)
PY_CONN_MS=$(per_call_ms "${BEST[py_conn]}" $PY_CALLS)
XACT_OURS_MS=$(awk -v u="${BEST[xact_ours]}" 'BEGIN { printf "%.4f", u / 1000 }')
XACT_FAIR_MS=$(awk -v u="${BEST[xact_write]}" -v l="$LIMIT_MS" 'BEGIN { printf "%.4f", u / 1000 + l }')
report_at_most "qiwi_bill_status vs fair limit (curl+write)" "$OURS_MS" "$FAIR_MS" ms 1.2
report_at_most "qiwi_bill_status vs bare libcurl limit" "$OURS_MS" "$LIMIT_MS" ms 1.3
# reported beside its limit, with no target: the issue sets the 1.2x goal for
# the loop, and asks where a transaction's time goes (bench/README.md)
RESULTS+=("$(printf '%-44s %12s %12s %8sx %8s %7s' "  a call per transaction vs curl+durable write" "$XACT_OURS_MS ms" "$XACT_FAIR_MS ms" "$(awk -v o="$XACT_OURS_MS" -v b="$XACT_FAIR_MS" 'BEGIN { printf "%.2f", o / b }')" "none" "")")
report "qiwi_bill_status vs plpython3u kept alive" "$OURS_MS" "$PY_KEPT_MS" ms 1
# no target: a connection per call is what a careless baseline does, not a limit
RESULTS+=("$(printf '%-44s %12s %12s %8sx %8s %7s' "qiwi_bill_status vs plpython3u, TLS per call" "$OURS_MS ms" "$PY_CONN_MS ms" "$(awk -v o="$OURS_MS" -v b="$PY_CONN_MS" 'BEGIN { printf "%.1f", b / o }')" "none" "")")
RESULTS+=("$(printf '%-44s %12s' "  parts: libcurl; row write; durable write" "$LIMIT_MS ms; $WRITE_MS ms; $(awk -v u="${BEST[xact_write]}" 'BEGIN { printf "%.4f", u / 1000 }') ms")")
if [ $ONLY_CALLS -eq 1 ]; then
	print_results
	exit 0
fi

# ---- 4a. backend memory and sockets across many calls, half of them failing ----
MEM_CALLS=100000
[ $QUICK -eq 1 ] && MEM_CALLS=2000
say "memory: $MEM_CALLS qiwi_bill_status calls in one backend, half of them failing"
MEM=$(bench_sql <<SQL | grep '|'
SET qiwi.max_retries = 0;
CREATE FUNCTION mixed_calls(n int) RETURNS int LANGUAGE plpgsql AS \$\$
DECLARE failed int := 0;
BEGIN
	FOR i IN 1..n LOOP
		BEGIN
			CASE i % 6
				WHEN 1 THEN PERFORM qiwi_bill_status('missing-' || i);	-- 404
				WHEN 3 THEN PERFORM qiwi_bill_status('busy-' || i);		-- 503
				WHEN 5 THEN PERFORM qiwi_bill_status('bad/' || i);		-- bad input, no request
				ELSE PERFORM qiwi_bill_status('m' || (i % 100));
			END CASE;
		EXCEPTION WHEN OTHERS THEN failed := failed + 1;
		END;
	END LOOP;
	RETURN failed;
END \$\$;
SELECT mixed_calls(1000);
SELECT (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+)'))[1] || '|' ||
       (SELECT sum(total_bytes) FROM pg_backend_memory_contexts) AS before \gset
SELECT mixed_calls($MEM_CALLS) AS failed \gset
CREATE TEMP TABLE ss_out (line text);
COPY ss_out FROM PROGRAM 'ss -Htnp state established "( dport = :$NGINX_PORT )"';
SELECT :'before' || '|' || (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+)'))[1] || '|' ||
       (SELECT sum(total_bytes) FROM pg_backend_memory_contexts) || '|' || :failed || '|' ||
       (SELECT count(*) FROM ss_out WHERE line LIKE '%pid=' || pg_backend_pid() || ',%');
SQL
)
IFS='|' read -r RSS0 CTX0 RSS1 CTX1 FAILED_CALLS SOCKETS <<<"$MEM"
GROWTH_KB=$(( RSS1 - RSS0 ))
RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "backend RssAnon growth, $MEM_CALLS calls" "$GROWTH_KB kB" "$RSS0 kB" "" "< 1024 kB" "$([ $GROWTH_KB -lt 1024 ] && echo met || echo MISSED)")")
RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "  of which failed (404, 503, bad input)" "$FAILED_CALLS" "" "" "half" "$([ "$FAILED_CALLS" -eq $(( MEM_CALLS / 2 )) ] && echo met || echo MISSED)")")
RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "backend memory contexts growth" "$(( (CTX1 - CTX0) / 1024 )) kB" "$(( CTX0 / 1024 )) kB" "" "< 1024 kB" "$([ $(( CTX1 - CTX0 )) -lt 1048576 ] && echo met || echo MISSED)")")
RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "backend connections to QIWI afterwards" "$SOCKETS" "" "" "<= 1" "$([ "$SOCKETS" -le 1 ] && echo met || echo MISSED)")")
fi

# ---- 3. reconciler throughput against a QIWI answering in 50 ms ----
say "reconciler: starting a sandbox and pointing the reconciler at it"
SANDBOX_PORT=$(free_port)
start_sandbox "$SANDBOX_PORT"
SANDBOX_URL="http://127.0.0.1:$SANDBOX_PORT"
bench_sql >/dev/null <<SQL
ALTER DATABASE postgres RESET qiwi.api_url;
ALTER DATABASE postgres RESET qiwi.ca_file;
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

# reconcile_run N C TABLE EVENTS SETUP: reconcile the N open items that SQL
# SETUP leaves in TABLE (and nothing else open) at concurrency C in one
# round; prints "round_seconds|writes_per_item|status_events" (EVENTS: the
# table of their status events)
reconcile_run() {
	local n=$1 c=$2 table=$3 events=$4 setup=$5
	curl -sS -X POST "$SANDBOX_URL/sandbox/latency" -d '{"ms": 0}' >/dev/null
	bench_sql <<SQL >/dev/null
$setup
ALTER SYSTEM SET qiwi.reconcile_concurrency = $c;
SELECT pg_reload_conf();
SQL
	sleep 1.5	# the reload reaches the worker; the stats are flushed
	curl -sS -X POST "$SANDBOX_URL/sandbox/latency" -d "{\"ms\": $LATENCY_MS}" >/dev/null
	local t0 writes_before checked
	writes_before=$(bench_sql -c "SELECT n_tup_upd + n_tup_ins FROM pg_stat_user_tables WHERE relname = '$table'")
	t0=$(bench_sql -c "SELECT clock_timestamp()")
	# it writes no item (the due watermark): every write counted is the round's
	bench_sql -c "SELECT qiwi_reconcile_now()" >/dev/null
	# the round it woke: one begun after it (a round publishes at its end)
	until [ "$(bench_sql -c "SELECT coalesce(last_round_start >= '$t0', false) FROM qiwi_reconciler_status")" = t ]; do
		sleep 0.1
	done
	checked=$(bench_sql -c "SELECT last_round_checked FROM qiwi_reconciler_status")
	[ "$checked" -eq "$n" ] || { echo "bench/run.sh: the round checked $checked items, not the $n of $table" >&2; return 1; }
	sleep 0.5	# the worker's stats reach pg_stat_user_tables
	bench_sql -c "SELECT round(extract(epoch FROM last_round_duration)::numeric, 2) || '|' ||
		round(((SELECT n_tup_upd + n_tup_ins FROM pg_stat_user_tables WHERE relname = '$table')
		       - $writes_before)::numeric / last_round_checked, 2) || '|' ||
		(SELECT count(*) FROM $events WHERE source = 'reconciler')
		FROM qiwi_reconciler_status"
}

# report_reconcile N C WHAT SETUP TABLE EVENTS: items per second in a round
# against concurrency / latency
report_reconcile() {
	local out seconds writes events rate ideal pct met
	out=$(reconcile_run "$1" "$2" "$5" "$6" "$4" | grep '|')
	IFS='|' read -r seconds writes events <<<"$out"
	rate=$(awk -v n="$1" -v s="$seconds" 'BEGIN { printf "%.0f", n / s }')
	ideal=$(awk -v c="$2" -v l="$LATENCY_MS" 'BEGIN { printf "%.0f", c * 1000 / l }')
	pct=$(awk -v r="$rate" -v i="$ideal" 'BEGIN { printf "%.0f", 100 * r / i }')
	met=$(awk -v p="$pct" 'BEGIN { print (p >= 90) ? "met" : "MISSED" }')
	RESULTS+=("$(printf '%-44s %12s %12s %8s%% %8s %7s' "reconcile $1 $3, concurrency $2" "$rate/s" "$ideal/s" "$pct" ">= 90%" "$met")")
	met=$(awk -v w="$writes" -v e="$events" 'BEGIN { print (w <= 1.0 && e == 0) ? "met" : "MISSED" }')
	RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "  writes per checked $([ "$3" = bills ] && echo bill || echo invoice); status events" "$writes" "$events" "" "<= 1; 0" "$met")")
}
# report_bills N C: N WAITING bills (created at the sandbox) at concurrency C
report_bills() {
	report_reconcile "$1" "$2" bills "TRUNCATE qiwi_bills, qiwi_bill_events;
SELECT count(qiwi_create_bill('bench-' || i, 1, expires_at => now() + interval '1 day')) FROM generate_series(1, $1) i;" \
		qiwi_bills qiwi_bill_events
}
if [ $ONLY_CEILING -eq 0 ]; then	# the 50 ms rows, the Payin invoices' and the wallet sync
if [ $QUICK -eq 1 ]; then
	report_bills 100 16
else
	report_bills 100 1
	report_bills 1000 16
	report_bills 10000 16
	report_bills 1000 64
	report_bills 10000 64
fi

# ---- 3a. the same with Payin invoices ----
# CREATED invoices of one Payin merchant, created at the sandbox once
# (qiwi_payin_create_invoice) and kept aside; each run puts N of them back
# as they were created and makes them due
PAYIN_INVOICES=10000
[ $QUICK -eq 1 ] && PAYIN_INVOICES=100
say "reconciler: creating $PAYIN_INVOICES Payin invoices at the sandbox"
curl -sS -X POST "$SANDBOX_URL/sandbox/latency" -d '{"ms": 0}' >/dev/null
curl -sS -X POST "$SANDBOX_URL/sandbox/payin/sites" \
	-d '{"siteId": "bench-site", "apiKey": "bench-payin-key", "notificationKey": "bench-notification-key"}' >/dev/null
bench_sql >/dev/null <<SQL
CREATE SERVER bench_payin FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'bench-site', payin_api_url '$SANDBOX_URL');
CREATE USER MAPPING FOR PUBLIC SERVER bench_payin OPTIONS (payin_api_key 'bench-payin-key');
TRUNCATE qiwi_bills, qiwi_bill_events;
-- due only when qiwi_reconcile_now makes them so, from their commit on: a
-- round over them begun then would still be running, and take some of the
-- first timed round's (a run stopped so, at its first Payin row)
BEGIN;
SELECT count(qiwi_payin_create_invoice('bench-' || i, 1.00, merchant => 'bench_payin')) FROM generate_series(1, $PAYIN_INVOICES) i;
UPDATE qiwi_payin_invoices SET next_check_at = 'infinity';
CREATE TABLE bench_payin_invoices AS SELECT * FROM qiwi_payin_invoices;
COMMIT;
SQL
# report_invoices N C: N CREATED Payin invoices at concurrency C
report_invoices() {
	report_reconcile "$1" "$2" "Payin invoices" "TRUNCATE qiwi_bills, qiwi_bill_events, qiwi_payin_invoices, qiwi_payin_payments, qiwi_payin_events;
INSERT INTO qiwi_payin_invoices SELECT * FROM bench_payin_invoices ORDER BY bill_id LIMIT $1;
-- scheduled now, as a new row is: an earlier qiwi_reconcile_now() would
-- make them due already, and the reload below would start a round early
UPDATE qiwi_payin_invoices SET scheduled_at = now();" \
		qiwi_payin_invoices qiwi_payin_events
}
if [ $QUICK -eq 1 ]; then
	report_invoices 100 16
else
	report_invoices 100 1
	report_invoices 1000 16
	report_invoices 10000 16
	report_invoices 1000 64
	report_invoices 10000 64
fi
bench_sql -c "TRUNCATE qiwi_payin_invoices, qiwi_payin_payments, qiwi_payin_events" >/dev/null

# ---- 3c. the wallet history's sync against the rate limit ----
# A wallet of WALLET_ITEMS payments over 80 days (one 90-day window) is read
# into qiwi_wallet_payments by the worker, the sandbox's limit shortened to
# 100 history requests in 2 s and ours to match with our margin (95 in
# 2.1 s).  The ideal is the pages the history needs (50 payments each) at
# our limit's pace; ours runs from the merchant's creation (its commit
# wakes the worker) to the end of its first whole read.
WALLET_ITEMS=100000
[ $QUICK -eq 1 ] && WALLET_ITEMS=2000
WALLET_RATE=95
WALLET_WINDOW_MS=2100
say "reconciler: the sync of a $WALLET_ITEMS-payment wallet history against the rate limit"
curl -sS -X POST "$SANDBOX_URL/sandbox/latency" -d '{"ms": 0}' >/dev/null
curl -sS -X POST "$SANDBOX_URL/sandbox/wallet/limits" -d '{"requests": 100, "windowSeconds": 2}' >/dev/null
curl -sS -X POST "$SANDBOX_URL/sandbox/wallet/wallets" -d '{"number": "79000000900", "token": "bench-wallet-token"}' >/dev/null
curl -sS -X POST "$SANDBOX_URL/sandbox/wallet/wallets/79000000900/payments" \
	-d "{\"count\": $WALLET_ITEMS, \"days\": 80}" >/dev/null
bench_sql >/dev/null <<SQL
ALTER SYSTEM SET qiwi.wallet_rate_requests = $WALLET_RATE;
ALTER SYSTEM SET qiwi.wallet_rate_window = $WALLET_WINDOW_MS;
ALTER SYSTEM SET qiwi.wallet_sync_days = 80;
SELECT pg_reload_conf();
SQL
sleep 1.5	# the reload reaches the worker
wallet_history_requests() {
	curl -s "$SANDBOX_URL/sandbox/wallet/stats" | python3 -c 'import json, sys; s = json.load(sys.stdin); print(s.get("payment-history", 0), s.get("blocked", 0))'
}
read -r WALLET_REQ0 WALLET_BLOCKED0 <<<"$(wallet_history_requests)"
WALLET_T0=$(bench_sql <<SQL | tail -1
BEGIN;
CREATE SERVER bench_wallet FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79000000900', wallet_api_url '$SANDBOX_URL');
CREATE USER MAPPING FOR PUBLIC SERVER bench_wallet OPTIONS (wallet_token 'bench-wallet-token');
SELECT qiwi_reconcile_now();
SELECT extract(epoch FROM clock_timestamp());
COMMIT;
SQL
)
WALLET_DEADLINE=$(( SECONDS + 600 ))
until [ "$(bench_sql -c "SELECT synced_until IS NOT NULL FROM qiwi_wallet_sync WHERE merchant = 'bench_wallet'")" = t ]; do
	[ $SECONDS -lt $WALLET_DEADLINE ] || { echo "the wallet history's sync did not end in 600 s" >&2; exit 1; }
	sleep 0.2
done
read -r WALLET_REQ1 WALLET_BLOCKED1 <<<"$(wallet_history_requests)"
IFS='|' read -r WALLET_S WALLET_ROWS <<<"$(bench_sql -c "SELECT round((extract(epoch FROM last_sync_at) - $WALLET_T0)::numeric, 2) || '|' || items
	FROM qiwi_wallet_sync_status WHERE merchant = 'bench_wallet'")"
[ "$WALLET_ROWS" -eq $WALLET_ITEMS ] || { echo "the sync recorded $WALLET_ROWS of $WALLET_ITEMS payments" >&2; exit 1; }
WALLET_IDEAL=$(awk -v n="$WALLET_ITEMS" -v r="$WALLET_RATE" -v w="$WALLET_WINDOW_MS" \
	'BEGIN { pages = int((n + 49) / 50); printf "%.2f", pages * w / 1000 / r }')
WALLET_PCT=$(awk -v o="$WALLET_S" -v i="$WALLET_IDEAL" 'BEGIN { printf "%.0f", 100 * i / o }')
RESULTS+=("$(printf '%-44s %12s %12s %8s%% %8s %7s' "sync a $WALLET_ITEMS-payment wallet history" "${WALLET_S}s" "${WALLET_IDEAL}s" "$WALLET_PCT" ">= 90%" "$(awk -v p="$WALLET_PCT" 'BEGIN { print (p >= 90) ? "met" : "MISSED" }')")")
WALLET_BLOCKS=$(( WALLET_BLOCKED1 - WALLET_BLOCKED0 ))
RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "  history requests; 423s from the sandbox" "$(( WALLET_REQ1 - WALLET_REQ0 ))" "$WALLET_BLOCKS" "" "0 423s" "$([ $WALLET_BLOCKS -eq 0 ] && echo met || echo MISSED)")")
# the rows below count the bills a round checks: no wallet is read beside them
bench_sql -c "SET client_min_messages = warning" -c "DROP SERVER bench_wallet CASCADE" >/dev/null
fi

# ---- 3b. the raw ceiling: many bills against nginx at concurrency 64 ----
CEILING=100000
[ $QUICK -eq 1 ] && CEILING=2000
say "reconciler: $CEILING WAITING bills against nginx at concurrency 64"
bench_sql >/dev/null <<SQL
ALTER SYSTEM SET qiwi.api_url = '$NGINX_URL';
ALTER SYSTEM SET qiwi.ca_file = '$TLS_DIR/ca.pem';
ALTER SYSTEM SET qiwi.reconcile_concurrency = 64;
SELECT pg_reload_conf();
TRUNCATE qiwi_bills, qiwi_bill_events;
INSERT INTO qiwi_bills (bill_id, amount, currency, status, checked_at, next_check_at)
SELECT 'c' || i, 1, 'RUB', 'WAITING', now(), 'infinity' FROM generate_series(1, $CEILING) i;
VACUUM ANALYZE qiwi_bills;
SQL
sleep 1.5
bench_sql <<'SQL'
CREATE FUNCTION wait_for_round(rounds_before bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	WHILE (SELECT rounds FROM qiwi_reconciler_status) <= rounds_before LOOP
		PERFORM pg_sleep(0.002);
	END LOOP;
END $$;
SQL
# one round over all of them; prints "checked|round seconds|failed|whole
# seconds", the whole from making the bills due to the end of the round
ceiling_round() {
	bench_sql <<'SQL' | tail -1
SELECT rounds AS rounds_before, extract(epoch FROM clock_timestamp()) AS t0 FROM qiwi_reconciler_status \gset
SELECT qiwi_reconcile_now();
SELECT wait_for_round(:rounds_before);
SELECT last_round_checked || '|' || extract(epoch FROM last_round_duration) || '|' || last_round_failed || '|' ||
       extract(epoch FROM last_round_start + last_round_duration) - :t0 FROM qiwi_reconciler_status;
SQL
}
gcc -O2 -o "$QIWI_WORK/multi" "$QIWI_SRC/bench/multi.c" -lcurl
# an untimed round first: it also takes what a sync left to read
ceiling_round >/dev/null
# ceiling_runs KEY WHAT LABEL URL [SUFFIX]: RUNS whole rounds over the
# CEILING items (WHAT), alternating with the C curl-multi client making the
# same requests (URL + i + SUFFIX); adds the rows: rate, round alone, failures
ceiling_runs() {
	local key=$1 what=$2 label=$3 url=$4 suffix=${5:-}
	local multi_s multi_failed checked round_s failed whole_s worst=0 worst_multi=0 rate multi_rate pct
	# from a checkpoint, as the timed sections above: the sections before
	# left enough WAL that one would start within these rounds (with
	# checkpoint_completion_target 0.9 it spread over a minute of them)
	bench_sql -c "CHECKPOINT"
	say "reconciler: $RUNS rounds over $what, alternating with a C curl-multi client making the same $CEILING requests"
	for _ in $(seq 1 $RUNS); do
		IFS="|" read -r multi_s multi_failed <<<"$("$QIWI_WORK/multi" "$url" $CEILING 64 "$TLS_DIR/ca.pem" bench-key $suffix)"
		best "${key}_multi" "$multi_s"
		IFS="|" read -r checked round_s failed whole_s <<<"$(ceiling_round)"
		[ "$checked" -eq $CEILING ] || { echo "the round checked $checked of $CEILING $what" >&2; exit 1; }
		best "${key}_round" "$round_s"
		best "${key}_whole" "$whole_s"
		worst=$(( worst > failed ? worst : failed ))
		worst_multi=$(( worst_multi > multi_failed ? worst_multi : multi_failed ))
	done
	rate=$(awk -v n="$CEILING" -v s="${BEST[${key}_whole]}" 'BEGIN { printf "%.0f", n / s }')
	multi_rate=$(awk -v n="$CEILING" -v s="${BEST[${key}_multi]}" 'BEGIN { printf "%.0f", n / s }')
	pct=$(awk -v r="$rate" -v m="$multi_rate" 'BEGIN { printf "%.0f", 100 * r / m }')
	RESULTS+=("$(printf '%-44s %12s %12s %8s%% %8s %7s' "$label" "$rate/s" "$multi_rate/s" "$pct" ">= 80%" "$(awk -v p="$pct" 'BEGIN { print (p >= 80) ? "met" : "MISSED" }')")")
	RESULTS+=("$(printf '%-44s %12s' "  the round alone (last_round_duration)" "$(awk -v n="$CEILING" -v s="${BEST[${key}_round]}" 'BEGIN { printf "%.0f", n / s }')/s")")
	RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "  failed requests (worst round)" "$worst" "$worst_multi" "" "0" "$([ "$worst" -eq 0 ] && echo met || echo MISSED)")")
}
ceiling_runs bills "bills" "reconcile $CEILING bills vs nginx, concurrency 64" "$NGINX_URL/partner/bill/v1/bills/c"

# ---- 4b. the reconciler's memory across rounds ----
if [ $ONLY_CEILING -eq 0 ]; then
ROUNDS=10
ROUND_BILLS=10000
[ $QUICK -eq 1 ] && ROUNDS=3 && ROUND_BILLS=500
say "memory: the reconciler across $ROUNDS rounds of $ROUND_BILLS bills"
bench_sql >/dev/null <<SQL
ALTER SYSTEM SET qiwi.reconcile_batch_size = $ROUND_BILLS;
SELECT pg_reload_conf();
DELETE FROM qiwi_bills WHERE bill_id NOT IN (SELECT 'c' || i FROM generate_series(1, $ROUND_BILLS) i);
SQL
sleep 1.5
ceiling_round >/dev/null
RPID=$(bench_sql -c "SELECT pid FROM qiwi_reconciler_status")
# the requester is kept across rounds: its memory too
QPID=$(bench_sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa requester'")
RRSS0=$(awk '/RssAnon/ {print $2}' "/proc/$RPID/status")
QRSS0=$(awk '/RssAnon/ {print $2}' "/proc/$QPID/status")
for _ in $(seq 1 $ROUNDS); do ceiling_round >/dev/null; done
RRSS1=$(awk '/RssAnon/ {print $2}' "/proc/$RPID/status")
QRSS1=$(awk '/RssAnon/ {print $2}' "/proc/$QPID/status")
RGROWTH=$(( RRSS1 - RRSS0 ))
QGROWTH=$(( QRSS1 - QRSS0 ))
RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "reconciler RssAnon growth, $ROUNDS rounds" "$RGROWTH kB" "$RRSS0 kB" "" "< 1024 kB" "$([ $RGROWTH -lt 1024 ] && echo met || echo MISSED)")")
RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "requester RssAnon growth, same rounds" "$QGROWTH kB" "$QRSS0 kB" "" "< 1024 kB" "$([ $QGROWTH -lt 1024 ] && echo met || echo MISSED)")")
fi

# ---- 4d. the same ceiling with Payin invoices ----
# CEILING CREATED invoices of a merchant whose Payin URL is nginx, which
# answers every invoice's details as CREATED with no payment; a first round
# writes those details into each invoice, the timed ones find them
# unchanged (one write per checked invoice, as for bills)
say "reconciler: $CEILING CREATED Payin invoices against nginx at concurrency 64"
bench_sql >/dev/null <<SQL
ALTER SYSTEM SET qiwi.reconcile_batch_size = 100000;
SELECT pg_reload_conf();
CREATE SERVER bench_payin_nginx FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'bench-nginx', payin_api_url '$NGINX_URL');
CREATE USER MAPPING FOR PUBLIC SERVER bench_payin_nginx OPTIONS (payin_api_key 'bench-key');
TRUNCATE qiwi_bills, qiwi_bill_events, qiwi_payin_invoices, qiwi_payin_payments, qiwi_payin_events;
INSERT INTO qiwi_payin_invoices (merchant, bill_id, amount, currency, status, capture, checked_at, next_check_at)
SELECT 'bench_payin_nginx', 'p' || i, 1.00, 'RUB', 'CREATED', 'auto', now(), 'infinity' FROM generate_series(1, $CEILING) i;
VACUUM ANALYZE qiwi_payin_invoices;
SQL
sleep 1.5
ceiling_round >/dev/null
ceiling_runs payin "Payin invoices" "reconcile $CEILING Payin invoices vs nginx, c64" \
	"$NGINX_URL/partner/payin/v1/sites/bench-nginx/bills/p" /details
bench_sql -c "TRUNCATE qiwi_payin_invoices, qiwi_payin_payments, qiwi_payin_events" \
	-c "SET client_min_messages = warning" -c "DROP SERVER bench_payin_nginx CASCADE" >/dev/null

# ---- 4c. streaming a wallet's history: backend memory flat ----
if [ $ONLY_CEILING -eq 0 ]; then
WALLET_ITEMS=100000
[ $QUICK -eq 1 ] && WALLET_ITEMS=2000
say "memory: streaming $WALLET_ITEMS wallet history items ($(( WALLET_ITEMS / 50 )) pages) in one backend"
curl -sf -X POST "$SANDBOX_URL/sandbox/wallet/wallets" -H 'Content-Type: application/json' \
	--data-binary '{"number": "79000000005", "token": "bench-wallet-stream-token"}' >/dev/null
curl -sf -X POST "$SANDBOX_URL/sandbox/wallet/wallets/79000000005/payments" -H 'Content-Type: application/json' \
	--data-binary "{\"count\": $WALLET_ITEMS, \"days\": 200}" >/dev/null
# the sandbox's limit raised and no latency, the limiter's at its widest: the stream is not held up
curl -sf -X POST "$SANDBOX_URL/sandbox/wallet/limits" -H 'Content-Type: application/json' \
	--data-binary '{"requests": 1000000, "windowSeconds": 1}' >/dev/null
curl -sS -X POST "$SANDBOX_URL/sandbox/latency" -d '{"ms": 0}' >/dev/null
WALLET=$(bench_sql <<SQL | grep '|'
ALTER SYSTEM SET qiwi.wallet_rate_requests = 128;
ALTER SYSTEM SET qiwi.wallet_rate_window = '1s';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
CREATE SERVER bench_wallet FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79000000005', wallet_api_url '$SANDBOX_URL');
CREATE USER MAPPING FOR PUBLIC SERVER bench_wallet OPTIONS (wallet_token 'bench-wallet-stream-token');
SET qiwi.call_deadline = '1h';
-- a warm-up stream of a few pages, then the whole history (streamed: in the SELECT list)
SELECT count(*) FROM (SELECT (qiwi_wallet_history(now() - interval '2 days', merchant => 'bench_wallet')).txn_id) s;
SELECT (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+)'))[1] AS rss0, clock_timestamp() AS t0 \gset
SELECT count(*) AS items FROM (SELECT (qiwi_wallet_history(now() - interval '201 days', merchant => 'bench_wallet')).txn_id) s \gset
SELECT :'rss0' || '|' || (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+)'))[1] || '|' || :items || '|' ||
       round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 1);
SQL
)
IFS='|' read -r WRSS0 WRSS1 WITEMS WSECONDS <<<"$WALLET"
WGROWTH=$(( WRSS1 - WRSS0 ))
RESULTS+=("$(printf '%-44s %12s %12s %9s %11s %7s' "wallet history RssAnon growth, $WITEMS items" "$WGROWTH kB" "$WRSS0 kB" "" "< 1024 kB" "$([ $WGROWTH -lt 1024 ] && [ "$WITEMS" -eq $WALLET_ITEMS ] && echo met || echo MISSED)")")
RESULTS+=("$(printf '%-44s %12s' "  streamed in" "$WSECONDS s")")
fi

print_results
