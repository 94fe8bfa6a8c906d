#!/usr/bin/env bash
# A short demo of the main job against the sandbox: create a bill, pay it
# in the sandbox, watch its status change, refund it, report with SQL.
# Run as root on Debian 12; it installs what it needs, runs PostgreSQL as
# an unprivileged user in a scratch directory and removes it afterwards.
source "$(dirname "$0")/lib.sh"

install_packages
build_and_install
make_workdir

SANDBOX_PORT=$(free_port)
start_sandbox "$SANDBOX_PORT"
SANDBOX_URL="http://127.0.0.1:$SANDBOX_PORT"

say "starting a PostgreSQL cluster with qiwi_kassa"
start_cluster <<CONF
qiwi.api_url = '$SANDBOX_URL'
qiwi.secret_key = '$SANDBOX_SECRET'
CONF

sql() { as_user psql -X -q -d postgres -v ON_ERROR_STOP=1 -e "$@"; }
pay_in_sandbox() {
	say "the buyer pays bill $1 (in the sandbox)"
	curl -s -X POST "$SANDBOX_URL/sandbox/bills/$1/pay" >/dev/null
}

sql -c "CREATE EXTENSION qiwi_kassa"
say "a shop creates a bill for an order, in the order's own transaction"
sql <<'SQL'
CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL, bill_id text);
BEGIN;
INSERT INTO orders VALUES (1001, 1499.90, 'order-1001');
SELECT bill_id, amount, currency, status, pay_url
  FROM qiwi_create_bill('order-1001', 1499.90, comment => 'Order 1001',
                        email => 'buyer@example.com',
                        success_url => 'https://shop.example/thanks?order=1001');
COMMIT;
SELECT bill_id, status FROM qiwi_bill_status('order-1001');
SQL
pay_in_sandbox order-1001
say "the shop asks QIWI again: the bill is PAID, and qiwi_bills says so"
sql <<'SQL'
SELECT bill_id, amount, status, status_changed_at IS NOT NULL AS changed FROM qiwi_bill_status('order-1001');
SELECT o.id, o.total, b.status FROM orders o JOIN qiwi_bills b USING (bill_id);
SQL
say "part of the order is returned: a refund, then the rest"
sql <<'SQL'
SELECT bill_id, refund_id, amount, status FROM qiwi_refund('order-1001', 'return-1', 499.90);
SELECT bill_id, refund_id, amount, status FROM qiwi_refund('order-1001', 'return-2', 1000.00);
SELECT b.bill_id, b.amount AS paid, sum(r.amount) AS refunded
  FROM qiwi_bills b JOIN qiwi_refunds r USING (bill_id) GROUP BY 1, 2;
SQL
say "a bill that is never paid is cancelled; bad input never reaches QIWI"
sql <<'SQL'
SELECT bill_id, status FROM qiwi_create_bill('order-1002', 10, expires_at => now() + interval '1 hour');
SELECT bill_id, status FROM qiwi_cancel_bill('order-1002');
SELECT status, count(*), sum(amount) FROM qiwi_bills GROUP BY status ORDER BY status;
SQL
sql -c "SELECT qiwi_create_bill('order-1003', 10.005)" || true
say "demo finished"
