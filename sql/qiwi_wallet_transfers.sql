-- Wallet transfers against the sandbox: every argument refused before
-- anything is sent, a transfer recorded and the money moved at the
-- sandbox, client ids (generated, given, reused, not increasing), QIWI's
-- refusals (insufficient funds, limits) with their codes, recorded REFUSED
-- beside their committed intents, a rolled-back call's intent kept, a
-- read-only and a REPEATABLE READ transaction refused, a lock the intent
-- would wait for forever timed out; a transfer over HTTPS.
SELECT sandbox('POST', '/sandbox/wallet/reset', '{}');
SELECT sandbox('POST', '/sandbox/wallet/wallets',
               '{"number": "79110000001", "token": "wx-token-a", "balance": "1000.00"}')->>'balance' AS balance_a;
SELECT sandbox('POST', '/sandbox/wallet/wallets',
               '{"number": "79110000002", "token": "wx-token-b"}')->>'balance' AS balance_b;

-- Transfers the sandbox has been sent so far, and a wallet's balance there
CREATE FUNCTION transfer_requests() RETURNS int LANGUAGE sql
AS $$ SELECT coalesce((sandbox('GET', '/sandbox/wallet/stats')->>'sinap')::int, 0) $$;
CREATE FUNCTION wallet_balance(number text) RETURNS numeric LANGUAGE sql
AS $$ SELECT (sandbox('GET', '/sandbox/wallet/wallets/' || number)->>'balance')::numeric $$;

DO $$ BEGIN
	EXECUTE format('CREATE SERVER wx_a FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79110000001', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER wx_nokey FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79110000001', current_setting('qiwi_test.sandbox_url'));
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER wx_a OPTIONS (wallet_token 'wx-token-a');

-- ---------- every argument refused before anything is sent ----------

SELECT transfer_requests() AS before \gset
SELECT try($$SELECT qiwi_wallet_transfer(NULL, 10.00, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('7911000000x', 10.00, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('+7911', 10.00, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('7911000000212345', 10.00, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('+79110000001', 10.00, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', NULL, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 0, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', -5, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 'NaN', merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 10.001, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 0.99, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 99999.01, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 10.00, repeat('c', 256), merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 10.00, client_txn_id => '12a', merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 10.00, client_txn_id => '0123', merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 10.00, client_txn_id => repeat('9', 21), merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 10.00, merchant => 'nobody')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 10.00, merchant => 'wx_nokey')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 10.00)$$);
SELECT try($$SELECT qiwi_wallet_transfer_after_commit('79110000002', 10.001, merchant => 'wx_a')$$);
BEGIN READ ONLY;
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 10.00, merchant => 'wx_a')$$);
ROLLBACK;
SELECT transfer_requests() - :before AS sent, count(*) AS recorded FROM qiwi_wallet_transfers;

-- ---------- a transfer ----------

SELECT client_txn_id ~ '^[0-9]{16}$' AS generated_id, to_wallet, amount, currency, comment, status,
       txn_id > 0 AS has_txn_id, error_code, error
  FROM qiwi_wallet_transfer('+79110000002', 100.50, 'the first', merchant => 'wx_a');
SELECT wallet_balance('79110000001') AS balance_a, wallet_balance('79110000002') AS balance_b;
SELECT merchant, to_wallet, amount, currency, comment, status, txn_id > 0 AS has_txn_id,
       sent_at IS NOT NULL AS sent, last_error
  FROM qiwi_wallet_transfers;
SELECT e.old_status, e.new_status, e.source
  FROM qiwi_wallet_transfer_events e ORDER BY e.id;
-- QIWI's history has it under the client id
SELECT h.type, h.status, h.amount, h.account
  FROM qiwi_wallet_transfers t,
       qiwi_wallet_history(now() - interval '1 hour', now() + interval '1 hour', merchant => 'wx_a') h
 WHERE h.trm_txn_id = t.client_txn_id;

-- ---------- client ids ----------

-- a given id: digits, above every earlier one, never used before
SELECT client_txn_id, status FROM qiwi_wallet_transfer('79110000002', 1.00, NULL, '99000000000000000', 'wx_a');
SELECT transfer_requests() AS before \gset
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 1.00, NULL, '99000000000000000', 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 1.00, NULL, '98999999999999999', 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 1.00, NULL, '5', 'wx_a')$$);
SELECT transfer_requests() - :before AS sent;
-- the next generated one is above the given one: the table's greatest + 1
SELECT client_txn_id, status FROM qiwi_wallet_transfer('79110000002', 1.00, merchant => 'wx_a');

-- ---------- QIWI's refusals, with their codes ----------

SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 5000.00, merchant => 'wx_a')$$);
SELECT sandbox('POST', '/sandbox/wallet/limits', '{"minAmount": "5.00", "maxAmount": "50.00"}')->>'minAmount' AS min_amount;
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 2.00, merchant => 'wx_a')$$);
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 60.00, merchant => 'wx_a')$$);
SELECT sandbox('POST', '/sandbox/wallet/limits', '{"minAmount": "1.00", "maxAmount": "99999.00"}')->>'minAmount' AS min_amount;
-- a refused transfer's intent was committed before its POST: QIWI's
-- refusal is committed beside it, REFUSED, with its reason; nothing moved
SELECT status, amount, error, last_error LIKE 'could not transfer %: QIWI rejected the request: %' AS reason
  FROM qiwi_wallet_transfers WHERE status = 'REFUSED' ORDER BY client_txn_id::numeric;
