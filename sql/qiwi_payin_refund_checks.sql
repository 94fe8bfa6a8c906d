-- What a Payin refund is checked against before it is sent: another
-- currency than the payment's is refused; a payment the tables do not know
-- is asked for first, and what QIWI's answer leaves bounds the refund (a
-- refund QIWI made already, its answer lost, is asked for by its id).
SELECT sandbox('POST', '/sandbox/payin/reset');
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "site-rc", "apiKey": "payin-key-rc", "notificationKey": "notify-rc"}')->>'siteId' AS site_rc;
DO $$ BEGIN
	EXECUTE format('CREATE SERVER pay_rc FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
	               'site-rc', current_setting('qiwi_test.sandbox_url'));
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER pay_rc OPTIONS (payin_api_key 'payin-key-rc');

-- The Payin requests by method the sandbox has served so far
CREATE FUNCTION rc_methods() RETURNS jsonb LANGUAGE sql
AS $$ SELECT sandbox('GET', '/sandbox/payin/stats')->'byMethod' $$;
-- The requests by method served since before (methods with none left out)
CREATE FUNCTION rc_sent(before jsonb) RETURNS text LANGUAGE sql
AS $$ SELECT coalesce(string_agg(format('%s %s', m, n), ', ' ORDER BY m), 'none')
        FROM (SELECT m, (rc_methods()->>m)::int - coalesce((before->>m)::int, 0) AS n
                FROM jsonb_object_keys(rc_methods()) m) d WHERE n <> 0 $$;

-- a 5.00 payment QIWI has and the tables do not
SELECT status FROM qiwi_payin_create_invoice('rc-1', 5, merchant => 'pay_rc');
SELECT sandbox('POST', '/sandbox/payin/sites/site-rc/bills/rc-1/pay',
               '{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}')->>'paymentId' AS p \gset
SELECT count(*) AS recorded FROM qiwi_payin_payments WHERE merchant = 'pay_rc' AND payment_id = :'p';

-- a refund of it: its payment is asked for (GET), then the refund by its
-- id (GET: QIWI has none), then it is sent (PUT); the
-- transaction rolls back: QIWI made the refund, the tables forgot the
-- payment, but the refund's intent, committed before the PUT, stays
SELECT rc_methods() AS before \gset
BEGIN;
SELECT refund_id, amount, status FROM qiwi_payin_refund(:'p', 'rc-r1', 3, merchant => 'pay_rc');
ROLLBACK;
SELECT rc_sent(:'before') AS sent, count(*) AS recorded FROM qiwi_payin_payments WHERE merchant = 'pay_rc' AND payment_id = :'p';

-- its intent stays, 'sending' (a later refund counts it: tap/031); here it
-- is lost too, as on a promoted asynchronous standby that never got it
SELECT refund_id, amount, status FROM qiwi_payin_refunds WHERE merchant = 'pay_rc' AND payment_id = :'p';
DELETE FROM qiwi_payin_refunds WHERE merchant = 'pay_rc' AND payment_id = :'p';

