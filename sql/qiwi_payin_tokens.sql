-- Payment tokens against the sandbox: a token bound (TOKEN
-- notification), reused for a later invoice of the same account, deleted
-- (a repeat and a lost answer are no error), refused by the sandbox after;
-- bad arguments refused before any request (card checks:
-- qiwi_payin_card_checks).  Uses sandbox(), try(), and sent() and store()
-- of qiwi_payin_notifications.
SELECT sandbox('POST', '/sandbox/payin/reset');
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "tok-a", "apiKey": "api-tok-a", "notificationKey": "nk-tok-a"}')->>'siteId' AS site;
DO $$ BEGIN
	EXECUTE format('CREATE SERVER tok_a FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
	               'tok-a', current_setting('qiwi_test.sandbox_url'));
	-- a URL where QIWI's API is not: its 404 is not "the token is gone"
	EXECUTE format('CREATE SERVER tok_lost FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
	               'tok-lost', current_setting('qiwi_test.sandbox_url') || '/elsewhere');
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER tok_a OPTIONS (payin_api_key 'api-tok-a', payin_notification_key 'nk-tok-a');
CREATE USER MAPPING FOR PUBLIC SERVER tok_lost OPTIONS (payin_api_key 'api-tok-a');

-- Payin API requests the sandbox has answered so far
CREATE FUNCTION tok_requests() RETURNS int LANGUAGE sql
AS $$ SELECT (sandbox('GET', '/sandbox/payin/stats')->>'requests')::int $$;

-- The buyer on the form: pays (or has checked) invoice bill_id of tok-a with a test card, or with a token
CREATE FUNCTION tok_pay(bill_id text, how jsonb DEFAULT '{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}')
RETURNS jsonb LANGUAGE sql
AS $$ SELECT sandbox('POST', format('/sandbox/payin/sites/tok-a/bills/%s/pay', bill_id), how::text) $$;

-- The TOKEN notifications the sandbox sent for an account, oldest first
CREATE FUNCTION token_sent(account text) RETURNS TABLE (body jsonb, signature text) LANGUAGE sql
AS $$ SELECT * FROM sent('tok-a', 'TOKEN') x WHERE x.body->'token'->>'account' = account $$;

-- Store the latest TOKEN notification of an account; what the trigger made of it
CREATE FUNCTION store_token(account text)
RETURNS TABLE (verified boolean, applied boolean, error text) LANGUAGE sql
AS $$ SELECT s.verified, s.applied, s.error FROM (SELECT * FROM token_sent(account) OFFSET 0) x,
              store('tok-a', x.body, x.signature) s $$;

-- The token the sandbox bound for an account (from its TOKEN notification)
CREATE FUNCTION bound(account text) RETURNS text LANGUAGE sql
AS $$ SELECT body->'token'->>'token' FROM token_sent(account) WHERE body->'token'->'status'->>'value' = 'CREATED' $$;

-- ---------- a token bound, and reused ----------
SELECT status, flags FROM qiwi_payin_create_invoice('tok-1', 2.00, account => 'buyer-1', bind_token => true,
                                                    merchant => 'tok_a');
SELECT tok_pay('tok-1')->'status'->>'value' AS paid;
SELECT * FROM store_token('buyer-1');
SELECT account, token = bound('buyer-1') AS is_bound_token, card, deleted_at FROM qiwi_payin_tokens
 WHERE merchant = 'tok_a';
SELECT object, object_id = bound('buyer-1') AS is_token, old_status, new_status, source
  FROM qiwi_payin_events WHERE merchant = 'tok_a' AND object = 'token' ORDER BY id;
-- a later invoice for the same account is paid with it, without the card
SELECT status FROM qiwi_payin_create_invoice('tok-2', 3.00, account => 'buyer-1', merchant => 'tok_a');
SELECT tok_pay('tok-2', jsonb_build_object('token', bound('buyer-1')))->'status'->>'value' AS paid_with_token;
SELECT status, method, amount FROM qiwi_payin_payments('tok-2', merchant => 'tok_a');

-- ---------- bad arguments: refused, naming the argument, nothing sent ----------
SELECT tok_requests() AS before \gset
SELECT try($$SELECT qiwi_payin_delete_token(NULL, 'x', merchant => 'tok_a')$$);
SELECT try($$SELECT qiwi_payin_delete_token('', 'x', merchant => 'tok_a')$$);
SELECT try($$SELECT qiwi_payin_delete_token(repeat('a', 257), 'x', merchant => 'tok_a')$$);
SELECT try($$SELECT qiwi_payin_delete_token(E'buyer\n1', 'x', merchant => 'tok_a')$$);
SELECT try($$SELECT qiwi_payin_delete_token('buyer-1', NULL, merchant => 'tok_a')$$);
SELECT try($$SELECT qiwi_payin_delete_token('buyer-1', '', merchant => 'tok_a')$$);
SELECT try($$SELECT qiwi_payin_delete_token('buyer-1', repeat('t', 201), merchant => 'tok_a')$$);
SELECT try($$SELECT qiwi_payin_delete_token('buyer-1', E't\x01', merchant => 'tok_a')$$);
SELECT try($$SELECT qiwi_payin_delete_token('buyer-1', 'x', merchant => 'nobody')$$);
SELECT try($$SELECT qiwi_payin_delete_token('buyer-1', 'x')$$);
BEGIN READ ONLY;
SELECT try($$SELECT qiwi_payin_delete_token('buyer-1', 'x', merchant => 'tok_a')$$);
ROLLBACK;
SELECT tok_requests() - :before AS requests_sent;
-- the longest account and token are sent (QIWI does not know them)
SELECT qiwi_payin_delete_token(repeat('a', 256), repeat('t', 200), merchant => 'tok_a') AS deleted;
SELECT has_function_privilege('public', 'qiwi_payin_delete_token(text, text, text)', 'EXECUTE') AS public_can_run;

