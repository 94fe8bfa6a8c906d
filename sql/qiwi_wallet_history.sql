-- The Wallet API's reading functions against the sandbox: the history in
-- pages and 90-day windows (each item once, newest first), an empty
-- wallet, one transaction, totals, balances; every argument refused before
-- anything is sent; QIWI's errors; the same over HTTPS.
SELECT sandbox('POST', '/sandbox/wallet/reset', '{}');
SELECT sandbox('POST', '/sandbox/wallet/wallets',
               '{"number": "79001112233", "token": "wallet-token-a", "balance": "500.00"}')->>'number' AS wallet_a;
SELECT sandbox('POST', '/sandbox/wallet/wallets',
               '{"number": "79004445566", "token": "wallet-token-e"}')->>'number' AS wallet_empty;
SELECT sandbox('POST', '/sandbox/wallet/wallets',
               '{"number": "79007778899", "token": "wallet-token-p", "emptyHistory": "page"}')->>'number' AS wallet_page;

-- History requests the sandbox has answered so far
CREATE FUNCTION history_requests() RETURNS int LANGUAGE sql
AS $$ SELECT coalesce((sandbox('GET', '/sandbox/wallet/stats')->>'payment-history')::int, 0) $$;
-- Wallet API requests of any kind the sandbox has answered so far
CREATE FUNCTION wallet_requests() RETURNS int LANGUAGE sql
AS $$ SELECT coalesce(sum(value::int), 0)::int FROM jsonb_each_text(sandbox('GET', '/sandbox/wallet/stats')) WHERE key <> 'blocked' $$;
-- A time as the sandbox's control takes it
CREATE FUNCTION sandbox_date(t timestamptz) RETURNS text LANGUAGE sql
AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00' $$;

