# Shared by test/demo.sh and test/run-tests.sh: packages, build, sandbox, TLS.
# Sourced, not run.  Works as root on a bare Debian 12 (it installs what it
# needs); PostgreSQL and the sandbox run as an unprivileged user, from a copy
# of the files they read in a scratch directory (the checkout may be private,
# e.g. under /root), and everything started is stopped on exit or interrupt.

set -euo pipefail

# The expected outputs are UTF-8: every cluster, psql, perl and python runs in
# C.UTF-8 (shipped with libc on Debian 12) whatever the caller's locale.
# LANG too: PostgreSQL's TAP modules delete LC_ALL and leave LANG.
unset LANGUAGE LC_CTYPE LC_NUMERIC LC_TIME LC_COLLATE LC_MONETARY LC_MESSAGES \
	LC_PAPER LC_NAME LC_ADDRESS LC_TELEPHONE LC_MEASUREMENT LC_IDENTIFICATION
export LANG=C.UTF-8 LC_ALL=C.UTF-8

QIWI_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=/usr/bin/pg_config
QIWI_RUN_AS=${QIWI_RUN_AS:-postgres}
SANDBOX_SECRET=${SANDBOX_SECRET:-sandbox-secret-key-$(date +%s)}
QIWI_PACKAGES=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-contrib
	libcurl4-openssl-dev libssl-dev python3 curl openssl make gcc perl libipc-run-perl
	ca-certificates util-linux findutils mawk python3-yaml)

# Print a progress line
say() { printf '==> %s\n' "$*" >&2; }

