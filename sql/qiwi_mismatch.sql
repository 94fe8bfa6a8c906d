-- A payment for less is never PAID: whenever QIWI reports a bill the shop
-- asked for with another amount or currency, qiwi_bills keeps the shop's
-- amount, records what QIWI said and flags the bill MISMATCH.
SET TIME ZONE 'UTC';
SET DateStyle = 'ISO, YMD';
SET qiwi.max_retries = 0;
CREATE FUNCTION mm_serve(status int, body text) RETURNS void LANGUAGE sql AS $$
	SELECT sandbox('POST', '/sandbox/faults', jsonb_build_object('status', status, 'body', body)::text)
$$;
CREATE FUNCTION mm_qiwi_answer(bill_id text, status text, amount text, currency text DEFAULT 'RUB',
                            site_id text DEFAULT '270305')
RETURNS text LANGUAGE sql AS $$
	SELECT jsonb_build_object('siteId', site_id, 'billId', bill_id,
		'amount', jsonb_build_object('value', amount, 'currency', currency),
		'status', jsonb_build_object('value', status, 'changedDateTime', '2026-11-22T10:00:00+03:00'),
		'creationDateTime', '2026-11-22T09:00:00+03:00',
		'expirationDateTime', '2026-12-22T09:00:00+03:00',
		'payUrl', 'https://oplata.qiwi.com/form/?invoice_uid=forged')::text
$$;
CREATE FUNCTION mm_notification(bill_id text, status text, amount text, currency text DEFAULT 'RUB',
                             site_id text DEFAULT '270305')
RETURNS jsonb LANGUAGE sql AS $$ SELECT jsonb_build_object('bill', mm_qiwi_answer(bill_id, status, amount, currency, site_id)::jsonb, 'version', '1') $$;
CREATE FUNCTION mm_receive(body jsonb)
RETURNS TABLE (verified boolean, applied boolean, error text) LANGUAGE sql AS $$
	INSERT INTO qiwi_notifications (signature, body) VALUES (qiwi_sign_notification(body), body)
	RETURNING verified, applied, error
$$;
CREATE FUNCTION mm_bill_row(id text) RETURNS TABLE (status text, amount numeric, currency text,
	qiwi_status text, qiwi_amount numeric, qiwi_currency text) LANGUAGE sql AS $$
	SELECT status, amount, currency, qiwi_status, qiwi_amount, qiwi_currency FROM qiwi_bills WHERE bill_id = id
$$;

-- An API answer: QIWI says PAID, for 1.00 of a 1,499.90 bill
SELECT status FROM qiwi_create_bill('mm-1', 1499.90, expires_at => now() + interval '1 day');
SELECT mm_serve(200, mm_qiwi_answer('mm-1', 'PAID', '1.00'));
SELECT bill_id, amount, currency, status FROM qiwi_bill_status('mm-1');
SELECT * FROM mm_bill_row('mm-1');
SELECT old_status, new_status, source FROM qiwi_bill_events WHERE bill_id = 'mm-1' ORDER BY id;
-- a later answer with the shop's money does not turn it back into a payment
SELECT mm_serve(200, mm_qiwi_answer('mm-1', 'PAID', '1499.90'));
SELECT bill_id, amount, status FROM qiwi_bill_status('mm-1');
SELECT * FROM mm_bill_row('mm-1');
SELECT count(*) AS due_for_the_reconciler FROM qiwi_bills WHERE bill_id = 'mm-1' AND status IN ('WAITING', 'CREATING');

-- A signed notification for another amount, or another currency
SELECT status FROM qiwi_create_bill('mm-2', 250, expires_at => now() + interval '1 day');
SELECT * FROM mm_receive(mm_notification('mm-2', 'PAID', '2.50'));
SELECT * FROM mm_bill_row('mm-2');
SELECT status FROM qiwi_create_bill('mm-3', 250, expires_at => now() + interval '1 day');
SELECT * FROM mm_receive(mm_notification('mm-3', 'PAID', '250.00', 'KZT'));
SELECT * FROM mm_bill_row('mm-3');
-- the shop's own money still pays a bill
SELECT status FROM qiwi_create_bill('mm-4', 250, expires_at => now() + interval '1 day');
SELECT * FROM mm_receive(mm_notification('mm-4', 'PAID', '250.00'));
SELECT * FROM mm_bill_row('mm-4');
-- a bill already PAID for the shop's amount stays PAID whatever comes later
SELECT * FROM mm_receive(mm_notification('mm-4', 'PAID', '1.00'));
SELECT * FROM mm_bill_row('mm-4');