DO $$ BEGIN
	EXECUTE format('CREATE SERVER w1 FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79001112233', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER w_empty FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79004445566', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER w_page FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79007778899', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER w_tls FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79001112233', current_setting('qiwi_test.https_url'));
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER w1 OPTIONS (wallet_token 'wallet-token-a');
CREATE USER MAPPING FOR PUBLIC SERVER w_empty OPTIONS (wallet_token 'wallet-token-e');
CREATE USER MAPPING FOR PUBLIC SERVER w_page OPTIONS (wallet_token 'wallet-token-p');
CREATE USER MAPPING FOR PUBLIC SERVER w_tls OPTIONS (wallet_token 'wallet-token-a');

-- ---------- the history: pages and windows ----------

-- 130 payments over the last 200 days: three windows, pages of 50
SELECT sandbox('POST', '/sandbox/wallet/wallets/79001112233/payments', '{"count": 130, "days": 200}')->>'added' AS added;
SELECT clock_timestamp() AS t0 \gset
SELECT history_requests() AS before \gset
CREATE TEMP TABLE h AS
SELECT row_number() OVER () AS n, t.* FROM qiwi_wallet_history(:'t0'::timestamptz - interval '201 days', :'t0', merchant => 'w1') t;
SELECT count(*) AS items, count(DISTINCT txn_id) AS distinct_items,
       bool_and(type = 'IN' AND status = 'SUCCESS' AND amount = 1.00 AND currency = 'RUB') AS as_filled
  FROM h;
-- newest first: each item older than the one before it
SELECT bool_and(a.date > b.date OR (a.date = b.date AND a.txn_id > b.txn_id)) AS newest_first
  FROM h a JOIN h b ON b.n = a.n + 1;
-- one request per page of 50 in each 90-day window (a window with nothing: one 404)
WITH w AS (
	SELECT g AS win, count(h.n) AS items
	  FROM generate_series(0, 2) g
	  LEFT JOIN h ON floor(extract(epoch FROM date_trunc('second', :'t0'::timestamptz) - h.date)
	                       / (90 * 86400 + 1)) = g
	 GROUP BY g)
SELECT history_requests() - :before = sum(greatest(1, ceil(items / 50.0))) AS one_request_a_page,
       sum(items) AS items_in_windows
  FROM w;

-- the same read with until's fractions and since inside a second: nothing more, nothing less
SELECT count(*) AS items_again
  FROM qiwi_wallet_history(:'t0'::timestamptz - interval '201 days', :'t0'::timestamptz + interval '0.5 s', merchant => 'w1');

-- a stream stops asking once the rows it needs are read
SELECT history_requests() AS before \gset
SELECT (qiwi_wallet_history(:'t0'::timestamptz - interval '201 days', :'t0', merchant => 'w1')).txn_id LIMIT 3;
SELECT history_requests() - :before AS requests_for_three_rows;

-- an item on a window's edge comes once: payments 90 days and 90 days + 1 s before until
SELECT sandbox('POST', '/sandbox/wallet/wallets/79001112233/payments',
               format('{"amount": "7.00", "type": "OUT", "account": "+79990000001", "date": "%s"}',
                      sandbox_date(date_trunc('second', :'t0'::timestamptz) - interval '90 days')))->>'type' AS edge_1;
SELECT sandbox('POST', '/sandbox/wallet/wallets/79001112233/payments',
               format('{"amount": "3.25", "type": "OUT", "account": "+79990000002", "date": "%s"}',
                      sandbox_date(date_trunc('second', :'t0'::timestamptz) - interval '90 days 1 second')))->>'type' AS edge_2;
SELECT txn_id, amount, account, status
  FROM qiwi_wallet_history(:'t0'::timestamptz - interval '201 days', :'t0', 'OUT', merchant => 'w1');
SELECT count(*) AS all_items, count(DISTINCT txn_id) AS distinct_items
  FROM qiwi_wallet_history(:'t0'::timestamptz - interval '201 days', :'t0', merchant => 'w1');

-- sources: sent as sources[0], sources[1], ...; none of these payments is from a card
SELECT count(*) AS from_wallet_rub
  FROM qiwi_wallet_history(:'t0'::timestamptz - interval '30 days', :'t0', 'IN', ARRAY['QW_RUB', 'QW_USD'], 'w1');
SELECT count(*) AS from_card
  FROM qiwi_wallet_history(:'t0'::timestamptz - interval '30 days', :'t0', 'IN', ARRAY['CARD'], 'w1');

-- ---------- empty wallets ----------

-- QIWI answers 404 for nothing found: an empty result, one request per window
SELECT history_requests() AS before \gset
SELECT count(*) AS items FROM qiwi_wallet_history(now() - interval '100 days', merchant => 'w_empty');
SELECT history_requests() - :before AS requests_two_windows;
-- and a wallet answering an empty page instead
SELECT count(*) AS items FROM qiwi_wallet_history(now() - interval '100 days', merchant => 'w_page');
SELECT count(*) AS totals FROM qiwi_wallet_totals(now() - interval '1 day', merchant => 'w_empty');

-- ---------- a transaction, totals, balances ----------

SELECT (t.txn_id, t.trm_txn_id, t.date, t.type, t.status, t.amount, t.currency, t.commission, t.total,
        t.provider, t.account, t.comment, t.error_code, t.error)
       IS NOT DISTINCT FROM
       (h.txn_id, h.trm_txn_id, h.date, h.type, h.status, h.amount, h.currency, h.commission, h.total,
        h.provider, h.account, h.comment, h.error_code, h.error) AS same_as_in_history
  FROM h, qiwi_wallet_transaction(h.txn_id, merchant => 'w1') t
 WHERE h.n = 7;
SELECT txn_id = (SELECT txn_id FROM h WHERE n = 7) AS found, type, item ? 'features' AS whole_item
  FROM qiwi_wallet_transaction((SELECT txn_id FROM h WHERE n = 7), 'IN', 'w1');
SELECT try($$SELECT qiwi_wallet_transaction(1, merchant => 'w1')$$);
SELECT try($$SELECT qiwi_wallet_transaction((SELECT txn_id FROM h WHERE n = 7), 'OUT', 'w1')$$);

-- 130 + 1 payments in, 7.00 + 3.25 out; over three windows
SELECT * FROM qiwi_wallet_totals(:'t0'::timestamptz - interval '201 days', :'t0', 'w1');
-- the edge payments are in one window each
SELECT * FROM qiwi_wallet_totals(date_trunc('second', :'t0'::timestamptz) - interval '90 days', :'t0', 'w1');
SELECT * FROM qiwi_wallet_totals(:'t0'::timestamptz - interval '200 days', date_trunc('second', :'t0'::timestamptz) - interval '90 days 1 second', 'w1')
 WHERE outgoing > 0;

SELECT * FROM qiwi_wallet_balances('w1') ORDER BY alias;

-- ---------- every argument refused, nothing sent ----------

SELECT wallet_requests() AS before \gset
SELECT try($$SELECT * FROM qiwi_wallet_history(NULL, merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', NULL, merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history('-infinity', merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', 'infinity', merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now(), now() - interval '1 day', merchant => 'w1')$$, false);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', now() - interval '1 day', merchant => 'w1')$$, false);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', operation => NULL, merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', operation => 'in', merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', sources => ARRAY['QW_GBP'], merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', sources => ARRAY[NULL], merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', sources => '{}', merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', sources => '{{CARD}}', merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', merchant => 'nobody')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', merchant => '')$$);
SELECT try($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day')$$);
SELECT try($$SELECT qiwi_wallet_transaction(NULL, merchant => 'w1')$$);
SELECT try($$SELECT qiwi_wallet_transaction(0, merchant => 'w1')$$);
SELECT try($$SELECT qiwi_wallet_transaction(-5, merchant => 'w1')$$);
SELECT try($$SELECT qiwi_wallet_transaction(5, 'QIWI_CARD', 'w1')$$);
SELECT try($$SELECT qiwi_wallet_transaction(5, merchant => 'nobody')$$);
SELECT try($$SELECT * FROM qiwi_wallet_totals(NULL, merchant => 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_totals(now(), now() - interval '1 second', 'w1')$$, false);
SELECT try($$SELECT * FROM qiwi_wallet_totals(now() - interval '1 day', 'infinity', 'w1')$$);
SELECT try($$SELECT * FROM qiwi_wallet_totals(now() - interval '1 day', merchant => 'nobody')$$);
SELECT try($$SELECT * FROM qiwi_wallet_balances('nobody')$$);
SELECT try($$SELECT * FROM qiwi_wallet_balances()$$);
SELECT wallet_requests() - :before AS requests_sent;

-- ---------- QIWI's errors ----------

SELECT sandbox('POST', '/sandbox/wallet/wallets',
               '{"number": "79002223344", "token": "wallet-token-s", "scopes": ["balance"]}')->>'number' AS wallet_scoped;
SELECT sandbox('POST', '/sandbox/wallet/wallets',
               '{"number": "79005556677", "token": "wallet-token-l"}')->>'number' AS wallet_limited;
DO $$ BEGIN
	EXECUTE format('CREATE SERVER w_bad FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79001112233', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER w_old FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L, wallet_token_issued %L)',
	               '79001112233', current_setting('qiwi_test.sandbox_url'), '2026-01-10');
	EXECUTE format('CREATE SERVER w_other FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79004445566', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER w_scoped FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79002223344', current_setting('qiwi_test.sandbox_url'));
	EXECUTE format('CREATE SERVER w_lim FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number %L, wallet_api_url %L)',
	               '79005556677', current_setting('qiwi_test.sandbox_url'));
END $$;
CREATE USER MAPPING FOR PUBLIC SERVER w_bad OPTIONS (wallet_token 'not-the-token');
CREATE USER MAPPING FOR PUBLIC SERVER w_old OPTIONS (wallet_token 'not-the-token');
CREATE USER MAPPING FOR PUBLIC SERVER w_other OPTIONS (wallet_token 'wallet-token-a');
CREATE USER MAPPING FOR PUBLIC SERVER w_scoped OPTIONS (wallet_token 'wallet-token-s');
CREATE USER MAPPING FOR PUBLIC SERVER w_lim OPTIONS (wallet_token 'wallet-token-l');

-- Run a statement; its error with its hint, times masked
CREATE FUNCTION try_hint(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
	msg text;
	detail text;
	hint text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
	                        hint = PG_EXCEPTION_HINT;
	RETURN regexp_replace(regexp_replace(regexp_replace(state || ': ' || msg || ' | ' || detail || ' | ' || hint,
	                                                    'traceId "[0-9a-f]+"', 'traceId "…"'),
	                                     '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d', '<time>', 'g'),
	                      'in \d+ ms', 'in <n> ms', 'g');
END $$;

-- 401: the token may have expired, and when it did if wallet_token_issued says
SELECT try_hint($$SELECT * FROM qiwi_wallet_balances('w_bad')$$);
SELECT try_hint($$SELECT * FROM qiwi_wallet_balances('w_old')$$);
-- 403: a wallet number that is not the token's, or a scope the token lacks
SELECT try_hint($$SELECT * FROM qiwi_wallet_balances('w_other')$$);
SELECT try_hint($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', merchant => 'w_scoped')$$);
SELECT count(*) AS accounts FROM qiwi_wallet_balances('w_scoped');

-- answers that are not what QIWI documents: QKBAD, naming what is wrong
SELECT sandbox('POST', '/sandbox/faults', '{"api": "wallet", "times": 1, "status": 200, "body": "{\"data\": [], \"nextTxnId\": 5, \"nextTxnDate\": null}"}')->>'ok' AS fault_set;
SELECT try($$SELECT count(*) FROM qiwi_wallet_history(now() - interval '1 day', merchant => 'w1')$$);
-- but an item that cannot be read is that item's problem, not its page's:
-- a WARNING naming it, and the page's other rows (none here)
SELECT sandbox('POST', '/sandbox/faults', '{"api": "wallet", "times": 1, "status": 200, "body": "{\"data\": [{\"txnId\": 1}]}"}')->>'ok' AS fault_set;
SELECT count(*) AS rows FROM qiwi_wallet_history(now() - interval '1 day', merchant => 'w1');
SELECT sandbox('POST', '/sandbox/faults', '{"api": "wallet", "times": 1, "status": 200, "body": "{\"accounts\": [1]}"}')->>'ok' AS fault_set;
SELECT try($$SELECT * FROM qiwi_wallet_balances('w1')$$);
SELECT sandbox('POST', '/sandbox/faults', '{"api": "wallet", "times": 1, "status": 200, "body": "{\"incomingTotal\": [{\"amount\": \"1\", \"currency\": 643}], \"outgoingTotal\": []}"}')->>'ok' AS fault_set;
SELECT try($$SELECT * FROM qiwi_wallet_totals(now() - interval '1 day', merchant => 'w1')$$);

-- 423: past the sandbox's limit (shortened to 2 a minute here) QIWI blocks
-- the wallet for 5 minutes: the call says until when, and every later
-- request of that wallet waits for the end, or fails at once, unsent, when
-- its deadline is earlier
SELECT sandbox('POST', '/sandbox/wallet/limits', '{"requests": 2, "windowSeconds": 60}') ? 'requests' AS limited;
SET qiwi.call_deadline = '2s';
SELECT count(*) FROM qiwi_wallet_history(now() - interval '1 day', merchant => 'w_lim');
SELECT count(*) FROM qiwi_wallet_history(now() - interval '1 day', merchant => 'w_lim');
SELECT try_hint($$SELECT * FROM qiwi_wallet_history(now() - interval '1 day', merchant => 'w_lim')$$);
SELECT wallet_requests() AS before, (sandbox('GET', '/sandbox/wallet/stats')->>'blocked')::int AS blocked_before \gset
SELECT try_hint($$SELECT * FROM qiwi_wallet_balances('w_lim')$$);
SELECT wallet_requests() - :before AS requests_sent,
       (sandbox('GET', '/sandbox/wallet/stats')->>'blocked')::int - :blocked_before AS blocked_answers;
-- another wallet is not blocked
SELECT count(*) AS accounts FROM qiwi_wallet_balances('w1');
RESET qiwi.call_deadline;
SELECT sandbox('POST', '/sandbox/wallet/limits', '{"requests": 100, "windowSeconds": 60}') ? 'requests' AS unlimited;

-- ---------- over HTTPS ----------

-- the HTTPS sandbox has wallets of its own
SELECT set_config('qiwi.ca_file', current_setting('qiwi_test.ca_file'), false) IS NOT NULL AS ca_set;
SELECT sandbox('POST', '/sandbox/wallet/wallets', '{"number": "79001112233", "token": "wallet-token-a", "balance": "10.00"}',
               current_setting('qiwi_test.https_url'))->>'number' AS tls_wallet;
SELECT sandbox('POST', '/sandbox/wallet/wallets/79001112233/payments', '{"count": 60, "days": 100}',
               current_setting('qiwi_test.https_url'))->>'added' AS added;

SELECT count(*) AS items, count(DISTINCT txn_id) AS distinct_items
  FROM qiwi_wallet_history(now() - interval '101 days', merchant => 'w_tls');
SELECT alias, amount FROM qiwi_wallet_balances('w_tls') WHERE is_default;
SELECT currency, incoming FROM qiwi_wallet_totals(now() - interval '10 days', merchant => 'w_tls');
RESET qiwi.ca_file;

-- ---------- an expired token ----------

-- 181 days on, the sandbox refuses the token (401): the hint says it may have expired
SELECT sandbox('POST', '/sandbox/wallet/clock', '{"seconds": 15638400}') ? 'now' AS clock_moved;
SELECT try_hint($$SELECT * FROM qiwi_wallet_balances('w1')$$);
SELECT sandbox('POST', '/sandbox/wallet/clock', '{"seconds": -15638400}') ? 'now' AS clock_back;
