-- Stored Payin notifications: the trigger verifies each with the
-- notification key of the merchant whose payin_site_id the row names.
-- QIWI signs only a PAYMENT's, CAPTURE's or REFUND's id, date and amount, so
-- a verified one records no money: it makes its invoice due for a check and
-- notified, and QIWI's answer decides (here a call; in production also the
-- reconciler, which serves another database during this test).  Forgeries,
-- re-typed genuine signatures and other money are stored and say what they
-- are; TOKEN and CHECK_CARD are applied.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
SELECT sandbox('POST', '/sandbox/payin/reset');
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "ntf-a", "apiKey": "api-ntf-a", "notificationKey": "nk-ntf-a"}')->>'siteId' AS site_a;
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "ntf-b", "apiKey": "api-ntf-b", "notificationKey": "nk-b"}')->>'siteId' AS site_b;
DO $$ BEGIN
	EXECUTE format('CREATE SERVER ntf_a FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
	               'ntf-a', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER ntf_b FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
	               'ntf-b', current_setting('qiwi_test.sandbox_url'));
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER ntf_a OPTIONS (payin_api_key 'api-ntf-a', payin_notification_key 'nk-ntf-a');
CREATE USER MAPPING FOR PUBLIC SERVER ntf_b OPTIONS (payin_api_key 'api-ntf-b');

-- The notifications the sandbox sent for a site, of a type, oldest first
CREATE FUNCTION sent(site text, kind text)
RETURNS TABLE (body jsonb, signature text) LANGUAGE sql
AS $$ SELECT n->'body', n->>'signature' FROM jsonb_array_elements(sandbox('GET', '/sandbox/payin/notifications')) n
       WHERE n->>'site' = site AND n->>'type' = kind ORDER BY (n->>'id')::int $$;

-- Store a notification as a web tier would; what the trigger made of it
CREATE FUNCTION store(site text, body jsonb, signature text)
RETURNS TABLE (merchant text, verified boolean, applied boolean, error text) LANGUAGE sql
AS $$ INSERT INTO qiwi_payin_notifications (site_id, body, signature) VALUES (site, body, signature)
      RETURNING merchant, verified, applied, error $$;

-- The signature QIWI would send for a PAYMENT, CAPTURE or REFUND under key
CREATE FUNCTION sign(body jsonb, key text) RETURNS text LANGUAGE sql
AS $$ SELECT encode(hmac(concat_ws('|', o->>CASE body->>'type' WHEN 'PAYMENT' THEN 'paymentId'
                                                            WHEN 'CAPTURE' THEN 'captureId' ELSE 'refundId' END,
                                      o->>'createdDateTime', to_char((o->'amount'->>'value')::numeric, 'FM999999990.00')),
                             key, 'sha256'), 'hex')
        FROM (SELECT body->lower(body->>'type') AS o) x $$;

-- ---------- a two-step payment: PAYMENT, then CAPTURE at the deadline ----------
SELECT status FROM qiwi_payin_create_invoice('ntf-1', 5.00, capture => 'manual', merchant => 'ntf_a');
SELECT sandbox('POST', '/sandbox/payin/sites/ntf-a/bills/ntf-1/pay',
               '{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}')->'status'->>'value' AS paid;
SELECT (body->'payment'->'amount'->>'value') AS amount_sent, s.* FROM sent('ntf-a', 'PAYMENT') x, store('ntf-a', x.body, x.signature) s;
-- no money from it: the invoice is still CREATED, with no payment, notified and due now
SELECT i.status, i.notified_at IS NOT NULL AS notified, i.next_check_at <= clock_timestamp() AS due,
       (SELECT count(*) FROM qiwi_payin_payments p WHERE p.bill_id = i.bill_id) AS payments
  FROM qiwi_payin_invoices i WHERE bill_id = 'ntf-1';
