#!/usr/bin/env bash
# The regression suite with the server under valgrind's memcheck.  Fails on
# any memcheck error, or definite leak, whose stack passes through
# qiwi_kassa's code (PostgreSQL's own known reports are not ours to fix).
# Run as root on Debian 12; it installs what it needs.  Takes a few minutes.
# Arguments, if any, name the regression tests to run (default: all).
source "$(dirname "$0")/lib.sh"
QIWI_PACKAGES+=(valgrind)

install_packages
build_and_install
make_workdir
start_test_sandboxes

say "starting the server under valgrind"
PGPORT=$(free_port)
as_user initdb -D "$QIWI_WORK/data" --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
write_server_conf "$QIWI_WORK/valgrind.conf"
as_user tee -a "$QIWI_WORK/data/postgresql.conf" >/dev/null <<CONF
include '$QIWI_WORK/valgrind.conf'
listen_addresses = ''
unix_socket_directories = '$QIWI_WORK'
port = $PGPORT
CONF
# cleanup stops it with pg_ctl (postmaster.pid), or by PID if it never got that far
start_bg "$QIWI_WORK/postgres.log" valgrind --quiet --error-limit=no --num-callers=30 \
	--suppressions="$QIWI_TREE/test/valgrind.supp" \
	--leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
	--log-file="$QIWI_WORK/valgrind.%p.log" \
	"$PG_BIN/postgres" -D "$QIWI_WORK/data"
for _ in $(seq 1 600); do
	as_user pg_isready -q -h "$QIWI_WORK" -p "$PGPORT" && break
	sleep 0.5
done

say "running pg_regress against it"
set +e
as_user "$PG_REGRESS" --host="$QIWI_WORK" --port="$PGPORT" \
	--inputdir="$QIWI_TREE" --outputdir="$QIWI_WORK" --bindir="$PG_BIN" \
	--dbname=contrib_regression --encoding=UTF8 ${*:-$(regress_tests)}
regress_status=$?
[ $regress_status -ne 0 ] && cat "$QIWI_WORK/regression.diffs"
set -e
as_user pg_ctl -D "$QIWI_WORK/data" -m fast -t 300 stop >/dev/null 2>&1 || true

# Keep the memcheck reports (blank-line separated) that mention our code
ours=$(cat "$QIWI_WORK"/valgrind.*.log | sed 's/^==[0-9]*== \{0,1\}//' |
	awk 'BEGIN { RS = ""; ORS = "\n\n" } /qiwi_kassa\.so|[( ](module|transport|exchange|codecs|validate|signature|ledger|ledger_[a-z]+|intent|reconciler|requester|launcher|syncs|guard|guarded|calls|paging|ratelimit|wire|notification|redact|merchant|merchant_key|apis|bill_[a-z]+|payin_[a-z]+|pull_[a-z]+|wallet_[a-z]+)\.c:/')
if [ -n "$ours" ]; then
	echo "valgrind reports in qiwi_kassa:"
	echo "$ours"
fi
echo "valgrind: $(ls "$QIWI_WORK"/valgrind.*.log | wc -l) processes checked"
[ $regress_status -eq 0 ] && [ -z "$ours" ]
