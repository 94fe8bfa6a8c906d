-- Card checks against the sandbox: an invoice that asks for a card check
-- made from SQL (check_card => true: flag CHECK_CARD, no amount, capture
-- 'check'); its check asked for before and after the buyer checks a card
-- (qiwi_payin_card_check), and told of by its CHECK_CARD notification, in
-- either order, recorded once and forward only; duplicated, forged and
-- malformed notifications; contradictory and bad arguments refused before
-- any request; an unknown request_uid.  Uses sandbox(), try(), and sent()
-- and store() of qiwi_payin_notifications.
SELECT sandbox('POST', '/sandbox/payin/reset');
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "chk-a", "apiKey": "api-chk-a", "notificationKey": "nk-chk-a"}')->>'siteId' AS site;
DO $$ BEGIN
	EXECUTE format('CREATE SERVER chk_a FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
	               'chk-a', current_setting('qiwi_test.sandbox_url'));
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER chk_a OPTIONS (payin_api_key 'api-chk-a', payin_notification_key 'nk-chk-a');

-- Payin API requests the sandbox has answered so far
CREATE FUNCTION chk_requests() RETURNS int LANGUAGE sql
AS $$ SELECT (sandbox('GET', '/sandbox/payin/stats')->>'requests')::int $$;

-- The buyer on the form has the card of invoice bill_id of chk-a checked
CREATE FUNCTION chk_pay(bill_id text, expiry text DEFAULT '12/30')
RETURNS jsonb LANGUAGE sql
AS $$ SELECT sandbox('POST', format('/sandbox/payin/sites/chk-a/bills/%s/pay', bill_id),
                     jsonb_build_object('pan', '4256000000000003', 'expiry', expiry, 'cvv', '123')::text) $$;

-- The CHECK_CARD notifications the sandbox sent for a check
CREATE FUNCTION check_sent(request_uid text) RETURNS TABLE (body jsonb, signature text) LANGUAGE sql
AS $$ SELECT * FROM sent('chk-a', 'CHECK_CARD') x WHERE x.body->'checkPaymentMethod'->>'requestUid' = request_uid $$;

-- Store the CHECK_CARD notification of a check; what the trigger made of it
CREATE FUNCTION store_check(request_uid text)
RETURNS TABLE (verified boolean, applied boolean, error text) LANGUAGE sql
AS $$ SELECT s.verified, s.applied, s.error FROM (SELECT * FROM check_sent(request_uid) OFFSET 0) x,
              store('chk-a', x.body, x.signature) s $$;

-- The token a check bound, as its notification says
CREATE FUNCTION check_token(request_uid text) RETURNS text LANGUAGE sql
AS $$ SELECT body->'checkPaymentMethod'->'createdToken'->>'token' FROM check_sent(request_uid) $$;