SELECT count(*) AS events_from_notifications FROM qiwi_payin_events WHERE source = 'notification';
-- QIWI's answer decides: PAID, its payment held, and the notification confirmed
SELECT status FROM qiwi_payin_invoice('ntf-1', merchant => 'ntf_a');
SELECT i.status, i.notified_at IS NULL AS confirmed, p.status AS payment, p.captured_amount,
       p.capture_deadline IS NOT NULL AS has_deadline
  FROM qiwi_payin_invoices i JOIN qiwi_payin_payments p USING (merchant, bill_id) WHERE bill_id = 'ntf-1';
SELECT object, old_status, new_status, source FROM qiwi_payin_events
 WHERE merchant = 'ntf_a' AND object IN ('invoice', 'payment') ORDER BY id;
SELECT count(*) AS held FROM qiwi_payin_holds WHERE bill_id = 'ntf-1';

-- the same notification again (QIWI repeats after a lost answer): notified again, nothing else
SELECT count(*) AS events_before FROM qiwi_payin_events \gset
SELECT s.verified, s.applied, s.error FROM sent('ntf-a', 'PAYMENT') x, store('ntf-a', x.body, x.signature) s;
SELECT count(*) - :events_before AS new_events FROM qiwi_payin_events;
SELECT status, notified_at IS NOT NULL AS notified FROM qiwi_payin_invoices WHERE bill_id = 'ntf-1';

-- QIWI captures at the deadline: its CAPTURE makes the invoice due; QIWI's answer shows the money
SELECT sandbox('POST', format('/sandbox/payin/sites/ntf-a/payments/%s/deadline', payment_id))->'status'->>'value' AS deadline
  FROM qiwi_payin_payments WHERE bill_id = 'ntf-1';
SELECT s.* FROM sent('ntf-a', 'CAPTURE') x, store('ntf-a', x.body, x.signature) s;
SELECT captured_amount AS before_the_answer FROM qiwi_payin_payments WHERE bill_id = 'ntf-1';
SELECT status FROM qiwi_payin_invoice('ntf-1', merchant => 'ntf_a');
SELECT p.captured_amount, i.notified_at IS NULL AS confirmed FROM qiwi_payin_payments p
  JOIN qiwi_payin_invoices i USING (merchant, bill_id) WHERE p.bill_id = 'ntf-1';
SELECT count(*) AS held FROM qiwi_payin_holds WHERE bill_id = 'ntf-1';

-- a properly signed DECLINE of the payment already COMPLETED (its status is not signed): nothing moves
SELECT s.verified, s.applied, s.error
  FROM sent('ntf-a', 'PAYMENT') x,
       LATERAL (SELECT jsonb_set(x.body, '{payment,status}', '{"value": "DECLINE", "reasonCode": "INVALID_STATE"}') AS b) d,
       store('ntf-a', d.b, sign(d.b, 'nk-ntf-a')) s;
SELECT status FROM qiwi_payin_payments WHERE bill_id = 'ntf-1';

-- ---------- refunds ----------
SELECT status, flags FROM qiwi_payin_refund((SELECT payment_id FROM qiwi_payin_payments WHERE bill_id = 'ntf-1'),
                                               'ntf-r1', 2.00, merchant => 'ntf_a');
-- the refund the call recorded: its notification only makes the invoice due
SELECT s.applied, s.error FROM sent('ntf-a', 'REFUND') x, store('ntf-a', x.body, x.signature) s;
-- one the tables never heard of is not recorded from a notification
SELECT s.verified, s.applied, s.error FROM sent('ntf-a', 'REFUND') x,
       LATERAL (SELECT jsonb_set(x.body, '{refund,refundId}', '"ntf-r2"') AS b) d,
       store('ntf-a', d.b, sign(d.b, 'nk-ntf-a')) s;
SELECT refund_id, amount, status FROM qiwi_payin_refunds WHERE refund_id LIKE 'ntf-r%' ORDER BY refund_id;
SELECT status FROM qiwi_payin_invoice('ntf-1', merchant => 'ntf_a');
SELECT captured_amount, refunded_amount FROM qiwi_payin_payments WHERE bill_id = 'ntf-1';

-- ---------- forged, unknown, unverifiable ----------
-- another amount under the real signature: stored, marked, nothing applied
SELECT s.* FROM sent('ntf-a', 'PAYMENT') x,
       store('ntf-a', jsonb_set(x.body, '{payment,amount,value}', '500'), x.signature) s;
