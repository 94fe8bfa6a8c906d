#!/usr/bin/env bash
# A short demo of the main job against the local QIWI sandbox: create a
# bill, pay it in the sandbox, watch its status change, refund it, report
# with SQL.  Run as root on Debian 12, from any directory, in any locale; it
# installs what it needs, runs PostgreSQL and the sandbox as an unprivileged
# user in a scratch directory, and stops and removes them afterwards.
#   bash test/demo.sh          # the demo
#   bash test/demo.sh --keep   # the same, then leaves both running to explore,
#                              # with the database of docs/tutorial.md
source "$(dirname "$0")/lib.sh"

KEEP=0
case "${1:-}" in
	"") ;;
	--keep) KEEP=1 ;;
	*) echo "usage: bash test/demo.sh [--keep]" >&2; exit 2 ;;
esac

install_packages
build_and_install
make_workdir

SANDBOX_PORT=$(free_port)
start_sandbox "$SANDBOX_PORT"
SANDBOX_URL="http://127.0.0.1:$SANDBOX_PORT"
say "the QIWI in this demo is a local sandbox, not the real QIWI:"
say "no money moves and no account is needed"
say "sandbox: test/qiwi_sandbox.py, pid $SANDBOX_PID, $SANDBOX_URL"

say "starting a PostgreSQL cluster with qiwi_kassa"
start_cluster <<CONF
qiwi.api_url = '$SANDBOX_URL'
qiwi.secret_key = '$SANDBOX_SECRET'
qiwi.database = 'postgres'
CONF
say "PostgreSQL: pid $CLUSTER_PID, socket directory $PGHOST, port $PGPORT"

sql() { as_user psql -X -q -d postgres -v ON_ERROR_STOP=1 -e "$@"; }
pay_in_sandbox() {
	say "the buyer pays bill $1 (a control endpoint of the sandbox plays him)"
	curl -s -X POST "$SANDBOX_URL/sandbox/bills/$1/pay" >/dev/null
}

sql -c "CREATE EXTENSION qiwi_kassa"
say "a shop creates a bill for an order, in the order's own transaction"
sql <<'SQL'
CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL, bill_id text);
BEGIN;
INSERT INTO orders VALUES (1001, 1499.90, 'order-1001');
SELECT bill_id, amount, status, left(pay_url, 42) || '…' AS pay_url
  FROM qiwi_create_bill('order-1001', 1499.90, comment => 'Order 1001',
         email => 'buyer@example.com',
         success_url => 'https://shop.example/thanks?order=1001');
COMMIT;
SELECT bill_id, status FROM qiwi_bill_status('order-1001');
SQL
pay_in_sandbox order-1001
say "the shop asks QIWI again: the bill is PAID, and qiwi_bills says so"
sql <<'SQL'
SELECT bill_id, amount, status, status_changed_at IS NOT NULL AS changed
  FROM qiwi_bill_status('order-1001');
SELECT o.id, o.total, b.status FROM orders o JOIN qiwi_bills b USING (bill_id);
SQL
say "part of the order is returned: a refund, then the rest"
sql <<'SQL'
SELECT bill_id, refund_id, amount, status
  FROM qiwi_refund('order-1001', 'return-1', 499.90);
SELECT bill_id, refund_id, amount, status
  FROM qiwi_refund('order-1001', 'return-2', 1000.00);
SELECT b.bill_id, b.amount AS paid, sum(r.amount) AS refunded
  FROM qiwi_bills b JOIN qiwi_refunds r USING (bill_id) GROUP BY 1, 2;
SQL
say "a bill that is never paid is cancelled"
sql <<'SQL'
SELECT bill_id, status
  FROM qiwi_create_bill('order-1002', 10,
                        expires_at => now() + interval '1 hour');
SELECT bill_id, status FROM qiwi_cancel_bill('order-1002');
SELECT status, count(*), sum(amount)
  FROM qiwi_bills GROUP BY status ORDER BY status;
SQL
say "bad input never reaches QIWI: an amount with three decimals is refused,"
say "never rounded.  The ERROR below is EXPECTED:"
if sql -c "SELECT qiwi_create_bill('order-1003', 10.005)" 2>&1; then
	echo "that bill should have been refused" >&2
	exit 1
fi
say "(that error was the expected one)"

if [ $KEEP -eq 0 ]; then
	say "demo finished; the cluster and the sandbox are stopped and removed"
	say "to explore: bash test/demo.sh --keep (leaves both running and says how"
	say "to connect, pay a bill and stop them); docs/reference.md has every function"
	exit 0
fi

# --keep: the database of docs/tutorial.md, with its sandbox() helper
as_user psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE qiwi_tutorial"
as_user psql -X -q -d qiwi_tutorial -v ON_ERROR_STOP=1 -f "$QIWI_TREE/test/tutorial_setup.sql"

# --keep: nothing is stopped or removed on exit
trap - EXIT INT TERM
as_owner="" connect_as=""
if [ "$EUID" -eq 0 ]; then
	as_owner="runuser -u $QIWI_RUN_AS -- "
	connect_as=" -U $QIWI_RUN_AS"
fi
cat <<KEEP

The cluster and the sandbox are still running (--keep).
Connect (from any directory):
  psql -h $PGHOST -p $PGPORT$connect_as -d postgres
Create a bill, pay it in the sandbox, see it PAID:
  SELECT bill_id, status FROM qiwi_create_bill('order-2001', 100);
  curl -X POST $SANDBOX_URL/sandbox/bills/order-2001/pay
  SELECT bill_id, status FROM qiwi_bill_status('order-2001');
Other sandbox controls (reject, expire, faults, latency): test/qiwi_sandbox.py
The tutorial (docs/tutorial.md), in the database left for it:
  psql -h $PGHOST -p $PGPORT$connect_as -d qiwi_tutorial
Stop PostgreSQL (pid $CLUSTER_PID) and the sandbox (pid $SANDBOX_PID), remove
the scratch directory:
  (cd / && ${as_owner}\\
     $PG_BIN/pg_ctl -D $QIWI_WORK/data stop)
  kill $SANDBOX_PID
  rm -rf $QIWI_WORK
KEEP
