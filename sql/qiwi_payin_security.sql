-- Payin attacked: a hostile QIWI (answers about other ids, other money,
-- captured or refunded more than was paid), a web tier storing crafted
-- notifications, and a role planting functions and operators in its
-- search_path.  Whatever QIWI says, money it reports for another amount or
-- currency than the invoice is never paid or captured money here.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
SELECT sandbox('POST', '/sandbox/payin/reset');
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "sec-a", "apiKey": "api-sec-a", "notificationKey": "nk-sec-a"}')->>'siteId' AS site_a;
DO $$ BEGIN
	EXECUTE format('CREATE SERVER sec_a FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
	               'sec-a', current_setting('qiwi_test.sandbox_url'));
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER sec_a OPTIONS (payin_api_key 'api-sec-a', payin_notification_key 'nk-sec-a');

-- The next Payin answer about filter (bill or payment) is body, with HTTP 200
CREATE FUNCTION hostile(filter jsonb, body jsonb) RETURNS boolean LANGUAGE sql
AS $$ SELECT sandbox('POST', '/sandbox/faults',
                     (jsonb_build_object('api', 'payin', 'times', 1, 'status', 200, 'body', body::text) || filter)::text)
             IS NOT NULL $$;
-- The buyer pays invoice bill_id of sec-a with a test card; the payment id
CREATE FUNCTION sec_pay(bill_id text) RETURNS text LANGUAGE sql
AS $$ SELECT sandbox('POST', format('/sandbox/payin/sites/sec-a/bills/%s/pay', bill_id),
                     '{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}')->>'paymentId' $$;
-- Store a CAPTURE or REFUND notification of sec-a signed as QIWI signs it
CREATE FUNCTION sec_notify(kind text, object jsonb)
RETURNS TABLE (verified boolean, applied boolean, error text) LANGUAGE sql
AS $$ INSERT INTO qiwi_payin_notifications (site_id, body, signature)
      SELECT 'sec-a', jsonb_build_object('type', kind, lower(kind), object, 'version', '1'),
             encode(hmac(concat_ws('|', object->>(lower(kind) || 'Id'), object->>'createdDateTime',
                                   to_char((object->'amount'->>'value')::numeric, 'FM999999990.00')),
                         'nk-sec-a', 'sha256'), 'hex')
      RETURNING verified, applied, error $$;

-- ---------- a hostile QIWI: other money is never paid ----------

-- QIWI says PAID, but the only payment it lists is for less: the invoice
-- is MISMATCH, never PAID
SELECT status FROM qiwi_payin_create_invoice('sec-1', 10, merchant => 'sec_a');
SELECT hostile('{"bill": "sec-1"}', '{"billId": "sec-1", "amount": {"currency": "RUB", "value": "10.00"},
	"status": {"value": "PAID"}, "payments": [{"paymentId": "sec-p1", "billId": "sec-1",
	"amount": {"currency": "RUB", "value": "1.00"}, "capturedAmount": {"currency": "RUB", "value": "1.00"},
	"status": {"value": "COMPLETED"}, "flags": ["SALE"]}]}');
SELECT status FROM qiwi_payin_invoice('sec-1', merchant => 'sec_a');
SELECT status, qiwi_amount FROM qiwi_payin_invoices WHERE merchant = 'sec_a' AND bill_id = 'sec-1';
SELECT status, qiwi_status FROM qiwi_payin_payments WHERE merchant = 'sec_a' AND payment_id = 'sec-p1';
-- the same first seen through the details of an invoice not created here
SELECT hostile('{"bill": "sec-1b"}', '{"billId": "sec-1b", "amount": {"currency": "RUB", "value": "10.00"},
	"status": {"value": "PAID"}, "payments": [{"paymentId": "sec-p1b",
	"amount": {"currency": "USD", "value": "10.00"}, "status": {"value": "COMPLETED"}, "flags": ["SALE"]}]}');
SELECT status FROM qiwi_payin_invoice('sec-1b', merchant => 'sec_a');
SELECT status FROM qiwi_payin_invoices WHERE merchant = 'sec_a' AND bill_id = 'sec-1b';

-- QIWI says PAID, but lists no payment, or its payment still WAITING: an
-- invoice is PAID only with a completed payment of its money, so it stays
-- CREATED (and followed), in the table and in what the call returns
SELECT status FROM qiwi_payin_create_invoice('sec-4a', 4, merchant => 'sec_a');
SELECT hostile('{"bill": "sec-4a"}', '{"billId": "sec-4a", "amount": {"currency": "RUB", "value": "4.00"},
	"status": {"value": "PAID"}, "payments": []}');