-- signed with another merchant's key
SELECT s.* FROM sent('ntf-a', 'PAYMENT') x, store('ntf-a', x.body, sign(x.body, 'nk-b')) s;
-- no site named; a site of no merchant; a merchant without a notification key
SELECT s.* FROM sent('ntf-a', 'PAYMENT') x, store(NULL, x.body, x.signature) s;
SELECT s.* FROM sent('ntf-a', 'PAYMENT') x, store('nowhere', x.body, x.signature) s;
SELECT s.* FROM sent('ntf-a', 'PAYMENT') x, store('ntf-b', x.body, x.signature) s;
-- no signature, no body
SELECT s.* FROM sent('ntf-a', 'PAYMENT') x, store('ntf-a', x.body, NULL) s;
SELECT * FROM store('ntf-a', NULL, 'x');
-- a CHECK_CARD without its status: verified, not applied (qiwi_payin_tokens applies whole ones)
SELECT s.verified, s.applied, s.error FROM (SELECT '{"type": "CHECK_CARD", "version": "1", "checkPaymentMethod": {"requestUid": "u1", "checkOperationDate": "2023-01-01T00:00:00+03:00"}}'::jsonb AS b) d,
       store('ntf-a', d.b, encode(hmac('u1|2023-01-01T00:00:00+03:00', 'nk-ntf-a', 'sha256'), 'hex')) s;
-- a verified notification whose object is malformed is stored, not applied
SELECT s.verified, s.applied, s.error FROM sent('ntf-a', 'PAYMENT') x,
       LATERAL (SELECT jsonb_set(x.body, '{payment,status,value}', '"MAYBE"') AS b) d,
       store('ntf-a', d.b, sign(d.b, 'nk-ntf-a')) s;
-- the key is never stored or shown
SELECT count(*) AS rows_with_key FROM qiwi_payin_notifications WHERE error LIKE '%nk-ntf-a%' OR body::text LIKE '%nk-ntf-a%';

-- ---------- a genuine signature re-typed ----------
-- The signed triple of a genuine CAPTURE, re-typed as a PAYMENT with
-- status SUCCESS for another invoice of the same amount: verified (the
-- signature holds), but it records no money and makes the invoice PAID
-- nowhere: not in the table, not in the reports, not in what a call returns
SELECT status FROM qiwi_payin_create_invoice('ntf-2', 5.00, merchant => 'ntf_a');
SELECT s.verified, s.applied, s.error
  FROM sent('ntf-a', 'CAPTURE') x,
       LATERAL (SELECT jsonb_build_object('type', 'PAYMENT', 'version', '1', 'payment',
                    jsonb_build_object('paymentId', x.body->'capture'->'captureId',
                                       'createdDateTime', x.body->'capture'->'createdDateTime',
                                       'amount', x.body->'capture'->'amount', 'billId', 'ntf-2',
                                       'flags', '["SALE"]'::jsonb,
                                       'status', '{"value": "SUCCESS"}'::jsonb)) AS b) d,
       store('ntf-a', d.b, x.signature) s;
SELECT status, notified_at IS NOT NULL AS notified FROM qiwi_payin_invoices WHERE bill_id = 'ntf-2';
SELECT count(*) AS payments FROM qiwi_payin_payments WHERE bill_id = 'ntf-2';
SELECT status, items, amount, received FROM qiwi_money_by_status WHERE merchant = 'ntf_a' AND api = 'payin'
 ORDER BY status;
SELECT status FROM qiwi_payin_invoice('ntf-2', merchant => 'ntf_a');
SELECT status, notified_at IS NULL AS confirmed FROM qiwi_payin_invoices WHERE bill_id = 'ntf-2';

-- ---------- payment tokens ----------
SELECT status, flags FROM qiwi_payin_create_invoice('tok-1', 2.00, account => 'buyer-t', bind_token => true,
                                                    merchant => 'ntf_a');
SELECT sandbox('POST', '/sandbox/payin/sites/ntf-a/bills/tok-1/pay',
               '{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}')->'status'->>'value' AS paid;