-- A CREATING intent is the shop's: qiwi_create_bill with another amount is
-- refused before anything is sent; with the same amount it is created.
-- No reconciler serves contrib_regression (qiwi.database names another
-- database): qiwi_create_bill_after_commit is refused here, so the intents
-- are written as it writes them (test/t/003_reconciler.pl has it served).
SELECT try($$SELECT qiwi_create_bill_after_commit('mm-5', 100, expires_at => now() + interval '1 day')$$);
CREATE FUNCTION mm_intent(id text, amount numeric) RETURNS text LANGUAGE sql AS $$
	INSERT INTO qiwi_bills (bill_id, amount, currency, status, expires_at, checked_at, next_check_at)
	VALUES (id, amount, 'RUB', 'CREATING', now() + interval '1 day', clock_timestamp(), clock_timestamp())
	RETURNING status
$$;
SELECT mm_intent('mm-5', 100) AS status;
CREATE TABLE mm_requests AS SELECT sandbox_requests() AS before;
SELECT try($$SELECT qiwi_create_bill('mm-5', 1, expires_at => now() + interval '1 day')$$);
SELECT try($$SELECT qiwi_create_bill('mm-5', 100, 'KZT', expires_at => now() + interval '1 day')$$);
SELECT sandbox_requests() - before AS requests_sent FROM mm_requests;
SELECT status FROM qiwi_create_bill('mm-5', 100.00, expires_at => now() + interval '1 day');
-- QIWI holding an intent's id for less (someone used the public payment
-- form first): the intent becomes MISMATCH, not PAID
SELECT mm_intent('mm-6', 1499.90) AS status;
SELECT * FROM mm_receive(mm_notification('mm-6', 'PAID', '1.00'));
SELECT * FROM mm_bill_row('mm-6');

-- A bill whose creation failed but which QIWI has after all, for the shop's
-- money, moves to QIWI's status; for other money it is MISMATCH
SELECT mm_intent('mm-7', 30) AS status;
SELECT mm_intent('mm-8', 30) AS status;
UPDATE qiwi_bills SET status = 'CREATE_FAILED' WHERE bill_id IN ('mm-7', 'mm-8');
SELECT * FROM mm_receive(mm_notification('mm-7', 'PAID', '30.00'));
SELECT * FROM mm_receive(mm_notification('mm-8', 'PAID', '3.00'));
SELECT bill_id, status FROM qiwi_bills WHERE bill_id IN ('mm-7', 'mm-8') ORDER BY 1;
SELECT mm_serve(200, mm_qiwi_answer('mm-7', 'PAID', '30.00'));
SELECT status FROM qiwi_bill_status('mm-7');

-- Fields a notification does not sign never replace what an API answer gave
SELECT status FROM qiwi_create_bill('mm-9', 40, expires_at => '2026-12-31 00:00:00+00');
CREATE TABLE mm_before AS SELECT pay_url, expires_at, created_at FROM qiwi_bills WHERE bill_id = 'mm-9';
SELECT * FROM mm_receive(mm_notification('mm-9', 'PAID', '40.00')
	|| jsonb_build_object('bill', mm_qiwi_answer('mm-9', 'PAID', '40.00')::jsonb
		|| '{"payUrl": "https://phish.example/pay", "expirationDateTime": "2030-01-01T00:00:00+03:00"}'));
SELECT b.status, b.pay_url = m.pay_url AS pay_url_kept, b.expires_at = m.expires_at AS expiry_kept,
       b.created_at = m.created_at AS creation_kept
  FROM qiwi_bills b, mm_before m WHERE b.bill_id = 'mm-9';
-- a bill first seen in a notification gets no payment link from it
SELECT * FROM mm_receive(mm_notification('mm-new', 'WAITING', '5.00'));
SELECT status, pay_url FROM qiwi_bills WHERE bill_id = 'mm-new';

-- siteId: another site than the shop's (qiwi.site_id), or than the bill's
SELECT status FROM qiwi_create_bill('mm-10', 10, expires_at => now() + interval '1 day');
SET qiwi.site_id = '270305';
SELECT * FROM mm_receive(mm_notification('mm-10', 'PAID', '10.00', site_id => '999999'));
RESET qiwi.site_id;
SELECT * FROM mm_receive(mm_notification('mm-10', 'PAID', '10.00', site_id => '999999'));
SELECT site_id, status FROM qiwi_bills WHERE bill_id = 'mm-10';
SELECT * FROM mm_receive(mm_notification('mm-10', 'PAID', '10.00'));