SELECT status FROM qiwi_payin_invoice('sec-4a', merchant => 'sec_a');
SELECT status FROM qiwi_payin_invoices WHERE merchant = 'sec_a' AND bill_id = 'sec-4a';
SELECT status FROM qiwi_payin_create_invoice('sec-4b', 4, merchant => 'sec_a');
SELECT hostile('{"bill": "sec-4b"}', '{"billId": "sec-4b", "amount": {"currency": "RUB", "value": "4.00"},
	"status": {"value": "PAID"}, "payments": [{"paymentId": "sec-p4b", "billId": "sec-4b",
	"amount": {"currency": "RUB", "value": "4.00"}, "status": {"value": "WAITING"}, "flags": ["SALE"]}]}');
SELECT status FROM qiwi_payin_invoice('sec-4b', merchant => 'sec_a');
SELECT i.status, p.status AS payment FROM qiwi_payin_invoices i JOIN qiwi_payin_payments p USING (merchant, bill_id)
 WHERE i.merchant = 'sec_a' AND i.bill_id = 'sec-4b';
SELECT status, amount FROM qiwi_money_by_status WHERE merchant = 'sec_a' AND status = 'CAPTURED';
-- then QIWI pays it for real: PAID, with its completed payment
SELECT hostile('{"bill": "sec-4b"}', '{"billId": "sec-4b", "amount": {"currency": "RUB", "value": "4.00"},
	"status": {"value": "PAID"}, "payments": [{"paymentId": "sec-p4b", "billId": "sec-4b",
	"amount": {"currency": "RUB", "value": "4.00"}, "capturedAmount": {"currency": "RUB", "value": "4.00"},
	"status": {"value": "COMPLETED"}, "flags": ["SALE"]}]}');
SELECT status FROM qiwi_payin_invoice('sec-4b', merchant => 'sec_a');
SELECT i.status, p.status AS payment FROM qiwi_payin_invoices i JOIN qiwi_payin_payments p USING (merchant, bill_id)
 WHERE i.merchant = 'sec_a' AND i.bill_id = 'sec-4b';
-- and an answer for other money about the PAID invoice: the table keeps
-- PAID (final), and the call returns what the table holds
SELECT hostile('{"bill": "sec-4b"}', '{"billId": "sec-4b", "amount": {"currency": "RUB", "value": "40.00"},
	"status": {"value": "PAID"}, "payments": [{"paymentId": "sec-p4b", "billId": "sec-4b",
	"amount": {"currency": "RUB", "value": "40.00"}, "capturedAmount": {"currency": "RUB", "value": "40.00"},
	"status": {"value": "COMPLETED"}, "flags": ["SALE"]}]}');
SELECT status, amount FROM qiwi_payin_invoice('sec-4b', merchant => 'sec_a');
SELECT status, amount FROM qiwi_payin_invoices WHERE merchant = 'sec_a' AND bill_id = 'sec-4b';

-- the details of one invoice list a payment of another: malformed, nothing recorded
SELECT status FROM qiwi_payin_create_invoice('sec-2', 10, merchant => 'sec_a');
SELECT status FROM qiwi_payin_create_invoice('sec-3', 7, merchant => 'sec_a');
SELECT hostile('{"bill": "sec-2"}', '{"billId": "sec-2", "amount": {"currency": "RUB", "value": "10.00"},
	"status": {"value": "CREATED"}, "payments": [{"paymentId": "sec-p2", "billId": "sec-3",
	"amount": {"currency": "RUB", "value": "7.00"}, "capturedAmount": {"currency": "RUB", "value": "7.00"},
	"status": {"value": "COMPLETED"}, "flags": ["SALE"]}]}');
SELECT try($$SELECT qiwi_payin_invoice('sec-2', merchant => 'sec_a')$$);
SELECT count(*) AS recorded FROM qiwi_payin_payments WHERE merchant = 'sec_a' AND payment_id = 'sec-p2';

-- a payment that captured or refunded more than its amount, or in another
-- currency: malformed, nothing recorded
SELECT status FROM qiwi_payin_create_invoice('sec-4', 5, merchant => 'sec_a');
SELECT hostile('{"payment": "sec-p4"}', '{"paymentId": "sec-p4", "billId": "sec-4",
	"amount": {"currency": "RUB", "value": "5.00"}, "capturedAmount": {"currency": "USD", "value": "5.00"},
	"status": {"value": "COMPLETED"}, "flags": ["SALE"]}');
