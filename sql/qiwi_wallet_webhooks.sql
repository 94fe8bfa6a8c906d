-- Wallet webhooks: the hash vectors of qiwi-api.md §4 and §9 (negatives
-- included) under the amount rule (a JSON number signed without trailing
-- zeros: 1.00 and 1 both as "1"), missing fields, and the merchant's key.

-- ---------- qiwi_wallet_verify_webhook ----------

-- the documents' key; §4's body (account +79161112233) and §9's (+79165238345)
CREATE TEMP TABLE hook_vectors (name text, amount text, account text, hash text);
INSERT INTO hook_vectors VALUES
	('§4', '1', '+79161112233', 'f05c4e7bdf00620205d47696d77f924bfd3ba4d02b0398ac8a626e737dc27243'),
	('§4', '1.00', '+79161112233', 'f05c4e7bdf00620205d47696d77f924bfd3ba4d02b0398ac8a626e737dc27243'),
	('§9', '1', '+79165238345', '76687ffe5c516c793faa46fafba0994e7ca7a6d735966e0e0c0b65eaa43bdca0'),
	('§9', '1.00', '+79165238345', '76687ffe5c516c793faa46fafba0994e7ca7a6d735966e0e0c0b65eaa43bdca0'),
	-- the string "1.00" signed: not how QIWI signs the number
	('§4 signed as 1.00', '1', '+79161112233', 'ac170d13c9141ec3c4b241d65018cf68d70f0a4c20fb11232611d45f45e38a0a'),
	('§4 signed as 1.00', '1.00', '+79161112233', 'ac170d13c9141ec3c4b241d65018cf68d70f0a4c20fb11232611d45f45e38a0a'),
	-- keyed with the key's base64 text, not its bytes
	('§4 raw key', '1', '+79161112233', '4856e3d5f359977314bc5a17c0c4e4cb1aeeafb977c6e216e945dbd62933f773'),
	('§4 raw key', '1.00', '+79161112233', '4856e3d5f359977314bc5a17c0c4e4cb1aeeafb977c6e216e945dbd62933f773'),
	-- 1.5 signed as "1.5" (1.50 in the body means the same), never "1.50"
	('1.5', '1.5', '+79161112233', 'd424b498d4e08af7c0480fab13020c95e0e377207631dfac93eebb500ba13796'),
	('1.5', '1.50', '+79161112233', 'd424b498d4e08af7c0480fab13020c95e0e377207631dfac93eebb500ba13796'),
	('1.5 signed as 1.50', '1.50', '+79161112233', '2049cf8b335b8b41c0f3911ebfe14626298ae619649da797148db47513d110cb');
