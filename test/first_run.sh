#!/usr/bin/env bash
# A new user's first run: test/demo.sh from a copy of the checkout in a
# private directory (mode 700, files readable by root only, as a clone under
# /root), with no locale in the environment.  The demo must succeed, and
# nothing it started may still run afterwards, also when it is stopped half
# way by SIGTERM.  With --keep, what it prints to connect, pay a bill and
# stop everything must work.  Run as root; test/run-tests.sh records it.
#   bash test/first_run.sh [CHECKOUT]   # default: this checkout
set -euo pipefail

SRC=$(cd "${1:-$(dirname "$0")/..}" && pwd)
if [ "$EUID" -ne 0 ]; then
	echo "run as root: the point is a checkout the unprivileged user cannot read" >&2
	exit 1
fi

PRIVATE=$(mktemp -d)
trap 'rm -rf "$PRIVATE"' EXIT
chmod 700 "$PRIVATE"
mkdir "$PRIVATE/proj"
tar -C "$SRC" --exclude=./.git -cf - . | tar -C "$PRIVATE/proj" -xf -
chmod -R go-rwx "$PRIVATE/proj"

failures=0
check() {	# check WHAT COMMAND...
	if "${@:2}"; then
		echo "ok   $1"
	else
		echo "FAIL $1"
		failures=$((failures + 1))
	fi
}

# The demo as a new user starts it: from the checkout, no locale variables
demo() {
	cd "$PRIVATE/proj" && exec env -u LANG -u LC_ALL -u LANGUAGE bash test/demo.sh "$@"
}

# The scratch directory a demo's log names
scratch_of() {
	sed -n 's/^==> scratch directory //p' "$1"
}

# Print the PID and command line of every process whose command line
# mentions a path (the sandbox runs from the scratch directory, the
# postmaster's -D is in it); bash only, procps may be missing
processes_in() {
	local f pid args
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}; pid=${pid%/cmdline}
		mapfile -d '' args 2>/dev/null <"$f" || continue
		case "${args[*]}" in *"$1"*) echo "$pid ${args[*]}" ;; esac
	done
}

# Nothing mentioning the scratch directory runs any more (a process that
# is being stopped gets 5 seconds)
nothing_left_in() {
	local left
	for _ in $(seq 1 50); do
		left=$(processes_in "$1")
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	echo "still running:" >&2
	echo "$left" >&2
	return 1
}

# ---- the whole demo ----
LOG=$PRIVATE/demo.log
status=0
(demo) >"$LOG" 2>&1 || status=$?
WORK=$(scratch_of "$LOG")
check "the demo succeeds from a private checkout without a locale (exit $status)" \
	test $status -eq 0
check "the demo names its scratch directory" test -n "$WORK"
check "the demo shows the expected error and finishes" \
	grep -q "demo finished" "$LOG"
check "no process of the demo is left running" nothing_left_in "${WORK:-/nonexistent}"
check "its scratch directory is removed" test ! -e "${WORK:-/nonexistent}"
[ $status -eq 0 ] || cat "$LOG"

# ---- the demo stopped by SIGTERM once its cluster and sandbox run ----
LOG=$PRIVATE/demo-term.log
(demo) >"$LOG" 2>&1 &
DEMO=$!
for _ in $(seq 1 1200); do
	grep -q "^==> PostgreSQL: pid" "$LOG" && break
	kill -0 $DEMO 2>/dev/null || break
	sleep 0.05
done
WORK=$(scratch_of "$LOG")
running=$(processes_in "${WORK:-/nonexistent}" | wc -l)
check "the cluster and the sandbox run before SIGTERM ($running processes seen)" \
	test "$running" -ge 2
kill -TERM $DEMO 2>/dev/null || true
status=0
wait $DEMO || status=$?
check "SIGTERM ends the demo (exit $status)" test $status -eq 143
check "no process of the interrupted demo is left running" nothing_left_in "${WORK:-/nonexistent}"
check "its scratch directory is removed" test ! -e "${WORK:-/nonexistent}"
[ $status -eq 143 ] || cat "$LOG"

# ---- --keep: its instructions, followed to the letter ----
LOG=$PRIVATE/demo-keep.log
status=0
(demo --keep) >"$LOG" 2>&1 || status=$?
WORK=$(scratch_of "$LOG")
check "the demo with --keep succeeds (exit $status)" test $status -eq 0
running=$(processes_in "${WORK:-/nonexistent}" | wc -l)
check "with --keep the cluster and the sandbox still run ($running processes)" \
	test "$running" -ge 2
# the line after a heading of its instructions
after() {
	sed -n "/^$1/{n;p;}" "$LOG"
}
PSQL=$(after "Connect")
# a command of the instructions, run by a user in his checkout
as_told() {
	(cd "$PRIVATE/proj" && env -u LANG -u LC_ALL -u LANGUAGE bash -c "$1")
}
check "the cluster it leaves is UTF8 in C.UTF-8" \
	test "$(as_told "$PSQL -XAt -c 'SHOW server_encoding' -c 'SHOW lc_ctype'" | tr '\n' ' ')" = "UTF8 C.UTF-8 "
mapfile -t PAY < <(sed -n '/^Create a bill, pay it/,/^Other/p' "$LOG" | sed '1d;$d')
as_told "$PSQL -XAt -c \"${PAY[0]:-}\"" >/dev/null || true
as_told "${PAY[1]:-}" >/dev/null 2>&1 || true
check "a bill paid as it says is PAID" \
	test "$(as_told "$PSQL -XAt -c \"${PAY[2]:-}\"")" = "order-2001|PAID"
# the tutorial, as docs/tutorial.md says: its SQL, in the database the
# demo names, gives the output the document shows
TUTORIAL_PSQL=$(after "The tutorial")
python3 "$PRIVATE/proj/test/check_tutorial.py" --sql "$PRIVATE/proj" >"$PRIVATE/tutorial.sql"
as_told "$TUTORIAL_PSQL -X -a -q <$PRIVATE/tutorial.sql" >"$PRIVATE/tutorial.out" 2>&1 || true
check "the tutorial, run as docs/tutorial.md says, shows what it shows" \
	python3 "$PRIVATE/proj/test/check_tutorial.py" --output "$PRIVATE/tutorial.out" "$PRIVATE/proj"
STOP=$(sed -n '/^the scratch directory:/,$p' "$LOG" | sed '1d')
check "its stop commands succeed" as_told "set -e; $STOP"
check "its stop commands leave nothing running" nothing_left_in "${WORK:-/nonexistent}"
check "its stop commands remove the scratch directory" test ! -e "${WORK:-/nonexistent}"
[ $status -eq 0 ] || cat "$LOG"

[ $failures -eq 0 ]