SELECT try($$SELECT qiwi_payin_payment('sec-p4', merchant => 'sec_a')$$);
SELECT hostile('{"payment": "sec-p4"}', '{"paymentId": "sec-p4", "billId": "sec-4",
	"amount": {"currency": "RUB", "value": "5.00"}, "capturedAmount": {"currency": "RUB", "value": "999.00"},
	"status": {"value": "COMPLETED"}, "flags": ["SALE"]}');
SELECT try($$SELECT qiwi_payin_payment('sec-p4', merchant => 'sec_a')$$);
SELECT hostile('{"payment": "sec-p4"}', '{"paymentId": "sec-p4", "billId": "sec-4",
	"amount": {"currency": "RUB", "value": "5.00"}, "capturedAmount": {"currency": "RUB", "value": "5.00"},
	"refundedAmount": {"currency": "EUR", "value": "1.00"}, "status": {"value": "COMPLETED"}, "flags": ["SALE"]}');
SELECT try($$SELECT qiwi_payin_payment('sec-p4', merchant => 'sec_a')$$);
SELECT hostile('{"payment": "sec-p4"}', '{"paymentId": "sec-p4", "billId": "sec-4",
	"amount": {"currency": "RUB", "value": "5.00"}, "capturedAmount": {"currency": "RUB", "value": "5.00"},
	"refundedAmount": {"currency": "RUB", "value": "5.01"}, "status": {"value": "COMPLETED"}, "flags": ["SALE"]}');
SELECT try($$SELECT qiwi_payin_payment('sec-p4', merchant => 'sec_a')$$);
SELECT count(*) AS recorded FROM qiwi_payin_payments WHERE merchant = 'sec_a' AND payment_id = 'sec-p4';

-- a hold of 5.00 RUB: QIWI answers its capture (the PUT, after the GET
-- that asks for it first) with other money
SELECT status FROM qiwi_payin_create_invoice('sec-5', 5, capture => 'manual', merchant => 'sec_a');
SELECT sec_pay('sec-5') AS p5 \gset
SELECT status, captured_amount FROM qiwi_payin_invoice_payments('sec-5', merchant => 'sec_a');
SELECT hostile(jsonb_build_object('payment', :'p5', 'method', 'PUT'), '{"captureId": "sec-c5",
	"amount": {"currency": "USD", "value": "5.00"}, "status": {"value": "COMPLETED"}}');
SELECT replace(try(format($$SELECT qiwi_payin_capture(%L, 'sec-c5', merchant => 'sec_a')$$, :'p5')), :'p5', 'P5') AS try;
SELECT hostile(jsonb_build_object('payment', :'p5'), '{"captureId": "sec-c5",
	"amount": {"currency": "RUB", "value": "999.00"}, "status": {"value": "COMPLETED"}}');
SELECT replace(try(format($$SELECT qiwi_payin_capture_status(%L, 'sec-c5', merchant => 'sec_a')$$, :'p5')), :'p5', 'P5') AS try;
-- and its refunds with other money (a list, a notification)
SELECT hostile(jsonb_build_object('payment', :'p5'), '[{"refundId": "sec-r5",
	"amount": {"currency": "EUR", "value": "1.00"}, "status": {"value": "COMPLETED"}, "flags": ["REVERSAL"]}]');
SELECT replace(try(format($$SELECT count(*) FROM qiwi_payin_refunds(%L, merchant => 'sec_a')$$, :'p5')), :'p5', 'P5') AS try;
SELECT verified, applied, replace(error, :'p5', 'P5') AS error FROM sec_notify('REFUND', jsonb_build_object('refundId', 'sec-r5b', 'paymentId', :'p5',
	'createdDateTime', '2023-02-17T14:50:44+03:00', 'amount', '{"currency": "RUB", "value": 6}'::jsonb,
	'status', '{"value": "SUCCESS"}'::jsonb, 'flags', '["REVERSAL"]'::jsonb));
SELECT verified, applied, replace(error, :'p5', 'P5') AS error FROM sec_notify('CAPTURE', jsonb_build_object('captureId', 'sec-c5b', 'paymentId', :'p5',
	'createdDateTime', '2023-02-17T14:50:44+03:00', 'amount', '{"currency": "USD", "value": 5}'::jsonb,
	'status', '{"value": "SUCCESS"}'::jsonb));
