-- The Pull REST API 2.1 against the sandbox: merchants with Pull options,
-- every function, every refusal of an argument (nothing sent), result codes
-- and their SQLSTATEs, lost answers repeated safely, refunds within the bill.
SELECT sandbox('POST', '/sandbox/pull/reset');
SELECT sandbox('POST', '/sandbox/pull/projects',
               '{"prv_id": "2042", "api_id": "7001", "api_password": "pull-pass-a", "notification_password": "notify-a", "min_amount": "1.00"}')->>'prv_id' AS prv_a;
SELECT sandbox('POST', '/sandbox/pull/projects',
               '{"prv_id": "3053", "api_id": "7002", "api_password": "pull-pass-b", "currencies": ["RUB"]}')->>'prv_id' AS prv_b;

-- Pull API requests the sandbox has taken so far
CREATE FUNCTION pull_requests() RETURNS int LANGUAGE sql
AS $$ SELECT (sandbox('GET', '/sandbox/pull/stats')->>'requests')::int $$;
-- The sandbox's bills and refunds
CREATE FUNCTION pull_stats(what text) RETURNS int LANGUAGE sql
AS $$ SELECT (sandbox('GET', '/sandbox/pull/stats')->>what)::int $$;
-- A control call on a bill of project prv
CREATE FUNCTION pull_control(prv text, bill_id text, action text) RETURNS jsonb LANGUAGE sql
AS $$ SELECT sandbox('POST', format('/sandbox/pull/projects/%s/bills/%s/%s', prv, bill_id, action), '{}') $$;

-- ---------- merchants ----------

-- the options are validated, passwords only on the mapping
SELECT try($$CREATE SERVER pl_bad FOREIGN DATA WRAPPER qiwi OPTIONS (pull_api_password 'secret-pw')$$);
SELECT try($$CREATE SERVER pl_bad FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '20x2')$$);
SELECT try($$CREATE SERVER pl_bad FOREIGN DATA WRAPPER qiwi OPTIONS (pull_api_id 'a:b')$$);
SELECT try($$CREATE SERVER pl_bad FOREIGN DATA WRAPPER qiwi OPTIONS (pull_api_url 'ftp://x')$$);
DO $$ BEGIN
	EXECUTE format('CREATE SERVER pull_a FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id %L, pull_api_id %L, pull_api_url %L)',
	               '2042', '7001', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER pull_b FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id %L, pull_api_id %L, pull_api_url %L)',
	               '3053', '7002', current_setting('qiwi_test.sandbox_url'));
END $$;
SELECT try($$CREATE USER MAPPING FOR PUBLIC SERVER pull_a OPTIONS (pull_api_password E'k\nX: 1')$$);