-- A notification that qiwi_bills cannot take (an amount out of range; one
-- a constraint of the shop's refuses) is stored, marked, and the INSERT goes on
SELECT * FROM mm_receive(mm_notification('mm-zero', 'PAID', '0.00'));
SELECT count(*) AS stored FROM qiwi_notifications WHERE bill_id = 'mm-zero';
SELECT count(*) AS bills FROM qiwi_bills WHERE bill_id = 'mm-zero';
ALTER TABLE qiwi_bills ADD CONSTRAINT shop_limit CHECK (amount <= 100000) NOT VALID;
SELECT * FROM mm_receive(mm_notification('mm-big', 'PAID', '200000.00'));
SELECT count(*) AS stored FROM qiwi_notifications WHERE bill_id = 'mm-big';
SELECT count(*) AS bills FROM qiwi_bills WHERE bill_id = 'mm-big';
ALTER TABLE qiwi_bills DROP CONSTRAINT shop_limit;

-- "|" inside a signed field could shift the fields: never trusted
-- (signed here with pgcrypto: qiwi_sign_notification refuses to sign them)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
CREATE FUNCTION mm_hmac_signed(body jsonb) RETURNS TABLE (verified boolean, applied boolean, error text)
LANGUAGE sql AS $$
	INSERT INTO qiwi_notifications (signature, body)
	SELECT encode(hmac(concat_ws('|', b->'amount'->>'currency', b->'amount'->>'value', b->>'billId',
	                             b->>'siteId', b->'status'->>'value'),
	                   current_setting('qiwi.secret_key'), 'sha256'), 'hex'), body
	  FROM (SELECT body->'bill' AS b) s
	RETURNING verified, applied, error
$$;
SELECT * FROM mm_hmac_signed(mm_notification('mm|11', 'PAID', '10.00'));
SELECT * FROM mm_hmac_signed(mm_notification('mm-11', 'PAID', '10.00', 'R|B'));
SELECT count(*) AS bills FROM qiwi_bills WHERE bill_id IN ('mm|11', 'mm-11');
-- the same HMAC signs bill "mm" of site "11|270305" and bill "mm|11" of site 270305
SELECT encode(hmac('RUB|10.00|mm|11|270305|PAID', current_setting('qiwi.secret_key'), 'sha256'), 'hex') AS sig
\gset
SELECT qiwi_verify_signature(:'sig', mm_notification('mm', 'PAID', '10.00', site_id => '11|270305')) AS shifted_one_way,
       qiwi_verify_signature(:'sig', mm_notification('mm|11', 'PAID', '10.00')) AS shifted_other_way;

-- Only a role the owner grants it to may put the trigger on its own table
CREATE ROLE regress_qiwi_web;
GRANT USAGE ON SCHEMA public TO regress_qiwi_web;
SET ROLE regress_qiwi_web;
CREATE TEMP TABLE my_notifications (signature text, body jsonb, verified boolean, applied boolean, error text);
SELECT try($$CREATE TRIGGER v BEFORE INSERT ON my_notifications FOR EACH ROW EXECUTE FUNCTION qiwi_notification_verify()$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION qiwi_notification_verify() TO regress_qiwi_web;
SET ROLE regress_qiwi_web;
SELECT try($$CREATE TRIGGER v BEFORE INSERT ON my_notifications FOR EACH ROW EXECUTE FUNCTION qiwi_notification_verify()$$);
DROP TABLE my_notifications;
RESET ROLE;
REVOKE ALL ON FUNCTION qiwi_notification_verify() FROM regress_qiwi_web;
REVOKE USAGE ON SCHEMA public FROM regress_qiwi_web;
DROP ROLE regress_qiwi_web;

-- Payment-form custom-field keys that a URL would mis-encode are refused
SELECT try($$SELECT qiwi_payment_form_url('mm-f', 10, 'pk', custom_fields => '{"a=b": "x"}')$$);
SELECT try($$SELECT qiwi_payment_form_url('mm-f', 10, 'pk', custom_fields => '{"a&b": "x"}')$$);
SELECT qiwi_payment_form_url('mm-f', 10, 'pk', custom_fields => '{"themeCode": "a=b&c"}') ILIKE '%customFields%5BthemeCode%5D=a%3Db%26c%' AS value_encoded;

DROP TABLE mm_requests, mm_before;