SELECT status, amount, captured_amount, refunded_amount FROM qiwi_payin_payments WHERE merchant = 'sec_a' AND payment_id = :'p5';
-- the capture's intent stays 'sending' (its answer was not recorded): the reconciler asks for it
SELECT status, amount FROM qiwi_payin_captures WHERE merchant = 'sec_a' AND payment_id = :'p5';
SELECT count(*) AS refunds FROM qiwi_payin_refunds WHERE merchant = 'sec_a' AND payment_id = :'p5';
-- a capture told of before its payment is not recorded (QIWI signs neither its payment nor its currency)
SELECT verified, applied FROM sec_notify('CAPTURE', jsonb_build_object('captureId', 'sec-c6', 'paymentId', 'sec-p6',
	'createdDateTime', '2023-02-17T14:50:44+03:00', 'amount', '{"currency": "USD", "value": 3}'::jsonb,
	'status', '{"value": "SUCCESS"}'::jsonb));
SELECT status FROM qiwi_payin_create_invoice('sec-6', 3, capture => 'manual', merchant => 'sec_a');
SELECT hostile('{"payment": "sec-p6"}', '{"paymentId": "sec-p6", "billId": "sec-6",
	"amount": {"currency": "RUB", "value": "3.00"}, "status": {"value": "COMPLETED"}, "flags": ["AUTH"]}');
SELECT status, captured_amount FROM qiwi_payin_payment('sec-p6', merchant => 'sec_a');
SELECT merchant, payment_id, held FROM qiwi_payin_holds WHERE merchant = 'sec_a' AND payment_id = 'sec-p6';

-- nothing of the above is received money
SELECT status, currency, items, amount, received FROM qiwi_money_by_status
 WHERE merchant = 'sec_a' ORDER BY status, currency;

-- ---------- the web tier: bodies that are not objects ----------

-- (the array's entries once were looked up as if they were an object's:
-- an assertion failure, or a read past the body, in the trigger)
WITH s AS (
	INSERT INTO qiwi_payin_notifications (site_id, signature, body)
	VALUES ('sec-a', repeat('0', 64), '[1, 2, 3]'), ('sec-a', repeat('0', 64), '"token"'),
	       (NULL, repeat('0', 64), '["token", {"merchantSiteUid": "sec-a"}]'),
	       ('sec-a', repeat('0', 64), jsonb_build_array(repeat(chr(127), 4) || 'AAAP', 'abcde', '1234567token'))
	RETURNING verified, applied, error)
SELECT verified, applied, error FROM s;

-- ---------- search_path plants ----------

CREATE ROLE regress_payin_mallory;
CREATE SCHEMA pmal AUTHORIZATION regress_payin_mallory;
GRANT USAGE ON SCHEMA public TO regress_payin_mallory;
GRANT USAGE ON FOREIGN SERVER sec_a TO regress_payin_mallory;
GRANT INSERT ON qiwi_payin_notifications TO regress_payin_mallory;
GRANT USAGE ON SEQUENCE qiwi_payin_notifications_id_seq TO regress_payin_mallory;
GRANT EXECUTE ON FUNCTION
	qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text),
	qiwi_payin_invoice(text, text), qiwi_payin_payments(text, text), qiwi_payin_invoice_payments(text, text), qiwi_payin_payment(text, text),
	qiwi_payin_capture(text, text, text, text), qiwi_payin_capture_status(text, text, text),
	qiwi_payin_refund(text, text, numeric, text, text), qiwi_payin_refund_status(text, text, text),
	qiwi_payin_refunds(text, text), qiwi_payin_delete_token(text, text, text), qiwi_payin_card_check(text, text)
	TO regress_payin_mallory;
CREATE TABLE sec_signed AS
	SELECT 'CAPTURE'::text AS kind, jsonb_build_object('captureId', 'sec-c7n', 'paymentId', 'sec-p7n',
		'createdDateTime', '2023-02-17T14:50:44+03:00', 'amount', '{"currency": "RUB", "value": 2}'::jsonb,
		'status', '{"value": "SUCCESS"}'::jsonb) AS object;
GRANT SELECT ON sec_signed TO regress_payin_mallory;

