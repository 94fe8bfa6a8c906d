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