-- SQLSTATE, message and hint of a failing statement
CREATE FUNCTION try_hint(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
	msg text;
	hint text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	RETURN state || ': ' || msg || ' | hint: ' || hint;
END $$;

-- ---------- a card check asked for from SQL, and a token bound ----------
SELECT bill_id, amount, currency, status, flags, pay_url IS NOT NULL AS has_form
  FROM qiwi_payin_create_invoice('chk-1', check_card => true, account => 'buyer-c1', bind_token => true,
                                 expires_at => now() + interval '1 day', merchant => 'chk_a');
SELECT amount, currency, status, capture, flags FROM qiwi_payin_invoices WHERE merchant = 'chk_a';
-- before the buyer acts: the check waits (INIT), and is recorded so
SELECT request_uid, status, is_valid_card, three_ds_status, check_operation_date, card_info, created_token
  FROM qiwi_payin_card_check('chk-1', merchant => 'chk_a');
SELECT status, is_valid_card, check_operation_date FROM qiwi_payin_card_checks WHERE merchant = 'chk_a';
-- the buyer has the card checked on the form
SELECT chk_pay('chk-1')->>'status' AS checked;
-- the call sees it first: INIT -> SUCCESS, with the token it bound
SELECT request_uid, status, is_valid_card, three_ds_status, check_operation_date IS NOT NULL AS has_date,
       card_info->>'paymentSystem' AS payment_system, created_token = check_token('chk-1') AS bound_token
  FROM qiwi_payin_card_check('chk-1', merchant => 'chk_a');
SELECT status, is_valid_card, three_ds_status, check_operation_date IS NOT NULL AS has_date,
       card_info->>'paymentSystem' AS payment_system, created_token = check_token('chk-1') AS bound_token
  FROM qiwi_payin_card_checks WHERE merchant = 'chk_a';
SELECT account, card, expires_at IS NOT NULL AS has_expiry, deleted_at FROM qiwi_payin_tokens
 WHERE merchant = 'chk_a';
-- its notification then changes nothing: the check and its token are recorded once
SELECT count(*) AS events_before FROM qiwi_payin_events WHERE merchant = 'chk_a' \gset
SELECT verified, applied, error FROM store_check('chk-1');
SELECT count(*) - :events_before AS new_events FROM qiwi_payin_events WHERE merchant = 'chk_a';
-- and the call again neither
SELECT status FROM qiwi_payin_card_check('chk-1', merchant => 'chk_a');
SELECT object, old_status, new_status, source FROM qiwi_payin_events WHERE merchant = 'chk_a' ORDER BY id;
-- no money moved: the invoice has no payment, nothing is held or received
SELECT count(*) AS payments FROM qiwi_payin_invoice_payments('chk-1', merchant => 'chk_a');
SELECT coalesce(sum(received), 0) AS received FROM qiwi_money_by_status WHERE merchant = 'chk_a';
-- the same bill_id again is the same invoice; with an amount it is refused before sending
SELECT status FROM qiwi_payin_create_invoice('chk-1', check_card => true, account => 'buyer-c1', bind_token => true,
                                             expires_at => (SELECT expires_at FROM qiwi_payin_invoices WHERE bill_id = 'chk-1'),
                                             merchant => 'chk_a');
SELECT chk_requests() AS before \gset
SELECT try($$SELECT qiwi_payin_create_invoice('chk-1', 1.00, merchant => 'chk_a')$$);
SELECT chk_requests() - :before AS requests_sent;

-- ---------- a declined card: the notification first, then the call ----------
SELECT status, flags FROM qiwi_payin_create_invoice('chk-2', check_card => true, payment_methods => '{CARD}',
                                                    merchant => 'chk_a');
SELECT chk_pay('chk-2', '02/30')->>'isValidCard' AS valid_card;
SELECT verified, applied, error FROM store_check('chk-2');
SELECT status, is_valid_card, three_ds_status, created_token FROM qiwi_payin_card_check('chk-2', merchant => 'chk_a');
SELECT status, is_valid_card, three_ds_status, created_token FROM qiwi_payin_card_checks
 WHERE request_uid = 'chk-2';
SELECT old_status, new_status, source FROM qiwi_payin_events WHERE object_id = 'chk-2' AND object = 'card_check';
-- the same notification again: a duplicate
SELECT applied, error FROM store_check('chk-2');
-- forged: another requestUid under the real signature, or another key
SELECT s.verified, s.applied, s.error FROM check_sent('chk-2') x,
       store('chk-a', jsonb_set(x.body, '{checkPaymentMethod,requestUid}', '"forged"'), x.signature) s;
SELECT s.verified, s.applied, s.error FROM check_sent('chk-2') x,
       store('chk-a', jsonb_set(x.body, '{checkPaymentMethod,requestUid}', '"forged"'),
             encode(hmac(concat_ws('|', 'forged', x.body->'checkPaymentMethod'->>'checkOperationDate'), 'other', 'sha256'), 'hex')) s;
-- a verified check that is malformed: stored, not applied
SELECT s.verified, s.applied, s.error FROM (SELECT jsonb_build_object('type', 'CHECK_CARD', 'version', '1',
         'checkPaymentMethod', jsonb_build_object('requestUid', 'chk-bad', 'checkOperationDate', '2024-01-01T10:00:00+03:00',
                                                  'status', 'SUCCESS', 'isValidCard', 'yes')) AS b) d,
       store('chk-a', d.b, encode(hmac('chk-bad|2024-01-01T10:00:00+03:00', 'nk-chk-a', 'sha256'), 'hex')) s;
-- without checkOperationDate, which QIWI signs: it cannot be verified
SELECT s.verified, s.applied, s.error FROM (SELECT jsonb_build_object('type', 'CHECK_CARD', 'version', '1',
         'checkPaymentMethod', jsonb_build_object('requestUid', 'chk-1', 'status', 'INIT')) AS b) d,
       store('chk-a', d.b, encode(hmac('chk-1|', 'nk-chk-a', 'sha256'), 'hex')) s;
SELECT request_uid, status FROM qiwi_payin_card_checks WHERE merchant = 'chk_a' ORDER BY request_uid;

-- ---------- an unknown check ----------
SELECT try_hint($$SELECT qiwi_payin_card_check('no-such-check', merchant => 'chk_a')$$);

-- ---------- contradictions and bad arguments: refused, naming the argument, nothing sent ----------
SELECT chk_requests() AS before \gset
SELECT try($$SELECT qiwi_payin_create_invoice('chk-x', 1.00, check_card => true, merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('chk-x', check_card => true, capture => 'manual', merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('chk-x', check_card => true, currency => 'USD', merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('chk-x', check_card => true, payment_methods => '{CARD,SBP}', merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('chk-x', check_card => true, bind_token => true, merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('chk-x', check_card => NULL, merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('chk-x', merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_card_check(NULL, merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_card_check('', merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_card_check(repeat('u', 201), merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_card_check(E'chk\x01', merchant => 'chk_a')$$);
SELECT try($$SELECT qiwi_payin_card_check('chk-1', merchant => 'nobody')$$);
SELECT try($$SELECT qiwi_payin_card_check('chk-1')$$);
SELECT chk_requests() - :before AS requests_sent;
SELECT count(*) AS invoices FROM qiwi_payin_invoices WHERE merchant = 'chk_a';
-- it shows the buyer's card: not PUBLIC
SELECT has_function_privilege('public', 'qiwi_payin_card_check(text, text)', 'EXECUTE') AS public_can_run;

DROP FUNCTION try_hint(text);
DROP FUNCTION check_token(text);
DROP FUNCTION store_check(text);
DROP FUNCTION check_sent(text);
DROP FUNCTION chk_pay(text, text);
DROP FUNCTION chk_requests();
DROP USER MAPPING FOR PUBLIC SERVER chk_a;
DROP SERVER chk_a;