SET ROLE regress_payin_mallory;
CREATE TABLE pmal.hits (fn text, run_by name);
GRANT INSERT ON pmal.hits TO PUBLIC;
CREATE FUNCTION pmal.trap(fn text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO pmal.hits VALUES (fn, current_user);
	IF current_user <> 'regress_payin_mallory' THEN
		EXECUTE 'ALTER ROLE regress_payin_mallory SUPERUSER';
	END IF;
END $$;
CREATE FUNCTION pmal.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
$$BEGIN PERFORM pmal.trap('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END$$;
CREATE FUNCTION pmal.make_interval(hours integer) RETURNS interval LANGUAGE plpgsql AS
$$BEGIN PERFORM pmal.trap('make_interval'); RETURN pg_catalog.make_interval(hours => hours); END$$;
CREATE FUNCTION pmal.sum(numeric) RETURNS numeric LANGUAGE plpgsql AS
$$BEGIN PERFORM pmal.trap('sum'); RETURN $1; END$$;
CREATE FUNCTION pmal.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM pmal.trap('= (text)'); RETURN pg_catalog.texteq($1, $2); END$$;
CREATE OPERATOR pmal.= (LEFTARG = text, RIGHTARG = text, FUNCTION = pmal.text_eq);
CREATE FUNCTION pmal.text_ne(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM pmal.trap('<> (text)'); RETURN pg_catalog.textne($1, $2); END$$;
CREATE OPERATOR pmal.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = pmal.text_ne);
CREATE FUNCTION pmal.num_gt(numeric, numeric) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM pmal.trap('> (numeric)'); RETURN pg_catalog.numeric_gt($1, $2); END$$;
CREATE OPERATOR pmal.> (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = pmal.num_gt);
CREATE FUNCTION pmal.num_sub(numeric, numeric) RETURNS numeric LANGUAGE plpgsql AS
$$BEGIN PERFORM pmal.trap('- (numeric)'); RETURN pg_catalog.numeric_sub($1, $2); END$$;
CREATE OPERATOR pmal.- (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = pmal.num_sub);
CREATE FUNCTION pmal.arr_has(text, text[]) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM pmal.trap('= ANY'); RETURN $1 OPERATOR(pg_catalog.=) ANY ($2); END$$;
CREATE FUNCTION pg_temp.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM pmal.trap('pg_temp.= (text)'); RETURN pg_catalog.texteq($1, $2); END$$;
CREATE OPERATOR pg_temp.= (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.text_eq);
-- the traps fire in mallory's own SQL
SET search_path = pmal, pg_catalog, public;
SELECT 'a' = 'a' AS planted_eq_fires, 2.0 > 1.0 AS planted_gt_fires;
SELECT DISTINCT fn, run_by FROM pmal.hits ORDER BY fn;
TRUNCATE pmal.hits;

-- through every Payin function and the trigger (the buyer pays as the superuser)
SELECT status FROM qiwi_payin_create_invoice('sec-7', 4, capture => 'manual',
	expires_at => pg_catalog.now() + interval '1 day', merchant => 'sec_a');
RESET ROLE;
SELECT sec_pay('sec-7') AS p7 \gset
SET ROLE regress_payin_mallory;
SELECT status FROM qiwi_payin_invoice('sec-7', merchant => 'sec_a');
SELECT status FROM qiwi_payin_invoice_payments('sec-7', merchant => 'sec_a');
SELECT status FROM qiwi_payin_refund(:'p7', 'sec-r7', 1, merchant => 'sec_a');
SELECT status FROM qiwi_payin_capture(:'p7', 'sec-c7', merchant => 'sec_a');
SELECT status FROM qiwi_payin_capture_status(:'p7', 'sec-c7', merchant => 'sec_a');
SELECT status FROM qiwi_payin_payment(:'p7', merchant => 'sec_a');
SELECT status FROM qiwi_payin_refund(:'p7', 'sec-r7b', 1, merchant => 'sec_a');
SELECT status FROM qiwi_payin_refund_status(:'p7', 'sec-r7b', merchant => 'sec_a');
SELECT count(*) FROM qiwi_payin_refunds(:'p7', merchant => 'sec_a');
SELECT qiwi_payin_delete_token('sec-buyer', 'sec-token', merchant => 'sec_a') AS deleted_now;
SELECT status, amount FROM qiwi_payin_create_invoice('sec-7c', check_card => true, merchant => 'sec_a');
SELECT status FROM qiwi_payin_card_check('sec-7c', merchant => 'sec_a');
SET search_path = pg_temp, pmal, pg_catalog, public;
SELECT status FROM qiwi_payin_payment(:'p7', merchant => 'sec_a');
INSERT INTO qiwi_payin_notifications (site_id, body, signature)
	SELECT 'sec-a', jsonb_build_object('type', kind, 'capture', object, 'version', '1'),
	       pg_catalog.encode(public.hmac(pg_catalog.concat_ws('|', object->>'captureId', object->>'createdDateTime', '2.00'),
	                                     'nk-sec-a', 'sha256'), 'hex')
	  FROM public.sec_signed;
DROP OPERATOR pg_temp.= (text, text);
DROP FUNCTION pg_temp.text_eq(text, text);
RESET ROLE;
RESET search_path;

-- no trap ran, and mallory is what it was
SELECT DISTINCT fn, run_by FROM pmal.hits ORDER BY fn;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_payin_mallory';
SELECT verified, applied, error FROM qiwi_payin_notifications WHERE merchant = 'sec_a' AND body->'capture'->>'captureId' = 'sec-c7n';
SELECT object, new_status, source FROM qiwi_payin_events
 WHERE merchant = 'sec_a' AND object_id IN ('sec-7', :'p7', 'sec-c7', 'sec-r7', 'sec-r7b', 'sec-c7n') ORDER BY id;

DROP TABLE sec_signed;
DROP SCHEMA pmal CASCADE;
REVOKE ALL ON FUNCTION
	qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text),
	qiwi_payin_invoice(text, text), qiwi_payin_payments(text, text), qiwi_payin_invoice_payments(text, text), qiwi_payin_payment(text, text),
	qiwi_payin_capture(text, text, text, text), qiwi_payin_capture_status(text, text, text),
	qiwi_payin_refund(text, text, numeric, text, text), qiwi_payin_refund_status(text, text, text),
	qiwi_payin_refunds(text, text), qiwi_payin_delete_token(text, text, text), qiwi_payin_card_check(text, text)
	FROM regress_payin_mallory;
REVOKE ALL ON qiwi_payin_notifications FROM regress_payin_mallory;
REVOKE ALL ON SEQUENCE qiwi_payin_notifications_id_seq FROM regress_payin_mallory;
REVOKE USAGE ON SCHEMA public FROM regress_payin_mallory;
REVOKE USAGE ON FOREIGN SERVER sec_a FROM regress_payin_mallory;
DROP ROLE regress_payin_mallory;

-- ---------- a capture or refund locks its payment before sending ----------

-- While one transaction refunds a hold, another's capture or refund of the
-- same payment waits for it (here: gives up at lock_timeout) before
-- anything is sent, so two of them never both pass the check of what is left
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
RESET client_min_messages;
SELECT status FROM qiwi_payin_create_invoice('sec-lock', 5, capture => 'manual', merchant => 'sec_a');
SELECT sec_pay('sec-lock') AS p_lock \gset
SELECT status, captured_amount FROM qiwi_payin_invoice_payments('sec-lock', merchant => 'sec_a');
-- to this server wherever it listens (its environment may name no PGHOST or PGPORT)
SELECT dblink_connect('other', format('dbname=%s host=%s port=%s', current_database(),
	split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'))) AS connected;
BEGIN;
SELECT status, flags FROM qiwi_payin_refund(:'p_lock', 'sec-lock-r1', 1.00, merchant => 'sec_a');
SELECT (sandbox('GET', '/sandbox/payin/stats')->>'requests')::int AS before_other \gset
SELECT x AS other_session FROM dblink('other', format(
	$q$SELECT CASE WHEN (SELECT set_config('lock_timeout', '200ms', false)) IS NOT NULL THEN
	  (SELECT try(%L, false)) END$q$,
	format('SELECT qiwi_payin_capture(%L, %L, merchant => %L)', :'p_lock', 'sec-lock-c1', 'sec_a')))
	AS t(x text);
SELECT x AS other_session FROM dblink('other', format(
	$q$SELECT CASE WHEN (SELECT set_config('lock_timeout', '200ms', false)) IS NOT NULL THEN
	  (SELECT try(%L, false)) END$q$,
	format('SELECT qiwi_payin_refund(%L, %L, 4.00, merchant => %L)', :'p_lock', 'sec-lock-r2', 'sec_a')))
	AS t(x text);
SELECT (sandbox('GET', '/sandbox/payin/stats')->>'requests')::int - :before_other AS sent_by_the_other;
COMMIT;
SELECT dblink_disconnect('other');
-- after the commit, the other refund sees what the first one left
SELECT replace(try(format('SELECT qiwi_payin_refund(%L, %L, 4.01, merchant => %L)', :'p_lock', 'sec-lock-r2', 'sec_a')),
               :'p_lock', '<p_lock>') AS refused;

DROP FUNCTION hostile(jsonb, jsonb), sec_pay(text), sec_notify(text, jsonb);
