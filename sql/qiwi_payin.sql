-- The Payin API end to end against the sandbox: merchants with Payin
-- options, one-step and two-step payments, captures, reversals, refunds,
-- declined cards, lost answers, other money, the reports, two merchants.
SELECT sandbox('POST', '/sandbox/payin/reset');
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "site-a", "apiKey": "payin-key-a", "notificationKey": "notify-a"}')->>'siteId' AS site_a;
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "site-b", "apiKey": "payin-key-b", "notificationKey": "notify-b", "holdHours": 24}')->>'siteId' AS site_b;

-- Payin API requests the sandbox has received so far
CREATE FUNCTION payin_requests() RETURNS int LANGUAGE sql
AS $$ SELECT (sandbox('GET', '/sandbox/payin/stats')->>'requests')::int $$;

-- The buyer pays invoice bill_id of site on the form with a test card
CREATE FUNCTION payin_pay(site text, bill_id text, expiry text DEFAULT '12/30', extra jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE sql
AS $$ SELECT sandbox('POST', format('/sandbox/payin/sites/%s/bills/%s/pay', site, bill_id),
                     (jsonb_build_object('pan', '4256000000000003', 'expiry', expiry, 'cvv', '123') || extra)::text) $$;

-- ---------- merchants ----------

-- the options are validated, keys only on the mapping, never shown
SELECT try($$CREATE SERVER p_bad FOREIGN DATA WRAPPER qiwi OPTIONS (payin_api_key 'k')$$);
SELECT try($$CREATE SERVER p_bad FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'a/b')$$);
SELECT try($$CREATE SERVER p_bad FOREIGN DATA WRAPPER qiwi OPTIONS (payin_capture_hours '121')$$);
SELECT try($$CREATE SERVER p_bad FOREIGN DATA WRAPPER qiwi OPTIONS (payin_capture_hours '7x')$$);
SELECT try($$CREATE SERVER p_bad FOREIGN DATA WRAPPER qiwi OPTIONS (payin_api_url 'ftp://x')$$);
DO $$ BEGIN
	EXECUTE format('CREATE SERVER pay_a FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
	               'site-a', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER pay_b FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L, payin_capture_hours %L)',
	               'site-b', current_setting('qiwi_test.sandbox_url'), '24');
END $$;
SELECT try($$CREATE USER MAPPING FOR PUBLIC SERVER pay_a OPTIONS (payin_api_key E'k\nX: 1')$$);

