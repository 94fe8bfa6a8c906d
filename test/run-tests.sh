#!/usr/bin/env bash
# The whole test suite: builds and installs qiwi_kassa, starts an HTTP and
# an HTTPS sandbox, runs the pg_regress tests in a temporary cluster and the
# TAP tests, checks the server log for the secret, checks the sandbox's Pull,
# Payin, Bill Payments and Wallet APIs (test/pull_sandbox_check.py,
# test/payin_sandbox_check.py, test/bill_sandbox_check.py,
# test/wallet_sandbox_check.py),
# the exporter's queries and the Grafana dashboard (test/check_dashboard.py),
# runs the demo as a new
# user would (test/first_run.sh) and the benchmarks' smoke run, and ends
# with a line "N passed, N failed".  Run as root on Debian 12, from any
# directory, in any locale; it installs what it needs.
#
# For development: QIWI_ONLY=REGEX runs only the checks whose names match
# (e.g. 'regress/qiwi_payin|tap/011'; qiwi_setup always runs first), and
# QIWI_PGROOT=DIR tests in a private copy of PostgreSQL (test/lib.sh).
source "$(dirname "$0")/lib.sh"

# tap/032 runs the nodes under pg_auto_failover
QIWI_PACKAGES+=(postgresql-$PG_MAJOR-auto-failover pg-auto-failover-cli)
install_packages
build_and_install
build_and_install_test_module
make_workdir

start_test_sandboxes

passed=0
failed=0
# wanted NAME: is the check NAME selected by QIWI_ONLY (all are by default)?
wanted() {
	[ -z "${QIWI_ONLY:-}" ] || [[ "$1" =~ $QIWI_ONLY ]]
}
record() {	# record NAME STATUS
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1)); echo "ok   $1"
	else
		failed=$((failed + 1)); echo "FAIL $1"
	fi
}

# ---- docs/tutorial.md shows the regression test qiwi_tutorial, line for line ----
if wanted "regress/qiwi_tutorial"; then
	status=0
	/usr/bin/python3 "$QIWI_SRC/test/check_tutorial.py" "$QIWI_SRC" || status=1
	record "regress/qiwi_tutorial: docs/tutorial.md is its SQL and its output" $status
fi

# ---- pg_regress, in a temporary instance configured for the sandbox ----
REGRESS_DIR=$QIWI_WORK/regress
as_user mkdir -p "$REGRESS_DIR"
write_server_conf "$QIWI_WORK/regress.conf"

say "running pg_regress"
REGRESS_TESTS=
for t in $(regress_tests); do
	if [ "$t" = qiwi_setup ] || wanted "regress/$t"; then
		REGRESS_TESTS+=" $t"
	fi
done
set +e
(cd "$REGRESS_DIR" && as_user "$PG_REGRESS" \
	--temp-instance="$REGRESS_DIR/tmp_check" \
	--temp-config="$QIWI_WORK/regress.conf" \
	--inputdir="$QIWI_TREE" --outputdir="$REGRESS_DIR" \
	--bindir="$PG_BIN" --dbname=contrib_regression --encoding=UTF8 \
	$REGRESS_TESTS) >"$QIWI_WORK/regress.out" 2>&1
set -e
cat "$QIWI_WORK/regress.out"
for t in $REGRESS_TESTS; do
	status=0
	grep -Eq "^(test|     ) *$t +\.\.\. ok" "$QIWI_WORK/regress.out" || status=1
	record "regress/$t" $status
done
if [ -s "$REGRESS_DIR/regression.diffs" ]; then
	cat "$REGRESS_DIR/regression.diffs"
fi

# The secret must not appear anywhere in the server log, at DEBUG5
status=0
[ -s "$REGRESS_DIR/log/postmaster.log" ] || status=1
grep -rqF "$SANDBOX_SECRET" "$REGRESS_DIR/log" && status=1
record "secret absent from the server log" $status