-- without a password, or for the default merchant, nothing is sent
SELECT pull_requests() AS before \gset
SELECT try($$SELECT qiwi_pull_bill_status('b-1', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_bill_status('b-1')$$);
CREATE USER MAPPING FOR PUBLIC SERVER pull_a OPTIONS (pull_api_password 'pull-pass-a', pull_notification_password 'notify-a');
CREATE USER MAPPING FOR PUBLIC SERVER pull_b OPTIONS (pull_api_password 'pull-pass-b');

-- ---------- every argument refused before anything is sent ----------

SELECT try($$SELECT qiwi_pull_create_bill(NULL, '79161234567', 10.00, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('', '79161234567', 10.00, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b/1', '79161234567', 10.00, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill(repeat('b', 201), '79161234567', 10.00, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', NULL, 10.00, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '+79161234567', 10.00, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', NULL, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.001, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 0, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 1000000, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.00, NULL, now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.00, repeat('c', 256), now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.00, 'c', NULL, merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.00, 'c', now() - interval '1 minute', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.00, 'c', now() + interval '46 days', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.00, 'c', now() + interval '1 day', 'GBP', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.00, 'c', now() + interval '1 day', pay_source => 'card', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.00, 'c', now() + interval '1 day', prv_name => repeat('p', 101), merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 10.00, 'c', now() + interval '1 day', merchant => 'nobody')$$);
SELECT try($$SELECT qiwi_pull_bill_status(NULL, 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_cancel_bill('b 1', 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_refund('b-1', NULL, 1.00, 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_refund('b-1', '1234567890', 1.00, 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_refund('b-1', 'r-1', 1.00, 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_refund('b-1', 'r1', -1.00, 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_refund_status('b-1', '', 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_form_url('b-1', 'javascript:alert(1)', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_form_url('b-1', pay_source => 'cash', merchant => 'pull_a')$$);
SELECT pull_requests() - :before AS requests_sent;

-- ---------- bills ----------

SELECT * FROM qiwi_pull_create_bill('b-1', '79161234567', 10.00, 'Order 1', now() + interval '2 days',
                                    prv_name => 'Shop A', merchant => 'pull_a');
-- the same call again: the same bill, one at the sandbox
SELECT status, amount FROM qiwi_pull_create_bill('b-1', '79161234567', 10.00, 'Order 1', now() + interval '2 days', merchant => 'pull_a');
-- another amount under the same id: refused here, nothing sent
SELECT pull_requests() AS before \gset
SELECT try($$SELECT qiwi_pull_create_bill('b-1', '79161234567', 11.00, 'Order 1', now() + interval '2 days', merchant => 'pull_a')$$);
SELECT pull_requests() - :before AS requests_sent;
-- and at QIWI (215) when the tables do not have it: a reused id
DELETE FROM qiwi_pull_bills WHERE bill_id = 'b-1';
SELECT qiwi_pull_create_bill('b-1', '79161234567', 11.00, 'Order 1', now() + interval '2 days', merchant => 'pull_a');
SELECT * FROM qiwi_pull_bill_status('b-1', 'pull_a');

-- a create whose answer is lost is sent again: exactly one bill
SELECT pull_stats('bills') AS bills_before \gset
SELECT sandbox('POST', '/sandbox/faults', '{"api": "pull", "times": 1, "drop": "after", "bill": "b-lost"}') IS NOT NULL AS armed;
SELECT bill_id, status, amount FROM qiwi_pull_create_bill('b-lost', '79161234567', 20.00, 'Lost', now() + interval '1 day', merchant => 'pull_a');
SELECT pull_stats('bills') - :bills_before AS bills_made;

-- result codes: the class, the code in DETAIL; a temporary one is retried
SELECT sandbox('POST', '/sandbox/faults', '{"api": "pull", "times": 1, "result_code": 13}') IS NOT NULL AS armed;
SELECT status FROM qiwi_pull_bill_status('b-1', 'pull_a');
SELECT sandbox('POST', '/sandbox/faults', '{"api": "pull", "times": 1, "result_code": 774}') IS NOT NULL AS armed;
SELECT try($$SELECT qiwi_pull_bill_status('b-1', 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-small', '79161234567', 0.50, 'c', now() + interval '1 day', merchant => 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_create_bill('b-usd', '79161234567', 5.00, 'c', now() + interval '1 day', 'USD', merchant => 'pull_b')$$);
SELECT try($$SELECT qiwi_pull_bill_status('nope', 'pull_a')$$);
ALTER USER MAPPING FOR PUBLIC SERVER pull_b OPTIONS (SET pull_api_password 'wrong-pass');
SELECT try($$SELECT qiwi_pull_bill_status('b-1', 'pull_b')$$);
ALTER USER MAPPING FOR PUBLIC SERVER pull_b OPTIONS (SET pull_api_password 'pull-pass-b');

-- two merchants, the same bill id apart
SELECT bill_id, amount, currency, status FROM qiwi_pull_create_bill('b-1', '79161234567', 3.00, 'Other shop', now() + interval '1 day', merchant => 'pull_b');

-- cancel: a waiting bill is rejected; again, it stays so; a paid one is 1419
SELECT bill_id, status FROM qiwi_pull_create_bill('b-cancel', '79161234567', 5.00, 'c', now() + interval '1 day', merchant => 'pull_a');
SELECT bill_id, status FROM qiwi_pull_cancel_bill('b-cancel', 'pull_a');
SELECT bill_id, status FROM qiwi_pull_cancel_bill('b-cancel', 'pull_a');
SELECT pull_control('2042', 'b-1', 'pay') IS NOT NULL AS paid;
SELECT try($$SELECT qiwi_pull_cancel_bill('b-1', 'pull_a')$$);
SELECT bill_id, status, origin_amount, origin_currency FROM qiwi_pull_bill_status('b-1', 'pull_a');

-- ---------- refunds ----------

-- not paid: refused before sending; more than the bill: refused
SELECT pull_requests() AS before \gset
SELECT try($$SELECT qiwi_pull_refund('b-lost', 'r1', 1.00, 'pull_a')$$);
SELECT try($$SELECT qiwi_pull_refund('b-1', 'r1', 10.01, 'pull_a')$$);
SELECT pull_requests() - :before AS requests_sent;
SELECT * FROM qiwi_pull_refund('b-1', 'r1', 4.00, 'pull_a');
-- a refund whose answer is lost is sent again: exactly one refund
SELECT pull_stats('refunds') AS refunds_before \gset
SELECT sandbox('POST', '/sandbox/faults', '{"api": "pull", "times": 1, "drop": "after", "bill": "b-1"}') IS NOT NULL AS armed;
SELECT refund_id, amount, status FROM qiwi_pull_refund('b-1', 'r2', 5.00, 'pull_a');
SELECT pull_stats('refunds') - :refunds_before AS refunds_made;
-- what is left: 1.00
SELECT try($$SELECT qiwi_pull_refund('b-1', 'r3', 1.01, 'pull_a')$$);
SELECT pull_control('2042', 'b-1', 'refunds/r1/complete') IS NOT NULL AS completed;
SELECT * FROM qiwi_pull_refund_status('b-1', 'r1', 'pull_a');
SELECT try($$SELECT qiwi_pull_refund_status('b-1', 'r9', 'pull_a')$$);
SELECT merchant, bill_id, refund_id, amount, currency, status FROM qiwi_pull_refunds ORDER BY 1, 2, 3;

-- ---------- the form ----------

SELECT qiwi_pull_form_url('b-1.x', 'https://shop.example/ok?a=1&b=2', 'https://shop.example/fail', 'mobile', 'pull_a');
SELECT qiwi_pull_form_url('b-1', merchant => 'pull_b');

-- ---------- over HTTPS, TLS verified ----------

SELECT sandbox('POST', '/sandbox/pull/projects',
               '{"prv_id": "3053", "api_id": "7002", "api_password": "pull-pass-b"}',
               current_setting('qiwi_test.https_url'))->>'prv_id' AS prv_b_tls;
DO $$ BEGIN
	EXECUTE format('ALTER SERVER pull_b OPTIONS (SET pull_api_url %L)', current_setting('qiwi_test.https_url'));
END $$;
SELECT set_config('qiwi.ca_file', current_setting('qiwi_test.ca_file'), false) IS NOT NULL AS ca_set;
SELECT bill_id, status FROM qiwi_pull_create_bill('b-tls', '79161234567', 2.00, 'TLS', now() + interval '1 day', merchant => 'pull_b');
RESET qiwi.ca_file;

-- ---------- the books ----------

SELECT merchant, bill_id, amount, currency, status, qiwi_user, comment, error FROM qiwi_pull_bills ORDER BY 1, 2;
SELECT merchant, object, object_id, old_status, new_status, source FROM qiwi_pull_events ORDER BY id;

DROP FUNCTION pull_requests(), pull_stats(text), pull_control(text, text, text);

-- ---------- the reports, across every API ----------

-- one query over Bill Payments, Payin and Pull: a Bill Payments bill of the
-- default merchant, and merchant pull_a with a Payin site too
SELECT status FROM qiwi_create_bill('pull-span-1', 3.00);
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "span-site", "apiKey": "span-payin-key", "notificationKey": "span-notify"}')->>'siteId' AS span_site;
DO $$ BEGIN
	EXECUTE format('ALTER SERVER pull_a OPTIONS (ADD payin_site_id %L, ADD payin_api_url %L)',
	               'span-site', current_setting('qiwi_test.sandbox_url'));
END $$;
ALTER USER MAPPING FOR PUBLIC SERVER pull_a OPTIONS (ADD payin_api_key 'span-payin-key');
SELECT status FROM qiwi_payin_create_invoice('span-1', 2.00, merchant => 'pull_a');
SELECT api, count(*) > 0 AS listed FROM qiwi_money_by_status
 WHERE merchant IN ('default', 'pull_a') GROUP BY api ORDER BY api;
SELECT merchant, status, currency, items, amount, received FROM qiwi_money_by_status
 WHERE api = 'pull' ORDER BY merchant, status;
SELECT pull_open_items >= 3 AS pull_followed FROM qiwi_reconciler_health;

-- ---------- over HTTPS, verified: every call ----------

-- merchant pull_b's pull_api_url is the HTTPS sandbox since the section above
CREATE FUNCTION pull_tls(method text, path text) RETURNS jsonb LANGUAGE sql
AS $$ SELECT sandbox(method, path, CASE method WHEN 'POST' THEN '{}' END, current_setting('qiwi_test.https_url')) $$;
-- an untrusted certificate (no qiwi.ca_file): refused, nothing is sent
SELECT (pull_tls('GET', '/sandbox/pull/stats')->>'requests')::int AS before \gset
SELECT try($$SELECT qiwi_pull_bill_status('b-tls', 'pull_b')$$, false);
SELECT try($$SELECT qiwi_pull_create_bill('b-tls-untrusted', '79161234567', 1.00, 'TLS', now() + interval '1 day', merchant => 'pull_b')$$, false);
SELECT (pull_tls('GET', '/sandbox/pull/stats')->>'requests')::int - :before AS requests_sent;
SELECT set_config('qiwi.ca_file', current_setting('qiwi_test.ca_file'), false) IS NOT NULL AS ca_set;
SELECT bill_id, amount, currency, status FROM qiwi_pull_bill_status('b-tls', 'pull_b');
SELECT pull_tls('POST', '/sandbox/pull/projects/3053/bills/b-tls/pay') IS NOT NULL AS paid;
SELECT bill_id, status FROM qiwi_pull_bill_status('b-tls', 'pull_b');
SELECT bill_id, refund_id, amount, status FROM qiwi_pull_refund('b-tls', 'r1', 1.50, 'pull_b');
SELECT pull_tls('POST', '/sandbox/pull/projects/3053/bills/b-tls/refunds/r1/complete') IS NOT NULL AS completed;
SELECT bill_id, refund_id, amount, status FROM qiwi_pull_refund_status('b-tls', 'r1', 'pull_b');
SELECT bill_id, status FROM qiwi_pull_create_bill('b-tls-cancel', '79161234567', 3.00, 'TLS', now() + interval '1 day', merchant => 'pull_b');
SELECT bill_id, status FROM qiwi_pull_cancel_bill('b-tls-cancel', 'pull_b');
-- the HTTPS sandbox took them all: 2 bills, 1 refund
SELECT stats->'bills' AS bills, stats->'refunds' AS refunds FROM pull_tls('GET', '/sandbox/pull/stats') stats;
SELECT bill_id, amount, status FROM qiwi_pull_bills WHERE merchant = 'pull_b' AND bill_id LIKE 'b-tls%' ORDER BY 1;
SELECT bill_id, refund_id, amount, status FROM qiwi_pull_refunds WHERE merchant = 'pull_b' ORDER BY 1, 2;
RESET qiwi.ca_file;
DROP FUNCTION pull_tls(text, text);