CREATE TEMP VIEW hook_bodies AS
SELECT name, amount, (format('{"messageId": "7814c49d-2d29-4b14-b2dc-36b377c76156", "hookId": "5e2027d1-f5f3-4ad1-b409-058b8b8a8c22",
	"payment": {"txnId": "13353941550", "date": "2019-03-28T16:46:28+03:00", "type": "IN", "status": "SUCCESS",
	"errorCode": "0", "personId": 78000008000, "account": "%s", "comment": "", "provider": 7,
	"sum": {"amount": %s, "currency": 643}, "commission": {"amount": 0, "currency": 643},
	"total": {"amount": %s, "currency": 643}, "signFields": "sum.currency,sum.amount,type,account,txnId"},
	"hash": "%s", "version": "1.0.0", "test": false}', account, amount, amount, hash))::jsonb AS body
  FROM hook_vectors;
SELECT name, amount, qiwi_wallet_verify_webhook(body, 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS verified
  FROM hook_bodies;
-- jsonb keeps the amount as written: 1.00 stays 1.00, and is still signed as 1
SELECT body->'payment'->'sum'->>'amount' AS stored FROM hook_bodies WHERE name = '§4' ORDER BY amount;
-- the hash in upper case is the same hex
SELECT qiwi_wallet_verify_webhook(jsonb_set(body, '{hash}', to_jsonb(upper(body->>'hash'))),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS upper_hex
  FROM hook_bodies WHERE name = '§4' AND amount = '1';
-- another key; a key that is not base64
SELECT qiwi_wallet_verify_webhook(body, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=') AS other_key
  FROM hook_bodies WHERE name = '§4' AND amount = '1';
SELECT try($$SELECT qiwi_wallet_verify_webhook(body, 'not base64!') FROM hook_bodies WHERE name = '§4' AND amount = '1'$$);
-- a signed field missing or null is false, never signed as "null", "None" or
-- empty: each body carries the hash such a signed string would have
CREATE TEMP VIEW hook_genuine AS
SELECT body FROM hook_bodies WHERE name = '§4' AND amount = '1';
SELECT qiwi_wallet_verify_webhook(jsonb_set(body #- '{payment,account}', '{hash}',
                                  '"537f57ebc69bdbabc541c7148842b3d87a1095c2f05547136f101ab932915a73"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS missing_as_null,
       qiwi_wallet_verify_webhook(jsonb_set(jsonb_set(body, '{payment,account}', 'null'), '{hash}',
                                  '"537f57ebc69bdbabc541c7148842b3d87a1095c2f05547136f101ab932915a73"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS null_as_null,
       qiwi_wallet_verify_webhook(jsonb_set(body #- '{payment,account}', '{hash}',
                                  '"e3f27f7a05d678735a92462022a8f157e27fb0391ca9ec8e6e12e18c6e73661e"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS missing_as_none,
       qiwi_wallet_verify_webhook(jsonb_set(body #- '{payment,account}', '{hash}',
                                  '"99e4811561c858fd34875bc501cde29eb5ee1d1cbef76f3672264d43db20fb86"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS missing_as_empty
  FROM hook_genuine;
-- a field holding "|" would make the signed string ambiguous: false though the hash is of it
SELECT qiwi_wallet_verify_webhook(jsonb_set(jsonb_set(body, '{payment,account}', '"+7|916"'), '{hash}',
                                  '"62519a5d7ff54ac8bef703ee2d7530255984a05a3e0bb3a9ba7a5a20257e408e"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS account_with_bar
  FROM hook_genuine;
-- not signable: a sum that is no object (sum.amount is not sum: the hash of 7|7|... fails),
-- an account that is an object; no hash, no signFields, no payment
SELECT qiwi_wallet_verify_webhook(jsonb_set(jsonb_set(body, '{payment,sum}', '7'), '{hash}',
                                  '"6271b98bd46fc1da32b7883e4b2658c3cfc9285c3246e64e8b232eec8f0463ad"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS sum_not_object,
       qiwi_wallet_verify_webhook(jsonb_set(body, '{payment,account}', '{"a": 1}'), 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS account_object,
       qiwi_wallet_verify_webhook(body - 'hash', 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS no_hash,
       qiwi_wallet_verify_webhook(body #- '{payment,signFields}', 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS no_sign_fields,
       qiwi_wallet_verify_webhook(body - 'payment', 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS no_payment
  FROM hook_genuine;
-- signFields decides which fields and in what order (hashes of those strings: true);
-- an empty name or a field the body lacks: false
SELECT qiwi_wallet_verify_webhook(jsonb_set(jsonb_set(body, '{payment,signFields}', '"sum.currency,sum.amount,type,account"'),
                                  '{hash}', '"cc913d6e85aaa1428eb6dd5285c7521f643227e2914d4fda5d04060ca56a7fab"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS fewer_fields,
       qiwi_wallet_verify_webhook(jsonb_set(jsonb_set(body, '{payment,signFields}', '"sum.amount,sum.currency,type,account,txnId"'),
                                  '{hash}', '"92c31c846405235d20cfdff2b3b5dec60a866c0b506e2f0b88d4599d09435dcd"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS other_order,
       qiwi_wallet_verify_webhook(jsonb_set(body, '{payment,signFields}', '"sum.currency,,sum.amount,type,account,txnId"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS empty_name,
       qiwi_wallet_verify_webhook(jsonb_set(body, '{payment,signFields}', '"sum.currency,sum.amount,type,account,txnId,personId2"'),
                                  'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS unknown_field
  FROM hook_genuine;
-- not an object; NULL body
SELECT qiwi_wallet_verify_webhook('[1]', 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS array_body,
       qiwi_wallet_verify_webhook(NULL, 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=') AS null_body;
-- no key: the default merchant has none
SELECT try($$SELECT qiwi_wallet_verify_webhook(body) FROM hook_genuine$$);
-- the merchant's key (a hidden option of the user mapping)
CREATE SERVER wh_shop FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79161112233');
CREATE USER MAPPING FOR PUBLIC SERVER wh_shop OPTIONS (wallet_webhook_key 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=');
SELECT qiwi_wallet_verify_webhook(body, merchant => 'wh_shop') AS merchant_key FROM hook_genuine;
SELECT try($$SELECT qiwi_wallet_verify_webhook(body, merchant => 'no_such_shop') FROM hook_genuine$$);

-- ---------- qiwi_wallet_webhooks and its trigger ----------

SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
-- a body as QIWI sends it, signed by an independent implementation of the
-- rule (pgcrypto; the amount printed as trim_scale prints it)
CREATE FUNCTION wh_body(message text, txn text, status text, amount text, person text DEFAULT '79161112233',
	test boolean DEFAULT false, key text DEFAULT 'JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc=')
RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('messageId', message, 'hookId', 'hook-1', 'version', '1.0.0', 'test', test,
		'payment', p, 'hash', encode(hmac(convert_to(concat_ws('|', p->'sum'->>'currency', trim_scale((p->'sum'->>'amount')::numeric),
		  p->>'type', p->>'account', p->>'txnId'), 'UTF8'), decode(key, 'base64'), 'sha256'), 'hex'))
	  FROM (SELECT format('{"txnId": "%s", "date": "2026-12-01T10:00:00+03:00", "type": "IN", "status": "%s", "errorCode": "0",
		"personId": %s, "account": "+79990001122", "comment": "order 7", "provider": 99,
		"sum": {"amount": %s, "currency": 643}, "commission": {"amount": 0, "currency": 643},
		"total": {"amount": %s, "currency": 643}, "signFields": "sum.currency,sum.amount,type,account,txnId"}',
		txn, status, person, amount, amount)::jsonb AS p) x
$$;
-- genuine: a WAITING payment, the same message again, then SUCCESS, a WAITING
-- after it, and SUCCESS again under another messageId
INSERT INTO qiwi_wallet_webhooks (body) VALUES (wh_body('m-1', '1001', 'WAITING', '150.50'));
INSERT INTO qiwi_wallet_webhooks (body) VALUES (wh_body('m-1', '1001', 'WAITING', '150.50'));
INSERT INTO qiwi_wallet_webhooks (body) VALUES (wh_body('m-2', '1001', 'SUCCESS', '150.50'));
INSERT INTO qiwi_wallet_webhooks (body) VALUES (wh_body('m-3', '1001', 'WAITING', '150.50'));
INSERT INTO qiwi_wallet_webhooks (body) VALUES (wh_body('m-4', '1001', 'SUCCESS', '150.50'));
-- another payment, amount 1.00 as written (signed as 1)
INSERT INTO qiwi_wallet_webhooks (body) VALUES (wh_body('m-5', '1002', 'SUCCESS', '1.00'));
-- forged: the amount changed after signing; signed with another key; another wallet's
INSERT INTO qiwi_wallet_webhooks (body)
	VALUES (jsonb_set(wh_body('m-6', '1003', 'SUCCESS', '1.00'), '{payment,sum,amount}', '1000'));
INSERT INTO qiwi_wallet_webhooks (body)
	VALUES (wh_body('m-7', '1004', 'SUCCESS', '5', key => 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='));
INSERT INTO qiwi_wallet_webhooks (body) VALUES (wh_body('m-8', '1005', 'SUCCESS', '5', person => '79000000000'));
-- QIWI's empty test notification (hooks/test): stored as a test, no error;
-- a signed test: verified, never recorded as a payment
INSERT INTO qiwi_wallet_webhooks (body)
	VALUES ('{"hookId": "hook-1", "messageId": "m-9", "test": true, "version": "1.0.0"}');
INSERT INTO qiwi_wallet_webhooks (body) VALUES (wh_body('m-10', '1006', 'SUCCESS', '5', test => true));
-- no body; a body that is no object; a payment that cannot be read
INSERT INTO qiwi_wallet_webhooks (body) VALUES (NULL), ('[1]');
INSERT INTO qiwi_wallet_webhooks (body)
	VALUES (wh_body('m-11', '1007', 'PAID', '5'));
SELECT id, message_id, txn_id, test, merchant, verified, applied, error FROM qiwi_wallet_webhooks ORDER BY id;
SELECT merchant, txn_id, type, status, amount, currency, provider, account, comment, source, item->>'status' AS item_status
  FROM qiwi_wallet_payments WHERE merchant = 'wh_shop' ORDER BY txn_id;
-- 'reject' fails the INSERT of a forgery, and stores the empty test
CREATE TABLE wh_strict (LIKE qiwi_wallet_webhooks INCLUDING DEFAULTS INCLUDING GENERATED);
CREATE TRIGGER strict BEFORE INSERT ON wh_strict FOR EACH ROW EXECUTE FUNCTION qiwi_wallet_webhook_verify('reject');
SELECT try($$INSERT INTO wh_strict (body) VALUES (jsonb_set(wh_body('m-12', '1008', 'SUCCESS', '1.00'), '{payment,sum,amount}', '2'))$$);
INSERT INTO wh_strict (body) VALUES ('{"hookId": "hook-1", "messageId": "m-13", "test": true}');
SELECT message_id, test, verified, applied, error FROM wh_strict;
DROP TABLE wh_strict;
-- the key never shows
SELECT count(*) AS key_shown FROM qiwi_wallet_webhooks WHERE error LIKE '%JcyVhj%';

-- ---------- the hook at QIWI: register, read, test, the key, delete ----------

SELECT sandbox('POST', '/sandbox/wallet/reset') IS NOT NULL AS reset;
SELECT sandbox('POST', '/sandbox/wallet/wallets',
	'{"number": "79161112233", "token": "wallet-token-wh-0001", "balance": "10.00"}')->>'number' AS wallet;
DO $$ BEGIN
	EXECUTE format('ALTER SERVER wh_shop OPTIONS (ADD wallet_api_url %L)', current_setting('qiwi_test.sandbox_url'));
END $$;
ALTER USER MAPPING FOR PUBLIC SERVER wh_shop OPTIONS (ADD wallet_token 'wallet-token-wh-0001');
CREATE FUNCTION wh_requests() RETURNS int LANGUAGE sql
AS $$ SELECT (sandbox('GET', '/sandbox/wallet/stats')->>'payment-notifier')::int $$;
-- no hook yet: NULL, nothing to delete; the test and the key need one
SELECT qiwi_wallet_webhook('wh_shop') IS NULL AS no_hook, qiwi_wallet_webhook_delete('wh_shop') AS deleted;
SELECT try($$SELECT qiwi_wallet_webhook_test('wh_shop')$$);
SELECT try($$SELECT qiwi_wallet_webhook_fetch_key(merchant => 'wh_shop')$$);
-- bad arguments, refused before any request
SELECT wh_requests() AS requests_before \gset
SELECT try($$SELECT qiwi_wallet_webhook_register(NULL, merchant => 'wh_shop')$$);
SELECT try($$SELECT qiwi_wallet_webhook_register('https://shop.example/' || repeat('a', 80), merchant => 'wh_shop')$$);
SELECT try($$SELECT qiwi_wallet_webhook_register('ftp://shop.example/hook', merchant => 'wh_shop')$$);
SELECT try($$SELECT qiwi_wallet_webhook_register('shop.example/hook', merchant => 'wh_shop')$$);
SELECT try($$SELECT qiwi_wallet_webhook_register('https://shop.example/hook', 'ALL', 'wh_shop')$$);
SELECT try($$SELECT qiwi_wallet_webhook_register('https://shop.example/hook', NULL, 'wh_shop')$$);
SELECT try($$SELECT qiwi_wallet_webhook_register('https://shop.example/hook', merchant => 'no_such_shop')$$);
SELECT wh_requests() - :requests_before AS requests_sent;
-- 100 characters pass; a query string in the URL is escaped as one parameter
SELECT length(hook_id) AS id_length, url, txn_type
  FROM qiwi_wallet_webhook_register('https://shop.example/qiwi?a=1&b=' || repeat('b', 68), 'IN', 'wh_shop');
SELECT length(url) AS url_length, txn_type FROM qiwi_wallet_webhook('wh_shop');
-- a second hook: QIWI's 422, with the way out
SELECT try($$SELECT qiwi_wallet_webhook_register('https://shop.example/other', merchant => 'wh_shop')$$);
-- the key: fetched into the user mapping (never returned), then verifying
SELECT sandbox('POST', '/sandbox/wallet/wallets/79161112233/hook-key',
	'{"key": "c2FuZGJveC1ob29rLWtleS1mb3ItdGhlLXRlc3RzLTAwMQ=="}')->>'txnType' AS key_set;
SELECT qiwi_wallet_webhook_fetch_key(merchant => 'wh_shop');
SELECT qiwi_wallet_verify_webhook(wh_body('m-20', '1020', 'SUCCESS', '3', key => 'c2FuZGJveC1ob29rLWtleS1mb3ItdGhlLXRlc3RzLTAwMQ=='),
	merchant => 'wh_shop') AS fetched_key_verifies;
-- rotated: QIWI's new key replaces it
SELECT qiwi_wallet_webhook_fetch_key(true, 'wh_shop');
SELECT qiwi_wallet_verify_webhook(wh_body('m-21', '1021', 'SUCCESS', '3', key => 'c2FuZGJveC1ob29rLWtleS1mb3ItdGhlLXRlc3RzLTAwMQ=='),
	merchant => 'wh_shop') AS old_key_verifies;
-- only a role that may ALTER the user mapping stores a key: refused before any request
CREATE ROLE regress_wh_plain;
GRANT EXECUTE ON FUNCTION qiwi_wallet_webhook_fetch_key(boolean, text) TO regress_wh_plain;
GRANT USAGE ON FOREIGN SERVER wh_shop TO regress_wh_plain;
SELECT wh_requests() AS requests_before \gset
SET ROLE regress_wh_plain;
SELECT try($$SELECT qiwi_wallet_webhook_fetch_key(true, 'wh_shop')$$);
RESET ROLE;
SELECT wh_requests() - :requests_before AS requests_sent;
-- PUBLIC runs none of the calls that send the wallet's token
SELECT p.proname, has_function_privilege('regress_wh_plain', p.oid, 'EXECUTE') AS plain_may
  FROM pg_proc p WHERE p.proname LIKE 'qiwi_wallet_webhook%' ORDER BY 1;
DROP OWNED BY regress_wh_plain;
DROP ROLE regress_wh_plain;
-- the test: QIWI sends it (an empty body: no payment, no hash)
SELECT qiwi_wallet_webhook_test('wh_shop');
SELECT d->'body'->'test' AS test, d->'body' ? 'hash' AS hashed, d->'body' ? 'payment' AS payment
  FROM jsonb_array_elements(sandbox('GET', '/sandbox/wallet/webhooks')) d;
-- deleted: then none
SELECT qiwi_wallet_webhook_delete('wh_shop') AS deleted, qiwi_wallet_webhook('wh_shop') IS NULL AS no_hook;
SELECT (sandbox('GET', '/sandbox/wallet/wallets/79161112233')->'hook') AS hook_at_qiwi;
-- over HTTPS: the sandbox's certificate is refused until its CA is given; then the same calls
DO $$ BEGIN
	EXECUTE format('ALTER SERVER wh_shop OPTIONS (SET wallet_api_url %L)', current_setting('qiwi_test.https_url'));
END $$;
SELECT try($$SELECT qiwi_wallet_webhook('wh_shop')$$);
SELECT set_config('qiwi.ca_file', current_setting('qiwi_test.ca_file'), false) IS NOT NULL AS ca_set;
SELECT sandbox('POST', '/sandbox/wallet/reset', NULL, current_setting('qiwi_test.https_url')) IS NOT NULL AS tls_reset;
SELECT sandbox('POST', '/sandbox/wallet/wallets', '{"number": "79161112233", "token": "wallet-token-wh-0001"}',
               current_setting('qiwi_test.https_url'))->>'number' AS tls_wallet;
SELECT url, txn_type FROM qiwi_wallet_webhook_register('https://shop.example/tls', 'OUT', 'wh_shop');
SELECT url, txn_type FROM qiwi_wallet_webhook('wh_shop');
SELECT qiwi_wallet_webhook_delete('wh_shop') AS deleted_over_tls;
RESET qiwi.ca_file;
