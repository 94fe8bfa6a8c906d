-- The life cycle of bills against the sandbox, and their bookkeeping.
SET TIME ZONE 'UTC';
SELECT sandbox('POST', '/sandbox/reset');

-- Create: the row QIWI answers with, recorded in qiwi_bills
SELECT bill_id, site_id, amount, currency, status, comment, customer, custom_fields,
       pay_url LIKE 'https://oplata.qiwi.com/form/?invoice_uid=%' AS has_pay_url,
       expires_at BETWEEN now() + interval '45 days' - interval '2 seconds'
                      AND now() + interval '45 days' AS default_expiry,
       created_at IS NOT NULL AS has_created_at
  FROM qiwi_create_bill('order-1', 100.5, comment => 'Заказ №1 "тест"',
                        phone => '79123456789', email => 'buyer@example.com',
                        account => 'user-42', custom_fields => '{"themeCode": "shop-1", "city": "Москва"}');
SELECT bill_id, amount, currency, status, checked_at IS NOT NULL AS checked
  FROM qiwi_bills WHERE bill_id = 'order-1';

-- The same call again is idempotent: the same bill, not a second one
SELECT bill_id, amount, status FROM qiwi_create_bill('order-1', 100.50, comment => 'Заказ №1 "тест"');
SELECT (sandbox('GET', '/sandbox/stats')->>'bills')::int AS bills_at_sandbox;

-- The same id for another amount is refused
SELECT try($$SELECT qiwi_create_bill('order-1', 7)$$);

-- QIWI answering a repeated id with its existing, different bill is caught too
SELECT sandbox('POST', '/sandbox/faults', jsonb_build_object('status', 200, 'body',
  '{"siteId":"270305","billId":"order-9","amount":{"currency":"RUB","value":"5.00"},"status":{"value":"WAITING"}}')::text);
SELECT try($$SELECT qiwi_create_bill('order-9', 10)$$);
SELECT count(*) AS recorded FROM qiwi_bills WHERE bill_id = 'order-9';

-- Status: WAITING until the buyer pays in the sandbox, then PAID
SELECT status FROM qiwi_bill_status('order-1');
SELECT sandbox('POST', '/sandbox/bills/order-1/pay')->'status'->>'value' AS paid_at_sandbox;
SELECT status, amount FROM qiwi_bill_status('order-1');
SELECT status, status_changed_at IS NOT NULL AS changed FROM qiwi_bills WHERE bill_id = 'order-1';

-- A paid bill cannot be cancelled
SELECT try($$SELECT qiwi_cancel_bill('order-1')$$);

-- Cancel a waiting bill; cancelling it again returns it (cancel is idempotent)
SELECT status FROM qiwi_create_bill('order-2', 1, expires_at => now() + interval '1 hour');
SELECT status FROM qiwi_cancel_bill('order-2');
SELECT status FROM qiwi_bills WHERE bill_id = 'order-2';
SELECT status FROM qiwi_cancel_bill('order-2');

-- Expiry
SELECT status FROM qiwi_create_bill('order-3', 999999.99, 'RUB', now() + interval '10 minutes');
SELECT sandbox('POST', '/sandbox/bills/order-3/expire')->'status'->>'value' AS expired_at_sandbox;
SELECT bill_id, amount, status FROM qiwi_bill_status('order-3');

-- A bill never seen by this database is recorded when asked about
SELECT sandbox('POST', '/sandbox/faults', jsonb_build_object('status', 200, 'body',
  '{"siteId":"270305","billId":"from-elsewhere","amount":{"currency":"RUB","value":"3.00"},"status":{"value":"WAITING"}}')::text);
SELECT status FROM qiwi_bill_status('from-elsewhere');
SELECT bill_id, amount, status FROM qiwi_bills WHERE bill_id = 'from-elsewhere';

-- A row only moves forward: a stale WAITING answer does not undo PAID,
-- while the function still returns what QIWI said
SELECT sandbox('POST', '/sandbox/faults', jsonb_build_object('status', 200, 'body',
  '{"siteId":"270305","billId":"order-1","amount":{"currency":"RUB","value":"100.50"},"status":{"value":"WAITING"}}')::text);
SELECT status AS qiwi_said FROM qiwi_bill_status('order-1');
SELECT status AS recorded FROM qiwi_bills WHERE bill_id = 'order-1';
-- nor does another final status replace it
SELECT sandbox('POST', '/sandbox/faults', jsonb_build_object('status', 200, 'body',
  '{"siteId":"270305","billId":"order-1","amount":{"currency":"RUB","value":"100.50"},"status":{"value":"REJECTED"}}')::text);
SELECT status AS qiwi_said FROM qiwi_bill_status('order-1');
SELECT status AS recorded FROM qiwi_bills WHERE bill_id = 'order-1';

-- Unknown bill
SELECT try($$SELECT qiwi_bill_status('no-such-bill')$$);
SELECT try($$SELECT qiwi_cancel_bill('no-such-bill')$$);

-- successUrl is appended to the payUrl, URL-encoded
SELECT pay_url ~ '^https://oplata\.qiwi\.com/form/\?invoice_uid=[0-9a-f-]+&successUrl=https%3a%2f%2fshop\.example%2fdone%3forder%3d4%26x%3d%d0%b6$' AS success_url_appended
  FROM qiwi_create_bill('order-4', 10, success_url => 'https://shop.example/done?order=4&x=ж');
SELECT pay_url NOT LIKE '%successUrl%' AS stored_pay_url_is_qiwis FROM qiwi_bills WHERE bill_id = 'order-4';

-- Everything happens in the caller's transaction: a rollback forgets the row
BEGIN;
SELECT status FROM qiwi_create_bill('order-rolled-back', 10);
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM qiwi_bills WHERE bill_id = 'order-rolled-back';

-- Reports are plain SQL
SELECT status, count(*), sum(amount) FROM qiwi_bills
 WHERE bill_id LIKE 'order-%' GROUP BY status ORDER BY status;

-- One connection serves a loop of 1,000 calls (keep-alive): this backend
-- opened at most one more connection than before the loop
SELECT (sandbox('GET', '/sandbox/stats')->>'connections')::int AS conns_before \gset
SELECT count(*) FROM generate_series(1, 1000) i, qiwi_bill_status('order-' || (i % 4 + 1)) b;
SELECT (sandbox('GET', '/sandbox/stats')->>'connections')::int - :conns_before <= 1 AS one_connection;