-- ---------- deleted ----------
-- another account's token is not deleted: QIWI does not know it for that account
SELECT qiwi_payin_delete_token('someone-else', bound('buyer-1'), merchant => 'tok_a') AS deleted;
SELECT deleted_at IS NULL AS still_usable FROM qiwi_payin_tokens WHERE account = 'buyer-1';
-- a wrong URL's 404 and a refused key (of a site the sandbox does not know) are errors, not "gone"
SELECT try(format($$SELECT qiwi_payin_delete_token('buyer-1', %L, merchant => 'tok_lost')$$, bound('buyer-1')));
ALTER USER MAPPING FOR PUBLIC SERVER tok_lost OPTIONS (SET payin_api_key 'wrong-payin-key');
DO $$ BEGIN
	EXECUTE format('ALTER SERVER tok_lost OPTIONS (SET payin_api_url %L)', current_setting('qiwi_test.sandbox_url'));
END $$;
SELECT try(format($$SELECT qiwi_payin_delete_token('buyer-1', %L, merchant => 'tok_lost')$$, bound('buyer-1')));
SELECT deleted_at IS NULL AS still_usable FROM qiwi_payin_tokens WHERE account = 'buyer-1';
-- QIWI deletes it (204): recorded, the row kept, an event
SELECT tok_requests() AS before \gset
SELECT qiwi_payin_delete_token('buyer-1', bound('buyer-1'), merchant => 'tok_a') AS deleted;
SELECT tok_requests() - :before AS requests_sent;
SELECT account, card, deleted_at IS NOT NULL AS deleted, deleted_at >= first_seen_at AS deleted_after_bound
  FROM qiwi_payin_tokens WHERE account = 'buyer-1';
SELECT old_status, new_status, source FROM qiwi_payin_events
 WHERE merchant = 'tok_a' AND object = 'token' ORDER BY id;
-- again: QIWI no longer knows it, which is no error; nothing changes
SELECT count(*) AS events_before FROM qiwi_payin_events \gset
SELECT qiwi_payin_delete_token('buyer-1', bound('buyer-1'), merchant => 'tok_a') AS deleted;
SELECT count(*) - :events_before AS new_events FROM qiwi_payin_events;
-- the sandbox refuses it for a payment now
SELECT status FROM qiwi_payin_create_invoice('tok-3', 1.00, account => 'buyer-1', merchant => 'tok_a');
SELECT tok_pay('tok-3', jsonb_build_object('token', bound('buyer-1'))) AS refused;
-- its TOKEN notification once more (QIWI repeats): a duplicate, it stays deleted
SELECT * FROM store_token('buyer-1');
SELECT deleted_at IS NOT NULL AS deleted FROM qiwi_payin_tokens WHERE account = 'buyer-1';

-- ---------- a lost answer: the retry finds it gone ----------
SELECT status FROM qiwi_payin_create_invoice('tok-4', 1.00, account => 'buyer-2', bind_token => true,
                                             merchant => 'tok_a');
SELECT tok_pay('tok-4')->'status'->>'value' AS paid;
SELECT * FROM store_token('buyer-2');
SELECT sandbox('POST', '/sandbox/faults', '{"api": "payin", "times": 1, "drop": "after", "site": "tok-a"}')
  IS NOT NULL AS fault_set;
SELECT tok_requests() AS before \gset
SELECT qiwi_payin_delete_token('buyer-2', bound('buyer-2'), merchant => 'tok_a') AS deleted;
-- the DELETE that deleted it (its answer lost), and the repeat (404)
SELECT tok_requests() - :before AS requests_sent;
SELECT deleted_at IS NOT NULL AS deleted FROM qiwi_payin_tokens WHERE account = 'buyer-2';

-- ---------- a token the tables never heard of ----------
SELECT status FROM qiwi_payin_create_invoice('tok-5', 1.00, account => 'buyer-3', bind_token => true,
                                             merchant => 'tok_a');
SELECT tok_pay('tok-5')->'status'->>'value' AS paid;
SELECT qiwi_payin_delete_token('buyer-3', bound('buyer-3'), merchant => 'tok_a') AS deleted;
SELECT account, card, bound_at, deleted_at IS NOT NULL AS deleted FROM qiwi_payin_tokens WHERE account = 'buyer-3';
SELECT old_status, new_status, source FROM qiwi_payin_events
 WHERE object = 'token' AND object_id = bound('buyer-3') ORDER BY id;
SELECT * FROM store_token('buyer-3');
SELECT count(*) AS tokens, count(deleted_at) AS deleted FROM qiwi_payin_tokens WHERE merchant = 'tok_a';

DROP FUNCTION bound(text);
DROP FUNCTION store_token(text);
DROP FUNCTION token_sent(text);
DROP FUNCTION tok_pay(text, jsonb);
DROP FUNCTION tok_requests();
DROP USER MAPPING FOR PUBLIC SERVER tok_a;
DROP USER MAPPING FOR PUBLIC SERVER tok_lost;
DROP SERVER tok_a;
DROP SERVER tok_lost;