SELECT e.old_status, e.new_status, e.source
  FROM qiwi_wallet_transfer_events e JOIN qiwi_wallet_transfers t USING (merchant, client_txn_id)
 WHERE t.amount = 5000.00 ORDER BY e.id;
SELECT count(*) AS recorded, sum(amount) AS total FROM qiwi_wallet_transfers WHERE status <> 'REFUSED';
SELECT wallet_balance('79110000001') AS balance_a;

-- a transfer whose transaction rolls back was made all the same (the
-- function says so), and its intent, committed before the POST, stays
-- 'sending' for the worker to settle from the history; its id again is
-- refused before anything is sent
BEGIN;
SELECT client_txn_id, status FROM qiwi_wallet_transfer('79110000002', 3.00, NULL, '99000000000000100', 'wx_a');
ROLLBACK;
SELECT client_txn_id, amount, status, sent_at FROM qiwi_wallet_transfers WHERE client_txn_id = '99000000000000100';
SELECT transfer_requests() AS before \gset
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 4.00, NULL, '99000000000000100', 'wx_a')$$);
SELECT transfer_requests() - :before AS sent, wallet_balance('79110000001') AS balance_a;

-- its intent is committed apart: a transaction whose snapshot could not see
-- it is refused before anything is recorded or sent
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 4.00, merchant => 'wx_a')$$);
ROLLBACK;
-- and one holding a lock the intent's worker needs: it waits no longer
-- than the caller's qiwi.timeout, then nothing is sent
BEGIN;
LOCK TABLE qiwi_wallet_transfers IN SHARE MODE;
SET LOCAL qiwi.timeout = 200;
SELECT try($$SELECT qiwi_wallet_transfer('79110000002', 4.00, merchant => 'wx_a')$$);
ROLLBACK;
SELECT transfer_requests() - :before AS sent, count(*) AS recorded FROM qiwi_wallet_transfers;

-- ---------- over HTTPS ----------

-- the HTTPS sandbox has wallets of its own; its certificate is verified
-- against qiwi_test.ca_file, as every other
SELECT set_config('qiwi.ca_file', current_setting('qiwi_test.ca_file'), false) IS NOT NULL AS ca_set;
SELECT sandbox('POST', '/sandbox/wallet/wallets', '{"number": "79110000011", "token": "wx-token-tls", "balance": "20.00"}',
               current_setting('qiwi_test.https_url'))->>'balance' AS tls_balance;
SELECT sandbox('POST', '/sandbox/wallet/wallets', '{"number": "79110000012", "token": "wx-token-tls-b"}',
               current_setting('qiwi_test.https_url'))->>'balance' AS tls_balance_b;
DO $$ BEGIN
	EXECUTE format('CREATE SERVER wx_tls FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79110000011', current_setting('qiwi_test.https_url'));
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER wx_tls OPTIONS (wallet_token 'wx-token-tls');
SELECT to_wallet, amount, comment, status, txn_id > 0 AS has_txn_id
  FROM qiwi_wallet_transfer('79110000012', 7.50, 'over TLS', merchant => 'wx_tls');
SELECT sandbox('GET', '/sandbox/wallet/wallets/79110000011', NULL, current_setting('qiwi_test.https_url'))->>'balance' AS tls_balance,
       sandbox('GET', '/sandbox/wallet/wallets/79110000012', NULL, current_setting('qiwi_test.https_url'))->>'balance' AS tls_balance_b;
SELECT amount, status, sent_at IS NOT NULL AS sent FROM qiwi_wallet_transfers WHERE merchant = 'wx_tls';
RESET qiwi.ca_file;

-- ---------- a transfer whose record was lost ----------

-- the history, as the worker's sync keeps it, has every transfer wx_a made;
-- qiwi_wallet_transfers_unrecorded lists one no row records (its intent lost
-- with an asynchronous standby's promotion, or another client's): here the
-- rolled-back call's intent, deleted
DELETE FROM qiwi_wallet_transfers WHERE client_txn_id = '99000000000000100';
INSERT INTO qiwi_wallet_payments (merchant, txn_id, type, trm_txn_id, date, status, amount, currency,
                                  provider, account, comment, item, source)
SELECT 'wx_a', txn_id, type, trm_txn_id, date, status, amount, currency, provider, account, comment, item, 'call'
  FROM qiwi_wallet_history(now() - interval '1 day', operation => 'OUT', merchant => 'wx_a');
SELECT count(*) > 1 AS transfers_out FROM qiwi_wallet_payments WHERE merchant = 'wx_a' AND type = 'OUT';
SELECT merchant, client_txn_id, amount, status FROM qiwi_wallet_transfers_unrecorded ORDER BY client_txn_id;