# ---- TAP tests (PostgreSQL::Test::Cluster) ----
# Two lanes, each with its own HTTP sandbox (the tests count the sandbox's
# requests), take the next test from one queue; each test's output is shown
# when both lanes are done, in name order.
say "running TAP tests (two lanes)"
TAP_DIR=$QIWI_WORK/tap
as_user mkdir -p "$TAP_DIR" "$TAP_DIR/portlock"
: >"$TAP_DIR/queue"
for t in "$QIWI_TREE"/test/t/*.pl; do
	[ -e "$t" ] || continue
	wanted "tap/$(basename "$t")" && echo "$t" >>"$TAP_DIR/queue"
done
# tap_lane SANDBOX_URL: run queued tests until the queue is empty
tap_lane() {
	local t name rc
	while t=$(flock "$TAP_DIR/queue" sh -c 'head -n 1 "$1" && sed -i 1d "$1"' sh "$TAP_DIR/queue") && [ -n "$t" ]; do
		name=$(basename "$t")
		(cd "$TAP_DIR" && as_user env \
			PERL5LIB="$PGXS_DIR/src/test/perl:$QIWI_TREE/test/perl" \
			PG_REGRESS="$PG_REGRESS" TESTDIR="$TAP_DIR" PG_TEST_PORT_DIR="$TAP_DIR/portlock" \
			QIWI_SANDBOX_URL="$1" \
			QIWI_SANDBOX_SECRET="$SANDBOX_SECRET" QIWI_SRC="$QIWI_TREE" \
			prove -v "$t") >"$TAP_DIR/$name.out" 2>&1 && rc=0 || rc=$?
		echo $rc >"$TAP_DIR/$name.rc"
		echo "    done tap/$name (exit $rc)"
	done
}
LANE2_PORT=$(free_port)
start_sandbox "$LANE2_PORT"
start_lane tap_lane "http://127.0.0.1:$HTTP_PORT"
start_lane tap_lane "http://127.0.0.1:$LANE2_PORT"
wait_lanes
for t in "$QIWI_TREE"/test/t/*.pl; do
	name=$(basename "$t")
	[ -e "$TAP_DIR/$name.rc" ] || continue
	cat "$TAP_DIR/$name.out"
	record "tap/$name" "$(cat "$TAP_DIR/$name.rc")"
done

# ---- the sandbox's Pull API behaves as QIWI's documents say (QIWI_ONLY can pick it) ----
if wanted "pull sandbox self-check"; then
	say "running test/pull_sandbox_check.py"
	status=0
	as_user /usr/bin/python3 "$QIWI_TREE/test/pull_sandbox_check.py" --url "http://127.0.0.1:$HTTP_PORT" \
		>"$QIWI_WORK/pull_check.out" 2>&1 || status=1
	if [ $status -eq 0 ]; then tail -n 1 "$QIWI_WORK/pull_check.out"; else cat "$QIWI_WORK/pull_check.out"; fi
	record "pull sandbox self-check" $status
fi

# ---- the sandbox's Wallet API behaves as QIWI's documents say ----
if wanted "wallet sandbox self-check"; then
	say "running test/wallet_sandbox_check.py"
	status=0
	as_user /usr/bin/python3 "$QIWI_TREE/test/wallet_sandbox_check.py" --url "http://127.0.0.1:$HTTP_PORT" \
		>"$QIWI_WORK/wallet_check.out" 2>&1 || status=1
	if [ $status -eq 0 ]; then tail -n 1 "$QIWI_WORK/wallet_check.out"; else cat "$QIWI_WORK/wallet_check.out"; fi
	record "wallet sandbox self-check" $status
fi

# ---- no function in src/ over 100 lines, no file over 800 (CONTRIBUTING.md) ----
if wanted "code size rules"; then
	status=0
	/usr/bin/python3 "$QIWI_SRC/test/check_code_size.py" "$QIWI_SRC/src" || status=1
	record "code size rules" $status
fi

# The rest checks the whole product (the demo and the package install into
# the system's PostgreSQL): not run when QIWI_ONLY picks checks
if [ -n "${QIWI_ONLY:-}" ]; then
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
fi

# ---- the sandbox's Payin and Bill Payments APIs behave as QIWI's documents say ----
say "running test/payin_sandbox_check.py and test/bill_sandbox_check.py"
status=0
as_user /usr/bin/python3 "$QIWI_TREE/test/payin_sandbox_check.py" --url "http://127.0.0.1:$HTTP_PORT" \
	>"$QIWI_WORK/payin_check.out" 2>&1 || status=1
if [ $status -eq 0 ]; then tail -n 1 "$QIWI_WORK/payin_check.out"; else cat "$QIWI_WORK/payin_check.out"; fi
record "payin sandbox self-check" $status
status=0
as_user /usr/bin/python3 "$QIWI_TREE/test/bill_sandbox_check.py" --url "http://127.0.0.1:$HTTP_PORT" \
	--secret "$SANDBOX_SECRET" >"$QIWI_WORK/bill_check.out" 2>&1 || status=1
if [ $status -eq 0 ]; then tail -n 1 "$QIWI_WORK/bill_check.out"; else cat "$QIWI_WORK/bill_check.out"; fi
record "bill payments sandbox self-check" $status

# ---- a new user's first run: the demo from a private checkout, no locale ----
say "running test/first_run.sh"
status=0
bash "$QIWI_SRC/test/first_run.sh" >"$QIWI_WORK/first_run.out" 2>&1 || status=1
grep -E '^(ok|FAIL) ' "$QIWI_WORK/first_run.out" | sed 's/^/    /'
[ $status -eq 0 ] || cat "$QIWI_WORK/first_run.out"
record "first run: demo from a private checkout, no locale, nothing left running" $status

# ---- the postgres_exporter queries run ----
say "running test/check_exporter_queries.py"
status=0
as_user mkdir -p "$QIWI_WORK/exporter"
as_user /usr/bin/python3 "$QIWI_TREE/test/check_exporter_queries.py" --scratch "$QIWI_WORK/exporter" \
	>"$QIWI_WORK/exporter.out" 2>&1 || status=1
cat "$QIWI_WORK/exporter.out"
record "monitoring/postgres_exporter_queries.yaml queries run" $status

# ---- the Grafana dashboard names only the exporter's metrics ----
say "running test/check_dashboard.py"
status=0
/usr/bin/python3 "$QIWI_SRC/test/check_dashboard.py" --self-test >"$QIWI_WORK/dashboard.out" 2>&1 || status=1
cat "$QIWI_WORK/dashboard.out"
record "monitoring/grafana-dashboard.json: every panel's metric is the exporter's" $status

# ---- the official Node SDK's own suite against the sandbox ----
say "running test/sdk/run-sdk-suite.sh"
status=0
bash "$QIWI_SRC/test/sdk/run-sdk-suite.sh" >"$QIWI_WORK/sdk.out" 2>&1 || status=1
tail -n 20 "$QIWI_WORK/sdk.out"
record "sdk/QiwiBillPaymentsAPI.spec.js (official Node SDK 3.2.1 suite)" $status

# ---- the Debian package: built, installed with apt, make installcheck against it ----
say "running test/package-test.sh"
status=0
bash "$QIWI_SRC/test/package-test.sh" >"$QIWI_WORK/package.out" 2>&1 || status=1
tail -n 30 "$QIWI_WORK/package.out"
record "debian package: built, installed with apt, make installcheck" $status

# ---- the benchmarks still run (figures are not judged here) ----
say "running bench/run.sh --quick"
status=0
bash "$QIWI_SRC/bench/run.sh" --quick >"$QIWI_WORK/bench.out" 2>&1 || status=1
tail -n 5 "$QIWI_WORK/bench.out"
record "bench/run.sh --quick" $status

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