# Install the Debian packages that are missing (root only)
install_packages() {
	local missing=()
	for p in "${QIWI_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$EUID" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
		return 1
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Build with -Werror and install into the PostgreSQL installation; with
# QIWI_PGROOT=DIR into a private copy of PostgreSQL under DIR (made on first
# use), so that several checkouts can be tested side by side
build_and_install() {
	local destdir=
	if [ -n "${QIWI_PGROOT:-}" ]; then
		if [ ! -x "$QIWI_PGROOT/usr/lib/postgresql/$PG_MAJOR/bin/postgres" ]; then
			mkdir -p "$QIWI_PGROOT/usr/lib/postgresql" "$QIWI_PGROOT/usr/share/postgresql"
			cp -a "/usr/lib/postgresql/$PG_MAJOR" "$QIWI_PGROOT/usr/lib/postgresql/"
			cp -a "/usr/share/postgresql/$PG_MAJOR" "$QIWI_PGROOT/usr/share/postgresql/"
			chmod 755 "$QIWI_PGROOT"
		fi
		# and what packages added to PostgreSQL since (pg_auto_failover's
		# monitor extension); nothing already there is replaced
		cp -an "/usr/lib/postgresql/$PG_MAJOR/." "$QIWI_PGROOT/usr/lib/postgresql/$PG_MAJOR/"
		cp -an "/usr/share/postgresql/$PG_MAJOR/." "$QIWI_PGROOT/usr/share/postgresql/$PG_MAJOR/"
		# PostgreSQL finds its libraries and extensions relative to its binaries
		PG_BIN=$QIWI_PGROOT/usr/lib/postgresql/$PG_MAJOR/bin
		destdir=$QIWI_PGROOT
	fi
	say "building qiwi_kassa${destdir:+ into $destdir}"
	# with_llvm=no: JIT bitcode is optional and would need clang
	make -s -C "$QIWI_SRC" PG_CONFIG=$PG_CONFIG with_llvm=no >/dev/null
	make -s -C "$QIWI_SRC" PG_CONFIG=$PG_CONFIG with_llvm=no install ${destdir:+DESTDIR="$destdir"} >/dev/null
}

# Build and install the test module that the core's TAP tests load
# (test/modules/qiwi_core_test); the package never carries it
build_and_install_test_module() {
	local dir=$QIWI_SRC/test/modules/qiwi_core_test
	make -s -C "$dir" PG_CONFIG=$PG_CONFIG with_llvm=no >/dev/null
	make -s -C "$dir" PG_CONFIG=$PG_CONFIG with_llvm=no install \
		${QIWI_PGROOT:+DESTDIR="$QIWI_PGROOT"} >/dev/null
}

# Run a command as the unprivileged user (PostgreSQL refuses root)
as_user() {
	if [ "$EUID" -eq 0 ]; then
		runuser -u "$QIWI_RUN_AS" -- env PATH="$PG_BIN:$PATH" "$@"
	else
		env PATH="$PG_BIN:$PATH" "$@"
	fi
}

# Start a long-running command in the background as the unprivileged user,
# output to a log file; the PID recorded in QIWI_PIDS for cleanup is the
# command's own (setpriv and env exec it, nothing waits in between)
start_bg() {	# start_bg LOG COMMAND...
	local log=$1; shift
	if [ "$EUID" -eq 0 ]; then
		setpriv --reuid="$QIWI_RUN_AS" --regid="$QIWI_RUN_AS" --init-groups -- \
			env PATH="$PG_BIN:$PATH" HOME="$QIWI_WORK" "$@" >"$log" 2>&1 &
	else
		env PATH="$PG_BIN:$PATH" "$@" >"$log" 2>&1 &
	fi
	QIWI_PIDS+=($!)
	BG_PID=$!
}

# start_lane FUNCTION ARGS...: run a shell function in the background in a
# process group of its own (its id is the lane's PID), which cleanup stops
# whole, the tests it started included
start_lane() {
	set -m
	"$@" &
	set +m
	QIWI_LANES+=($!)
}

# Wait until every lane has ended
wait_lanes() {
	local pid
	for pid in "${QIWI_LANES[@]}"; do
		wait "$pid" || true
	done
	QIWI_LANES=()
}

# A scratch directory the unprivileged user owns, holding a copy of what it
# reads (QIWI_TREE); everything started is stopped and the directory removed
# on exit, Ctrl-C or SIGTERM.  The script continues from inside it.
make_workdir() {
	QIWI_WORK=$(mktemp -d /tmp/qiwi_kassa.XXXXXX)
	QIWI_PIDS=()
	QIWI_LANES=()
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	chmod 755 "$QIWI_WORK"
	if [ "$EUID" -eq 0 ]; then
		chown "$QIWI_RUN_AS" "$QIWI_WORK"
	fi
	QIWI_TREE=$QIWI_WORK/tree
	mkdir "$QIWI_TREE"
	cp -R "$QIWI_SRC/sql" "$QIWI_SRC/expected" "$QIWI_SRC/test" "$QIWI_SRC/bench" "$QIWI_SRC/monitoring" "$QIWI_TREE/"
	chmod -R a+rX,go-w "$QIWI_TREE"
	cd "$QIWI_WORK"
	say "scratch directory $QIWI_WORK"
}

# Stop every lane's process group (QIWI_LANES), every cluster under the
# scratch directory (pg_ctl) and every process in QIWI_PIDS (by PID), then
# remove the directory
cleanup() {
	local pidfile pid
	trap '' INT TERM
	# (the processes are stopped even if the directory went meanwhile)
	[ -n "${QIWI_WORK:-}" ] || return 0
	for pid in "${QIWI_LANES[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null || true
	done
	for pid in "${QIWI_LANES[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	while IFS= read -r -d '' pidfile; do
		as_user pg_ctl -D "${pidfile%/postmaster.pid}" -m fast -t 300 -w stop >/dev/null 2>&1 || true
	done < <(find "$QIWI_WORK" -name postmaster.pid -print0 2>/dev/null)
	for pid in "${QIWI_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${QIWI_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	[ -n "${QIWI_KEEP_WORK:-}" ] || rm -rf "$QIWI_WORK"
}

# A TCP port nobody listens on right now
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A throwaway CA and a server certificate for "localhost" only (no IP SAN)
make_tls_material() {
	local d=$QIWI_WORK/tls
	bash "$QIWI_SRC/test/make-tls.sh" "$d" localhost
	if [ "$EUID" -eq 0 ]; then
		chown -R "$QIWI_RUN_AS" "$d"
	fi
	chmod 755 "$d"
	chmod 644 "$d"/*.pem
	TLS_DIR=$d
}

# Start a sandbox on a port (extra args: --tls-cert/--tls-key); wait until
# it answers.  Sets SANDBOX_PID.
start_sandbox() {
	local port=$1; shift
	local scheme=http
	[ $# -gt 0 ] && scheme=https
	start_bg "$QIWI_WORK/sandbox-$port.log" /usr/bin/python3 "$QIWI_TREE/test/qiwi_sandbox.py" \
		--port "$port" --secret "$SANDBOX_SECRET" "$@"
	SANDBOX_PID=$BG_PID
	for _ in $(seq 1 100); do
		if curl -s -o /dev/null ${TLS_DIR:+--cacert "$TLS_DIR/ca.pem"} \
			"$scheme://localhost:$port/sandbox/stats"; then
			return 0
		fi
		sleep 0.1
	done
	echo "sandbox on port $port did not start:" >&2
	cat "$QIWI_WORK/sandbox-$port.log" >&2
	return 1
}

# The HTTP and the HTTPS sandbox the tests use
start_test_sandboxes() {
	make_tls_material
	HTTP_PORT=$(free_port)
	start_sandbox "$HTTP_PORT"
	HTTPS_PORT=$(free_port)
	start_sandbox "$HTTPS_PORT" --tls-cert "$TLS_DIR/server.pem" --tls-key "$TLS_DIR/server.key"
}

# Server settings for the test suite: the extension, the sandboxes, verbose logs
write_server_conf() {
	as_user tee "$1" >/dev/null <<CONF
shared_preload_libraries = 'qiwi_kassa'
qiwi.api_url = 'http://127.0.0.1:$HTTP_PORT'
qiwi.secret_key = '$SANDBOX_SECRET'
qiwi.timeout = 5000
qiwi.database = 'postgres'
qiwi_test.sandbox_url = 'http://127.0.0.1:$HTTP_PORT'
qiwi_test.https_url = 'https://localhost:$HTTPS_PORT'
qiwi_test.https_wrong_host_url = 'https://127.0.0.1:$HTTPS_PORT'
qiwi_test.ca_file = '$TLS_DIR/ca.pem'
qiwi_test.unused_url = 'http://127.0.0.1:$(free_port)'
log_min_messages = debug5
log_min_error_statement = debug5
log_error_verbosity = verbose
CONF
}

# pg_regress of this PostgreSQL, and the regression tests the Makefile lists
PGXS_DIR=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs
PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
regress_tests() {
	make -s -C "$QIWI_SRC" PG_CONFIG=$PG_CONFIG regress-list
}

# Start a scratch cluster (UTF-8) in $QIWI_WORK/data with qiwi_kassa
# preloaded; the settings on standard input are added to postgresql.conf.
# Sets PGHOST, PGPORT and CLUSTER_PID; cleanup stops it.
start_cluster() {
	PGPORT=$(free_port)
	export PGPORT PGHOST=$QIWI_WORK
	as_user initdb -D "$QIWI_WORK/data" --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
	{
		printf "listen_addresses = ''\nunix_socket_directories = '%s'\nport = %s\n" "$QIWI_WORK" "$PGPORT"
		printf "shared_preload_libraries = 'qiwi_kassa'\n"
		cat
	} | as_user tee -a "$QIWI_WORK/data/postgresql.conf" >/dev/null
	as_user pg_ctl -D "$QIWI_WORK/data" -l "$QIWI_WORK/postgres.log" -w start >/dev/null
	read -r CLUSTER_PID <"$QIWI_WORK/data/postmaster.pid"
}