-- QIWI's answer says 3.00 was returned: 2.01 more is refused without a PUT
-- (the payment is asked for, and so is the refund's id: QIWI has none)
SELECT rc_methods() AS before \gset
SELECT try(format($$SELECT qiwi_payin_refund(%L, 'rc-r2', 2.01, merchant => 'pay_rc')$$, :'p'));
SELECT rc_sent(:'before') AS sent;

-- another currency than the payment's is refused before sending: for a
-- payment the tables have, nothing is sent at all
SELECT rc_methods() AS before \gset
SELECT try(format($$SELECT qiwi_payin_refund(%L, 'rc-r2', 1, 'KZT', merchant => 'pay_rc')$$, :'p'));
SELECT rc_sent(:'before') AS sent;
SELECT status, currency, refunded_amount FROM qiwi_payin_payment(:'p', merchant => 'pay_rc');
SELECT rc_methods() AS before \gset
SELECT try(format($$SELECT qiwi_payin_refund(%L, 'rc-r2', 1, 'KZT', merchant => 'pay_rc')$$, :'p'));
SELECT rc_sent(:'before') AS sent;

-- the lost refund asked again is the one QIWI made: asked for by its id,
-- not sent, recorded
SELECT rc_methods() AS before \gset
SELECT refund_id, amount, status FROM qiwi_payin_refund(:'p', 'rc-r1', 3, merchant => 'pay_rc');
SELECT rc_sent(:'before') AS sent;
SELECT refund_id, amount FROM qiwi_payin_refunds WHERE merchant = 'pay_rc' AND payment_id = :'p';

-- the rest is sent; a cent more is refused by the tables, nothing sent
SELECT rc_methods() AS before \gset
SELECT refund_id, amount, status FROM qiwi_payin_refund(:'p', 'rc-r2', 2, merchant => 'pay_rc');
SELECT try(format($$SELECT qiwi_payin_refund(%L, 'rc-r3', 0.01, merchant => 'pay_rc')$$, :'p'));
SELECT rc_sent(:'before') AS sent;
SELECT refunded_amount FROM qiwi_payin_payments WHERE merchant = 'pay_rc' AND payment_id = :'p';
SELECT (sandbox('GET', '/sandbox/payin/stats')->>'refunds')::int AS refunds_at_qiwi;

-- a payment QIWI does not know either: asked for, no refund sent
SELECT rc_methods() AS before \gset
SELECT try($$SELECT qiwi_payin_refund('no-such-payment', 'rc-r1', 1, merchant => 'pay_rc')$$);
SELECT rc_sent(:'before') AS sent;

-- A capture and a refund whose rows a failover lost (an asynchronous
-- standby promoted before it got them), asked again under their ids: each
-- is asked for first (GET) and recorded from QIWI's answer, never sent
-- again (no PUT); QIWI made one of each
SELECT status FROM qiwi_payin_create_invoice('rc-2', 5, capture => 'manual', merchant => 'pay_rc');
SELECT sandbox('POST', '/sandbox/payin/sites/site-rc/bills/rc-2/pay',
               '{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}')->>'paymentId' AS p2 \gset
SELECT rc_methods() AS before \gset
SELECT capture_id, amount, status FROM qiwi_payin_capture(:'p2', 'rc-c1', merchant => 'pay_rc');
SELECT refund_id, amount, status FROM qiwi_payin_refund(:'p2', 'rc-r4', 1, merchant => 'pay_rc');
SELECT rc_sent(:'before') AS sent;
DELETE FROM qiwi_payin_captures WHERE merchant = 'pay_rc' AND payment_id = :'p2';
DELETE FROM qiwi_payin_refunds WHERE merchant = 'pay_rc' AND payment_id = :'p2';
SELECT rc_methods() AS before \gset
SELECT capture_id, amount, status FROM qiwi_payin_capture(:'p2', 'rc-c1', merchant => 'pay_rc');
SELECT refund_id, amount, status FROM qiwi_payin_refund(:'p2', 'rc-r4', 1, merchant => 'pay_rc');
SELECT rc_sent(:'before') AS sent;
SELECT (SELECT count(*) FROM qiwi_payin_captures WHERE merchant = 'pay_rc' AND payment_id = :'p2') AS captures,
       (SELECT string_agg(refund_id || ' ' || amount || ' ' || status, ', ') FROM qiwi_payin_refunds
         WHERE merchant = 'pay_rc' AND payment_id = :'p2') AS refunds;
-- asked again for other money: QIWI's refund of that id is for 1.00, so
-- the call is refused, nothing sent
DELETE FROM qiwi_payin_refunds WHERE merchant = 'pay_rc' AND payment_id = :'p2';
SELECT rc_methods() AS before \gset
SELECT replace(try(format($$SELECT qiwi_payin_refund(%L, 'rc-r4', 2, merchant => 'pay_rc')$$, :'p2')), :'p2', 'P2') AS try;
SELECT rc_sent(:'before') AS sent;
SELECT (sandbox('GET', '/sandbox/payin/stats')->>'refunds')::int AS refunds_at_qiwi;
