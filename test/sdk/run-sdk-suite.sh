#!/usr/bin/env bash
# Runs the official QIWI Node SDK's own test suite
# (@qiwi/bill-payments-node-js-sdk 3.2.1, test/QiwiBillPaymentsAPI.spec.js as
# published, with its config file filled in as config.sample.js says) against
# the sandbox, served as https://api.qiwi.com through a throwaway CA.
#
# Run as root on Debian 12 (it installs nodejs, npm and the tools it needs
# when missing); needs the npm registry.  The sandbox runs as $QIWI_RUN_AS
# (default postgres, else nobody); npm downloads are cached in the scratch
# directory, or in $QIWI_NPM_CACHE when set.  Prints the suite's result and
# exits non-zero when it fails.
set -euo pipefail

SDK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QIWI_SRC=$(cd "$SDK_DIR/../.." && pwd)
SDK_PACKAGE=@qiwi/bill-payments-node-js-sdk
SDK_TESTS=8	# the number of tests in the 3.2.1 spec: none may go missing

# Print a progress line
say() { printf '==> %s\n' "$*" >&2; }

WORK=
SANDBOX_PID=
CHILD_PID=

# Stop what this script started, by PID, and remove the scratch directory
cleanup() {
	for pid in "$CHILD_PID" "$SANDBOX_PID"; do
		[ -n "$pid" ] || continue
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$WORK" ]; then
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a command in a directory, its output to a file, in the background and
# wait for it, so a signal to this script is handled at once and cleanup can
# stop the command: run DIR OUTPUT COMMAND...
run() {
	local dir=$1 out=$2 rc=0
	shift 2
	(cd "$dir" && exec "$@") >"$out" 2>&1 &
	CHILD_PID=$!
	wait "$CHILD_PID" || rc=$?
	CHILD_PID=
	return "$rc"
}

# Install Debian packages (root only): apt_install PACKAGE...
apt_install() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: $* (run as root, or install them)" >&2
		return 1
	fi
	say "installing $*"
	export DEBIAN_FRONTEND=noninteractive
	if ! run / "$WORK/apt.log" apt-get update -qq ||
		! run / "$WORK/apt.log" apt-get install -y -qq --no-install-recommends "$@"; then
		cat "$WORK/apt.log" >&2
		return 1
	fi
}