-- without a key, or for the default merchant, nothing is sent
SELECT payin_requests() AS before \gset
SELECT try($$SELECT qiwi_payin_invoice('inv-1', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_invoice('inv-1')$$);
SET qiwi.payin_site_id = 'site-a';
SELECT try($$SELECT qiwi_payin_invoice('inv-1')$$);
RESET qiwi.payin_site_id;
SELECT payin_requests() - :before AS requests_sent;

CREATE USER MAPPING FOR PUBLIC SERVER pay_a OPTIONS (payin_api_key 'payin-key-a');
CREATE USER MAPPING FOR PUBLIC SERVER pay_b OPTIONS (payin_api_key 'payin-key-b');

-- ---------- one step ----------

-- one expiry for both calls below: the default, now() + 45 days, moves
-- between transactions, and QIWI refuses a changed invoice (409)
SELECT now() + interval '45 days' AS inv_expiry \gset
SELECT bill_id, invoice_uid IS NOT NULL AS has_uid, site_id, amount, currency, status, flags,
       pay_url LIKE '%invoiceUid=%' AS has_pay_url, comment, expires_at > now() AS expires_later,
       customer, custom_fields
  FROM qiwi_payin_create_invoice('inv-1', 5.5, comment => 'Order 1', account => 'buyer-1',
                                 custom_fields => '{"cf1": "x"}', expires_at => :'inv_expiry', merchant => 'pay_a');
-- the same call again is the same invoice; other money is refused before sending
SELECT status, amount FROM qiwi_payin_create_invoice('inv-1', 5.50, comment => 'Order 1', account => 'buyer-1',
                                 custom_fields => '{"cf1": "x"}', expires_at => :'inv_expiry', merchant => 'pay_a');
SELECT payin_requests() AS before \gset
SELECT try($$SELECT qiwi_payin_create_invoice('inv-1', 5.51, merchant => 'pay_a')$$);
SELECT payin_requests() - :before AS requests_sent;
SELECT merchant, bill_id, amount, status, capture FROM qiwi_payin_invoices ORDER BY bill_id;

SELECT payin_pay('site-a', 'inv-1')->>'paymentId' AS p1 \gset
SELECT bill_id, status, amount, flags FROM qiwi_payin_invoice('inv-1', merchant => 'pay_a');
SELECT payment_id = :'p1' AS same_payment, bill_id, status, amount, currency, captured_amount,
       refunded_amount, method, masked_pan, reason_code, flags, created_at IS NOT NULL AS has_created
  FROM qiwi_payin_invoice_payments('inv-1', merchant => 'pay_a');
SELECT status, amount, captured_amount, capture_deadline FROM qiwi_payin_payments WHERE payment_id = :'p1';
-- the old name of qiwi_payin_invoice_payments still works in 1.4
SELECT count(*) AS payments FROM qiwi_payin_payments('inv-1', merchant => 'pay_a');

-- partial refunds up to the captured amount; one cent over is refused before sending
SELECT refund_id, amount, status, flags FROM qiwi_payin_refund(:'p1', 'r-1', 2, merchant => 'pay_a');
SELECT refund_id, amount, status, flags FROM qiwi_payin_refund(:'p1', 'r-2', 3.49, merchant => 'pay_a');
SELECT payin_requests() AS before \gset
SELECT try(format($$SELECT qiwi_payin_refund(%L, 'r-3', 0.02, merchant => 'pay_a')$$, :'p1'));
SELECT payin_requests() - :before AS requests_sent;
SELECT refund_id, amount, status FROM qiwi_payin_refund(:'p1', 'r-3', 0.01, merchant => 'pay_a');
-- a repeat of a refund is the same refund (not more money)
SELECT refund_id, amount FROM qiwi_payin_refund(:'p1', 'r-3', 0.01, merchant => 'pay_a');
SELECT try(format($$SELECT qiwi_payin_refund(%L, 'r-3', 0.02, merchant => 'pay_a')$$, :'p1'));
SELECT refund_id, amount, status, flags FROM qiwi_payin_refund_status(:'p1', 'r-2', merchant => 'pay_a');
SELECT refund_id, amount, status, flags FROM qiwi_payin_refunds(:'p1', merchant => 'pay_a') ORDER BY refund_id;
SELECT status, refunded_amount FROM qiwi_payin_payment(:'p1', merchant => 'pay_a');
-- a one-step payment needs no capture: QIWI says so
SELECT try(format($$SELECT qiwi_payin_capture(%L, 'c-0', merchant => 'pay_a')$$, :'p1'));

-- ---------- two steps: hold, capture ----------

SELECT status, flags FROM qiwi_payin_create_invoice('inv-2', 7, capture => 'manual', merchant => 'pay_a');
SELECT payin_pay('site-a', 'inv-2')->>'paymentId' AS p2 \gset
-- PAID means authorised: the money is held, not received
SELECT status FROM qiwi_payin_invoice('inv-2', merchant => 'pay_a');
SELECT status, amount, captured_amount, flags FROM qiwi_payin_payment(:'p2', merchant => 'pay_a');
SELECT payment_id = :'p2' AS is_p2, held, currency, capture_deadline - authorised_at AS hold_time
  FROM qiwi_payin_holds;
SELECT api, status, currency, items, amount, received FROM qiwi_money_by_status
 WHERE merchant = 'pay_a' ORDER BY api, status;
-- a capture whose answer is lost is asked for by its id, not sent twice:
-- asked for first (GET, 404), sent (PUT, its answer lost), asked for again
SELECT sandbox('POST', '/sandbox/faults', format('{"api": "payin", "times": 1, "drop": "after", "method": "PUT", "payment": "%s"}', :'p2'))
  IS NOT NULL AS fault_set;
SELECT payin_requests() AS before \gset
SELECT capture_id, amount, status, comment FROM qiwi_payin_capture(:'p2', 'c-1', 'shipped', merchant => 'pay_a');
SELECT payin_requests() - :before AS requests_sent, (sandbox('GET', '/sandbox/payin/stats')->>'captures')::int AS captures;
-- the same capture again is the same; another capture id is refused by QIWI
SELECT capture_id, amount FROM qiwi_payin_capture(:'p2', 'c-1', 'shipped', merchant => 'pay_a');
SELECT try(format($$SELECT qiwi_payin_capture(%L, 'c-2', merchant => 'pay_a')$$, :'p2'));
SELECT capture_id, amount, status FROM qiwi_payin_capture_status(:'p2', 'c-1', merchant => 'pay_a');
SELECT captured_amount FROM qiwi_payin_payments WHERE payment_id = :'p2';
SELECT count(*) AS holds FROM qiwi_payin_holds;
SELECT refund_id, amount, flags FROM qiwi_payin_refund(:'p2', 'r-1', 7, merchant => 'pay_a');

-- ---------- two steps: hold, release (a reversal) ----------

SELECT status FROM qiwi_payin_create_invoice('inv-3', 4, capture => 'manual', merchant => 'pay_a');
SELECT payin_pay('site-a', 'inv-3')->>'paymentId' AS p3 \gset
SELECT status, captured_amount FROM qiwi_payin_payment(:'p3', merchant => 'pay_a');
-- an empty 500 on the refund: asked for (unknown), sent again, done once
SELECT sandbox('POST', '/sandbox/faults', format('{"api": "payin", "times": 1, "status": 500, "body": "", "method": "PUT", "payment": "%s"}', :'p3'))
  IS NOT NULL AS fault_set;
SELECT payin_requests() AS before \gset
SELECT refund_id, amount, status, flags FROM qiwi_payin_refund(:'p3', 'rel-1', 1.5, merchant => 'pay_a');
-- the GET that asks first (404), the 500 (answered by the fault, not
-- counted), the GET (404), the PUT again
SELECT payin_requests() - :before AS requests_counted, (sandbox('GET', '/sandbox/payin/stats')->>'refunds')::int AS refunds;
SELECT held FROM qiwi_payin_holds WHERE payment_id = :'p3';
SELECT try(format($$SELECT qiwi_payin_refund(%L, 'rel-2', 2.51, merchant => 'pay_a')$$, :'p3'));
SELECT refund_id, amount, flags FROM qiwi_payin_refund(:'p3', 'rel-2', 2.5, merchant => 'pay_a');
SELECT count(*) AS holds FROM qiwi_payin_holds WHERE payment_id = :'p3';
SELECT try(format($$SELECT qiwi_payin_capture(%L, 'c-3', merchant => 'pay_a')$$, :'p3'));

-- ---------- declined cards ----------

SELECT status FROM qiwi_payin_create_invoice('inv-4', 1, merchant => 'pay_a');
SELECT payin_pay('site-a', 'inv-4', '02/30')->>'paymentId' AS p4 \gset
SELECT status, reason_code, reason_message, captured_amount FROM qiwi_payin_payment(:'p4', merchant => 'pay_a');
SELECT status FROM qiwi_payin_invoice('inv-4', merchant => 'pay_a');
SELECT payin_pay('site-a', 'inv-4', '02/30', '{"reason": "ACQUIRING_INCORRECT_CVV"}')->>'paymentId' AS p5 \gset
SELECT payment_id = :'p4' AS first, status, reason_code FROM qiwi_payin_invoice_payments('inv-4', merchant => 'pay_a') ORDER BY created_at, payment_id;
SELECT try(format($$SELECT qiwi_payin_refund(%L, 'r-x', 1, merchant => 'pay_a')$$, :'p4'));

-- a declined payment stays declined whatever an answer says later
SELECT sandbox('POST', '/sandbox/faults', format(
	'{"api": "payin", "times": 1, "status": 200, "payment": "%s", "body": "{\"paymentId\":\"%s\",\"billId\":\"inv-4\",\"amount\":{\"currency\":\"RUB\",\"value\":\"1.00\"},\"status\":{\"value\":\"COMPLETED\"},\"flags\":[\"SALE\"]}"}',
	:'p4', :'p4')) IS NOT NULL AS fault_set;
SELECT status FROM qiwi_payin_payment(:'p4', merchant => 'pay_a');
SELECT status FROM qiwi_payin_payments WHERE payment_id = :'p4';

-- ---------- other money than the invoice: never paid ----------

SELECT status FROM qiwi_payin_create_invoice('inv-5', 3, merchant => 'pay_a');
SELECT payin_pay('site-a', 'inv-5', '03/30')->>'paymentId' AS p6 \gset
SELECT sandbox('POST', '/sandbox/faults', format(
	'{"api": "payin", "times": 1, "status": 200, "payment": "%s", "body": "{\"paymentId\":\"%s\",\"billId\":\"inv-5\",\"amount\":{\"currency\":\"RUB\",\"value\":\"0.30\"},\"capturedAmount\":{\"currency\":\"RUB\",\"value\":\"0.30\"},\"status\":{\"value\":\"COMPLETED\"},\"flags\":[\"SALE\"]}"}',
	:'p6', :'p6')) IS NOT NULL AS fault_set;
SELECT status, amount FROM qiwi_payin_payment(:'p6', merchant => 'pay_a');
SELECT status, amount, qiwi_status FROM qiwi_payin_payments WHERE payment_id = :'p6';
SELECT status, qiwi_amount, qiwi_status FROM qiwi_payin_invoices WHERE bill_id = 'inv-5';
-- and it stays so when QIWI later says the right money: Payin's clock
-- moves past the card's delayed outcome (3 s, not waited for), and QIWI's
-- notification of that outcome says the payment succeeded for the 3.00
SELECT sandbox('POST', '/sandbox/payin/clock', '{"seconds": 3}') IS NOT NULL AS clock_moved;
SELECT n->'body'->'payment'->'status'->>'value' AS qiwi_says, n->'body'->'payment'->'amount'->>'value' AS for_amount
  FROM jsonb_array_elements(sandbox('GET', '/sandbox/payin/notifications')) n
 WHERE n->'body'->'payment'->>'paymentId' = :'p6';
SELECT status FROM qiwi_payin_payment(:'p6', merchant => 'pay_a');
SELECT status FROM qiwi_payin_invoice('inv-5', merchant => 'pay_a');

-- ---------- expiry ----------

SELECT status FROM qiwi_payin_create_invoice('inv-6', 2, expires_at => :'inv_expiry', merchant => 'pay_a');
SELECT sandbox('POST', '/sandbox/payin/sites/site-a/bills/inv-6/expire')->'status'->>'value' AS expired;
SELECT status FROM qiwi_payin_invoice('inv-6', merchant => 'pay_a');
SELECT status FROM qiwi_payin_create_invoice('inv-6', 2, expires_at => :'inv_expiry', merchant => 'pay_a');

-- ---------- two merchants ----------

SELECT site_id, status FROM qiwi_payin_create_invoice('inv-1', 9, capture => 'manual', merchant => 'pay_b');
SELECT payin_pay('site-b', 'inv-1')->>'paymentId' AS pb \gset
SELECT status FROM qiwi_payin_invoice('inv-1', merchant => 'pay_b');
SELECT merchant, bill_id, amount, status, capture FROM qiwi_payin_invoices WHERE bill_id = 'inv-1' ORDER BY merchant;
-- a merchant's payment is not the other's
SELECT try(format($$SELECT qiwi_payin_payment(%L, merchant => 'pay_a')$$, :'pb'));
SELECT merchant, held, capture_deadline - authorised_at AS hold_time FROM qiwi_payin_holds ORDER BY merchant;
-- a wrong key is QIWI's 401, named by the option
ALTER USER MAPPING FOR PUBLIC SERVER pay_b OPTIONS (SET payin_api_key 'wrong-payin-key');
SELECT try($$SELECT qiwi_payin_invoice('inv-1', merchant => 'pay_b')$$);
ALTER USER MAPPING FOR PUBLIC SERVER pay_b OPTIONS (SET payin_api_key 'payin-key-b');

-- ---------- read-only transactions send nothing that moves money ----------

SELECT payin_requests() AS before \gset
BEGIN READ ONLY;
SELECT try($$SELECT qiwi_payin_create_invoice('inv-ro', 1, merchant => 'pay_a')$$);
SELECT try(format($$SELECT qiwi_payin_capture(%L, 'c-ro', merchant => 'pay_a')$$, :'p2'));
SELECT try(format($$SELECT qiwi_payin_refund(%L, 'r-ro', 1, merchant => 'pay_a')$$, :'p2'));
COMMIT;
SELECT payin_requests() - :before AS requests_sent;
BEGIN READ ONLY;
SELECT status FROM qiwi_payin_invoice('inv-2', merchant => 'pay_a');
COMMIT;

-- ---------- the bookkeeping ----------

SELECT merchant, object, old_status, new_status, source FROM qiwi_payin_events
 ORDER BY id;
SELECT merchant, api, status, currency, items, amount, received FROM qiwi_money_by_status
 WHERE merchant IN ('pay_a', 'pay_b') ORDER BY merchant, api, status;
-- the tables are written only through the functions
CREATE ROLE payin_reader;
GRANT SELECT ON qiwi_payin_invoices TO payin_reader;
SET ROLE payin_reader;
SELECT try($$UPDATE qiwi_payin_invoices SET status = 'PAID'$$);
SELECT try($$SELECT qiwi_payin_create_invoice('inv-x', 1, merchant => 'pay_a')$$);
RESET ROLE;
DROP OWNED BY payin_reader;
DROP ROLE payin_reader;

-- ---------- over HTTPS, verified ----------

SELECT sandbox('POST', '/sandbox/payin/sites', '{"siteId": "site-tls", "apiKey": "payin-key-tls"}',
               current_setting('qiwi_test.https_url'))->>'siteId' AS site_tls;
DO $$ BEGIN
	EXECUTE format('CREATE SERVER pay_tls FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
	               'site-tls', current_setting('qiwi_test.https_url'));
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER pay_tls OPTIONS (payin_api_key 'payin-key-tls');
-- an untrusted certificate: nothing is sent
SELECT try($$SELECT qiwi_payin_create_invoice('tls-1', 1, merchant => 'pay_tls')$$, false);
SELECT set_config('qiwi.ca_file', current_setting('qiwi_test.ca_file'), false) IS NOT NULL AS ca_set;
SELECT status, amount FROM qiwi_payin_create_invoice('tls-1', 1, capture => 'manual', merchant => 'pay_tls');
SELECT sandbox('POST', '/sandbox/payin/sites/site-tls/bills/tls-1/pay',
               '{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}',
               current_setting('qiwi_test.https_url'))->>'paymentId' AS ptls \gset
SELECT status, amount, captured_amount FROM qiwi_payin_invoice_payments('tls-1', merchant => 'pay_tls');
SELECT capture_id, amount, status FROM qiwi_payin_capture(:'ptls', 'c-tls', merchant => 'pay_tls');
RESET qiwi.ca_file;