-- a TOKEN names its site (merchantSiteUid): site_id may be NULL, and must agree when given
SELECT s.* FROM sent('ntf-a', 'TOKEN') x, store('ntf-b', x.body, x.signature) s;
SELECT s.* FROM sent('ntf-a', 'TOKEN') x, store(NULL, x.body, x.signature) s;
SELECT account, token IS NOT NULL AS has_token, card, expires_at IS NOT NULL AS has_expiry,
       bound_at IS NOT NULL AS has_bound_at FROM qiwi_payin_tokens;
SELECT s.* FROM sent('ntf-a', 'TOKEN') x, store('ntf-a', x.body, x.signature) s;
-- a binding QIWI refused (the card was declined) records nothing, and says so
SELECT status FROM qiwi_payin_create_invoice('tok-0', 2.00, account => 'buyer-u', bind_token => true,
                                             merchant => 'ntf_a');
SELECT sandbox('POST', '/sandbox/payin/sites/ntf-a/bills/tok-0/pay',
               '{"pan": "4256000000000003", "expiry": "02/30", "cvv": "123"}')->'status'->>'value' AS declined;
SELECT s.* FROM sent('ntf-a', 'TOKEN') x, store('ntf-a', x.body, x.signature) s
 WHERE x.body->'token'->'status'->>'value' = 'REJECTED';
SELECT count(*) AS tokens FROM qiwi_payin_tokens;
-- a later invoice for the same account is paid with the recorded token, without the card
SELECT status FROM qiwi_payin_create_invoice('tok-2', 3.00, account => 'buyer-t', merchant => 'ntf_a');
SELECT sandbox('POST', '/sandbox/payin/sites/ntf-a/bills/tok-2/pay',
               jsonb_build_object('token', token)::text)->'status'->>'value' AS paid_with_token
  FROM qiwi_payin_tokens WHERE account = 'buyer-t';
SELECT status FROM qiwi_payin_invoice('tok-2', merchant => 'ntf_a');
SELECT status, method, amount FROM qiwi_payin_payments WHERE bill_id = 'tok-2';

-- ---------- 'reject' mode ----------
CREATE TABLE strict_payin (LIKE qiwi_payin_notifications INCLUDING DEFAULTS);
CREATE TRIGGER v BEFORE INSERT ON strict_payin FOR EACH ROW EXECUTE FUNCTION qiwi_payin_notification_verify('reject');
SELECT try($$INSERT INTO strict_payin (site_id, body, signature)
             SELECT 'ntf-a', jsonb_set(body, '{payment,amount,value}', '500'), signature FROM sent('ntf-a', 'PAYMENT')
              WHERE body->'payment'->>'billId' = 'ntf-1'$$);
INSERT INTO strict_payin (site_id, body, signature)
SELECT 'ntf-a', body, signature FROM sent('ntf-a', 'PAYMENT') WHERE body->'payment'->>'billId' = 'ntf-1';
SELECT verified, applied, regexp_replace(error, '"[^"]*"', '"…"') AS error FROM strict_payin;
CREATE TRIGGER w BEFORE INSERT ON strict_payin FOR EACH ROW EXECUTE FUNCTION qiwi_payin_notification_verify('sometimes');
DROP TRIGGER v ON strict_payin;
SELECT try($$INSERT INTO strict_payin (site_id, body, signature) VALUES ('ntf-a', '{}', 'x')$$);
DROP TABLE strict_payin;
CREATE TABLE bad_payin (signature text, body jsonb);
CREATE TRIGGER v BEFORE INSERT ON bad_payin FOR EACH ROW EXECUTE FUNCTION qiwi_payin_notification_verify();
SELECT try($$INSERT INTO bad_payin VALUES ('x', '{}')$$);
DROP TABLE bad_payin;

-- not PUBLIC
SELECT has_function_privilege('public', 'qiwi_payin_notification_verify()', 'EXECUTE') AS public_can_run;

DROP USER MAPPING FOR PUBLIC SERVER ntf_a;
DROP USER MAPPING FOR PUBLIC SERVER ntf_b;
DROP SERVER ntf_a;
DROP SERVER ntf_b;