# Install the Debian packages whose commands are missing; npm only after
# nodejs, since some builds of nodejs bring npm with them
install_packages() {
	local missing=()
	command -v node >/dev/null || missing+=(nodejs)
	command -v python3 >/dev/null || missing+=(python3)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v curl >/dev/null || missing+=(curl)
	[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
	[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
	command -v npm >/dev/null || apt_install npm
}

# A throwaway CA and a certificate for api.qiwi.com signed by it, in $WORK/tls
make_tls_material() {
	bash "$QIWI_SRC/test/make-tls.sh" "$WORK/tls" api.qiwi.com
}

# Start the sandbox with TLS on a free loopback port, as an unprivileged user;
# sets SANDBOX_PORT and SANDBOX_PID and waits until it answers
start_sandbox() {
	local runner=()
	# a copy: the source tree may be in a home the unprivileged user can't read
	install -m 644 "$QIWI_SRC/test/qiwi_sandbox.py" "$WORK/qiwi_sandbox.py"
	install -m 644 "$QIWI_SRC/test/pull_sandbox.py" "$WORK/pull_sandbox.py"
	install -m 644 "$QIWI_SRC/test/wallet_sandbox.py" "$WORK/wallet_sandbox.py"
	if [ "$(id -u)" -eq 0 ]; then
		local user=${QIWI_RUN_AS:-postgres}
		id -u "$user" >/dev/null 2>&1 || user=nobody
		chown "$user" "$WORK/tls/server.key"
		runner=(runuser -u "$user" --)
	fi
	SANDBOX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	"${runner[@]}" /usr/bin/python3 "$WORK/qiwi_sandbox.py" --host 127.0.0.1 --port "$SANDBOX_PORT" \
		--secret "$SANDBOX_SECRET" --tls-cert "$WORK/tls/server.pem" \
		--tls-key "$WORK/tls/server.key" >"$WORK/sandbox.log" 2>&1 &
	SANDBOX_PID=$!
	for _ in $(seq 1 100); do
		if curl -s -o /dev/null --cacert "$WORK/tls/ca.pem" \
			--resolve "api.qiwi.com:$SANDBOX_PORT:127.0.0.1" \
			"https://api.qiwi.com:$SANDBOX_PORT/sandbox/stats"; then
			return 0
		fi
		kill -0 "$SANDBOX_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "the sandbox did not start:" >&2
	cat "$WORK/sandbox.log" >&2
	return 1
}

WORK=$(mktemp -d /tmp/qiwi_kassa-sdk.XXXXXX)
chmod 755 "$WORK"
install_packages
SANDBOX_SECRET=sdk-suite-$(openssl rand -hex 16)

make_tls_material
start_sandbox
say "sandbox serving https://api.qiwi.com on 127.0.0.1:$SANDBOX_PORT"

# The SDK and the suite's tools at the versions package-lock.json pins
say "installing $SDK_PACKAGE, mocha and chai from npm (npm ci)"
mkdir "$WORK/sdk"
cp "$SDK_DIR/package.json" "$SDK_DIR/package-lock.json" "$SDK_DIR/route-to-sandbox.js" "$WORK/sdk/"
export npm_config_cache=${QIWI_NPM_CACHE:-$WORK/npm-cache}
run "$WORK/sdk" "$WORK/npm.log" npm ci --ignore-scripts --no-audit --no-fund --loglevel=error || {
	cat "$WORK/npm.log" >&2
	exit 1
}
PKG=$WORK/sdk/node_modules/$SDK_PACKAGE
if [ ! -f "$PKG/test/QiwiBillPaymentsAPI.spec.js" ] || [ ! -f "$PKG/test/config.sample.js" ]; then
	echo "$SDK_PACKAGE does not ship test/QiwiBillPaymentsAPI.spec.js and test/config.sample.js" >&2
	exit 1
fi

# test/config.js as a user makes it from config.sample.js: the keys are the
# sandbox's; the bill and refund ids stay as the sample has them
sed -e "s/enter your merchant public key/$SANDBOX_SECRET/" \
	-e "s/enter your merchant secret key/$SANDBOX_SECRET/" \
	"$PKG/test/config.sample.js" >"$PKG/test/config.js"
if [ "$(grep -c "$SANDBOX_SECRET" "$PKG/test/config.js")" -ne 2 ]; then
	echo "config.sample.js has changed shape; cannot fill in test/config.js" >&2
	exit 1
fi

# The package's own "npm test", its HTTPS routed to the sandbox; proxies unset
# because the SDK's HTTP client would send api.qiwi.com to them
say "running the SDK's npm test"
status=0
run "$PKG" "$WORK/suite.out" env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy \
	-u ALL_PROXY -u all_proxy \
	NODE_EXTRA_CA_CERTS="$WORK/tls/ca.pem" QIWI_SANDBOX_PORT="$SANDBOX_PORT" \
	NODE_OPTIONS="--require $WORK/sdk/route-to-sandbox.js" \
	npm test || status=$?
cat "$WORK/suite.out"

passing=$(sed -n 's/^ *\([0-9][0-9]*\) passing.*/\1/p' "$WORK/suite.out")
failing=$(sed -n 's/^ *\([0-9][0-9]*\) failing.*/\1/p' "$WORK/suite.out")
passing=${passing:-0}
failing=${failing:-0}
if [ "$status" -eq 0 ] && [ "$failing" -eq 0 ] && [ "$passing" -ne "$SDK_TESTS" ]; then
	echo "expected $SDK_TESTS tests, $passing ran" >&2
	status=1
fi
if [ "$status" -ne 0 ]; then
	echo "sandbox log:" >&2
	cat "$WORK/sandbox.log" >&2
	[ "$failing" -gt 0 ] || failing=$((passing < SDK_TESTS ? SDK_TESTS - passing : 1))
fi
echo "sdk: $passing passed, $failing failed"
exit "$status"
