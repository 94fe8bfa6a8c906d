#!/usr/bin/env bash
# Runs a command (pg_regress, for `make installcheck`) with an HTTP and an
# HTTPS QIWI sandbox listening on free local ports, and PGOPTIONS pointing
# every session the command opens at them: qiwi.api_url, qiwi.secret_key and
# the qiwi_test.* settings the regression tests read.  The sandboxes are
# stopped by PID when the command ends.  The server must run on this host
# (the tests reach the sandbox with COPY ... FROM PROGRAM 'curl ...'),
# preload qiwi_kassa, and the role connecting must be a superuser.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for tool in python3 openssl curl; do
	command -v "$tool" >/dev/null || { echo "with-sandbox.sh: $tool is needed" >&2; exit 1; }
done

# A server that holds a key in qiwi.secret_key_file would use it instead of
# the sandbox's, and send it to the sandbox: test servers only
if [ -n "$(psql -X -At -c 'SHOW qiwi.secret_key_file' 2>/dev/null || true)" ]; then
	echo "with-sandbox.sh: the server has qiwi.secret_key_file set; its key would be sent to the test sandbox. Run make installcheck against a test server." >&2
	exit 1
fi

# A reconciler would work on the test database's bills while the tests
# run: refuse a server whose qiwi.database lets one serve it ('*', every
# database with the extension, or its name: pg_regress's --dbname,
# "regression" by default)
DBNAMES=regression
for arg in "$@"; do
	case $arg in --dbname=*) DBNAMES=${arg#--dbname=} ;; esac
done
RECONCILED=$(psql -X -At -c 'SHOW qiwi.database' 2>/dev/null || true)
if [ "$RECONCILED" = '*' ]; then
	echo "with-sandbox.sh: the server has qiwi.database = '*', which serves every database with the extension, the test database too: its reconciler would change the tests' bills. Set qiwi.database to another database, or run make installcheck against a test server." >&2
	exit 1
fi
if [ -n "$RECONCILED" ] && [[ ",$DBNAMES," == *",$RECONCILED,"* ]]; then
	echo "with-sandbox.sh: the server has qiwi.database = '$RECONCILED', the test database: its reconciler would change the tests' bills. Set qiwi.database to another database, or run make installcheck against a test server." >&2
	exit 1
fi

# Every test session starts from the library's built-in value of each qiwi.*
# setting a session can set (pg_settings.boot_val), whatever the server's
# postgresql.conf, ALTER DATABASE or ALTER ROLE say: a server configured as
# README says (qiwi.site_id, qiwi.payin_site_id, qiwi.public_key,
# qiwi.max_retries, ...) passes the same tests as a bare one.  The sandbox's
# settings below are added after these.
SESSION_DEFAULTS=$(psql -X -At -c "SELECT string_agg(format('-c %s=%s', name,
		replace(replace(boot_val, '\\', '\\\\'), ' ', '\\ ')), ' ' ORDER BY name)
	FROM pg_catalog.pg_settings
	WHERE name LIKE 'qiwi.%' AND context IN ('user', 'superuser')
	  AND name NOT IN ('qiwi.api_url', 'qiwi.timeout')") ||
	{ echo "with-sandbox.sh: could not read the qiwi.* settings of the server at PGHOST/PGPORT" >&2; exit 1; }

WORK=$(mktemp -d /tmp/qiwi_kassa-installcheck.XXXXXX)
# The server reads the CA file as its own OS user
chmod 755 "$WORK"
PIDS=()

# Stop the sandboxes this script started; keep their logs if asked to
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "${QIWI_KEEP_WORK:-}" ]; then
		echo "with-sandbox.sh: sandbox logs kept in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# A TCP port nobody listens on right now
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Start a sandbox on a port (extra args: --tls-cert/--tls-key); wait until it answers
start_sandbox() {
	local port=$1 scheme=http; shift
	[ $# -gt 0 ] && scheme=https
	python3 "$SRC/test/qiwi_sandbox.py" --port "$port" --secret "$SECRET" "$@" \
		>"$WORK/sandbox-$port.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 100); do
		curl -s -o /dev/null --cacert "$WORK/ca.pem" "$scheme://localhost:$port/sandbox/stats" && return 0
		sleep 0.1
	done
	echo "with-sandbox.sh: the sandbox on port $port did not start:" >&2
	cat "$WORK/sandbox-$port.log" >&2
	return 1
}

# A throwaway CA and a certificate for "localhost" only (no IP SAN): the
# HTTPS tests expect 127.0.0.1 to be refused
bash "$SRC/test/make-tls.sh" "$WORK" localhost

SECRET=sandbox-secret-$(openssl rand -hex 12)
HTTP_PORT=$(free_port)
start_sandbox "$HTTP_PORT"
HTTPS_PORT=$(free_port)
start_sandbox "$HTTPS_PORT" --tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key"

# The same settings test/lib.sh writes into the test cluster's postgresql.conf
export PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }$SESSION_DEFAULTS -c qiwi.api_url=http://127.0.0.1:$HTTP_PORT
 -c qiwi.secret_key=$SECRET -c qiwi.timeout=5000
 -c qiwi_test.sandbox_url=http://127.0.0.1:$HTTP_PORT
 -c qiwi_test.https_url=https://localhost:$HTTPS_PORT
 -c qiwi_test.https_wrong_host_url=https://127.0.0.1:$HTTPS_PORT
 -c qiwi_test.ca_file=$WORK/ca.pem
 -c qiwi_test.unused_url=http://127.0.0.1:$(free_port)"
PGOPTIONS=${PGOPTIONS//$'\n'/}
echo "with-sandbox.sh: sandboxes on ports $HTTP_PORT (HTTP) and $HTTPS_PORT (HTTPS)" >&2

status=0
"$@" || status=$?
exit $status
