-- qiwi_kassa, the QIWI Wallet API (1.4): a wallet's balances, its payment
-- history (a streaming function and a synced table), transfers that are
-- never doubled, and webhooks verified in the database.

CREATE TYPE qiwi_wallet_transaction AS (
	txn_id bigint,
	trm_txn_id text,
	date timestamptz,
	type text,
	status text,
	amount numeric,
	currency text,
	commission numeric,
	total numeric,
	provider integer,
	account text,
	comment text,
	error_code integer,
	error text,
	item jsonb
);

CREATE TABLE qiwi_wallet_payments (
	merchant text NOT NULL,
	txn_id bigint NOT NULL,
	type text NOT NULL CHECK (type IN ('IN', 'OUT', 'QIWI_CARD')),
	trm_txn_id text,
	date timestamptz NOT NULL,
	status text NOT NULL CHECK (status IN ('SUCCESS', 'WAITING', 'ERROR')),
	amount numeric NOT NULL,
	currency text NOT NULL,
	commission numeric,
	total numeric,
	provider integer,
	account text,
	comment text,
	error_code integer,
	error text,
	item jsonb NOT NULL,
	source text NOT NULL CHECK (source IN ('call', 'reconciler', 'notification')),
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	CONSTRAINT qiwi_wallet_payments_pkey PRIMARY KEY (merchant, txn_id, type)
);
CREATE INDEX qiwi_wallet_payments_date ON qiwi_wallet_payments (merchant, date);
CREATE INDEX qiwi_wallet_payments_waiting ON qiwi_wallet_payments (merchant, date) WHERE status = 'WAITING';

SELECT pg_catalog.pg_extension_config_dump('qiwi_wallet_payments', '');

COMMENT ON TYPE qiwi_wallet_transaction IS $$A payment of a wallet's history as QIWI answered it (PaymentHistoryItem: qiwi_wallet_history, qiwi_wallet_transaction)$$;
COMMENT ON COLUMN qiwi_wallet_transaction.txn_id IS $$QIWI's transaction id (txnId)$$;
COMMENT ON COLUMN qiwi_wallet_transaction.trm_txn_id IS $$The client's id of a transfer as it was sent (trmTxnId): qiwi_wallet_transfer's client_txn_id$$;
COMMENT ON COLUMN qiwi_wallet_transaction.date IS $$When the payment was made$$;
COMMENT ON COLUMN qiwi_wallet_transaction.type IS $$IN, OUT or QIWI_CARD$$;
COMMENT ON COLUMN qiwi_wallet_transaction.status IS $$SUCCESS, WAITING (not final) or ERROR$$;
COMMENT ON COLUMN qiwi_wallet_transaction.amount IS $$The payment's amount (sum.amount), as QIWI wrote it$$;
COMMENT ON COLUMN qiwi_wallet_transaction.currency IS $$ISO 4217 letters of amount (QIWI writes the number: 643 is RUB)$$;
COMMENT ON COLUMN qiwi_wallet_transaction.commission IS $$QIWI's commission (commission.amount)$$;
COMMENT ON COLUMN qiwi_wallet_transaction.total IS $$What the wallet paid or got in all (total.amount)$$;
COMMENT ON COLUMN qiwi_wallet_transaction.provider IS $$QIWI's provider id (99: a transfer between wallets)$$;
COMMENT ON COLUMN qiwi_wallet_transaction.account IS $$The other side: the payer's or the payee's account$$;
COMMENT ON COLUMN qiwi_wallet_transaction.comment IS $$The payment's comment$$;
COMMENT ON COLUMN qiwi_wallet_transaction.error_code IS $$QIWI's error code of the payment, 0 for none (seed 003's list)$$;
COMMENT ON COLUMN qiwi_wallet_transaction.error IS $$QIWI's description of error_code$$;
COMMENT ON COLUMN qiwi_wallet_transaction.item IS $$The whole item as QIWI wrote it (provider, source, view, extras, ...)$$;

COMMENT ON TABLE qiwi_wallet_payments IS $$Each merchant's wallet history, kept by the worker (WAITING items followed until final) and by verified webhooks: reports are joins against these rows, and no report calls the API$$;
COMMENT ON COLUMN qiwi_wallet_payments.merchant IS $$The merchant whose wallet it is$$;
COMMENT ON COLUMN qiwi_wallet_payments.txn_id IS $$QIWI's transaction id (txnId)$$;
COMMENT ON COLUMN qiwi_wallet_payments.type IS $$IN, OUT or QIWI_CARD$$;
COMMENT ON COLUMN qiwi_wallet_payments.trm_txn_id IS $$A transfer's client id as it was sent (trmTxnId)$$;
COMMENT ON COLUMN qiwi_wallet_payments.date IS $$When the payment was made$$;
COMMENT ON COLUMN qiwi_wallet_payments.status IS $$SUCCESS, WAITING (followed until final) or ERROR$$;
COMMENT ON COLUMN qiwi_wallet_payments.amount IS $$The payment's amount (sum.amount), as QIWI wrote it$$;
COMMENT ON COLUMN qiwi_wallet_payments.currency IS $$ISO 4217 letters of amount$$;
COMMENT ON COLUMN qiwi_wallet_payments.commission IS $$QIWI's commission$$;
COMMENT ON COLUMN qiwi_wallet_payments.total IS $$What the wallet paid or got in all$$;
COMMENT ON COLUMN qiwi_wallet_payments.provider IS $$QIWI's provider id (99: a transfer between wallets)$$;
COMMENT ON COLUMN qiwi_wallet_payments.account IS $$The other side's account$$;
COMMENT ON COLUMN qiwi_wallet_payments.comment IS $$The payment's comment$$;
COMMENT ON COLUMN qiwi_wallet_payments.error_code IS $$QIWI's error code of the payment, 0 for none$$;
COMMENT ON COLUMN qiwi_wallet_payments.error IS $$QIWI's description of error_code$$;
COMMENT ON COLUMN qiwi_wallet_payments.item IS $$The whole item as QIWI last wrote it$$;
COMMENT ON COLUMN qiwi_wallet_payments.source IS $$Who told us last: call (a SQL function), reconciler (the worker's sync) or notification (a verified webhook)$$;
COMMENT ON COLUMN qiwi_wallet_payments.first_seen_at IS $$When this row was first written$$;
COMMENT ON COLUMN qiwi_wallet_payments.checked_at IS $$When QIWI last told us about this payment$$;

-- ---------- history ----------

CREATE FUNCTION qiwi_wallet_history(since timestamptz, until timestamptz DEFAULT now(),
                                    operation text DEFAULT 'ALL', sources text[] DEFAULT NULL,
                                    merchant text DEFAULT NULL)
RETURNS SETOF qiwi_wallet_transaction
AS 'MODULE_PATHNAME', 'qiwi_wallet_history'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 50;

-- It sends the wallet's token: only trusted roles
REVOKE ALL ON FUNCTION qiwi_wallet_history(timestamptz, timestamptz, text, text[], text) FROM PUBLIC;

COMMENT ON FUNCTION qiwi_wallet_history(timestamptz, timestamptz, text, text[], text) IS $$The wallet's payments from since to until (to the second, both included), newest first, read 50 a page in windows of at most 90 days and streamed (one page in memory); operation ALL, IN, OUT or QIWI_CARD; sources a subset of QW_RUB, QW_USD, QW_EUR, CARD, MK (NULL: all). An empty history is an empty result. Sends the token: not PUBLIC. merchant: whose$$;

-- ---------- wsync ----------

-- Where the worker's read of each merchant's wallet history has got
-- (src/wallet/wallet_sync.c): written by the worker only.
CREATE TABLE qiwi_wallet_sync (
	merchant text PRIMARY KEY,
	synced_until timestamptz,
	last_sync_at timestamptz,
	read_started_at timestamptz,
	reading_since timestamptz,
	reading_until timestamptz,
	last_error text,
	last_error_at timestamptz,
	blocked_until timestamptz,
	token_warned_on date
);

SELECT pg_catalog.pg_extension_config_dump('qiwi_wallet_sync', '');

-- Per merchant, how far the sync has got
CREATE VIEW qiwi_wallet_sync_status WITH (security_invoker = true) AS
SELECT s.merchant, s.synced_until, s.last_sync_at, p.items, p.waiting,
       s.reading_until AS reading_from, s.last_error, s.last_error_at,
       CASE WHEN s.blocked_until > now() THEN s.blocked_until END AS blocked_until
  FROM qiwi_wallet_sync s,
       LATERAL (SELECT count(*) AS items, count(*) FILTER (WHERE w.status = 'WAITING') AS waiting
                  FROM qiwi_wallet_payments w WHERE w.merchant = s.merchant) p;

-- Each merchant's wallet token: when it expires, and whether to renew it now
CREATE VIEW qiwi_wallet_tokens WITH (security_invoker = true) AS
SELECT t.merchant, t.issued, t.issued + interval '180 days' AS expires,
       (t.issued + interval '180 days')::date - current_date AS days_left,
       t.issued + interval '166 days' <= now() AS warn,
       CASE WHEN t.issued IS NULL THEN 'unknown: the merchant has no wallet_token_issued option'
            WHEN t.issued + interval '180 days' <= now() THEN 'expired'
            WHEN t.issued + interval '166 days' <= now() THEN 'expires within 14 days'
            ELSE 'valid' END AS state
  FROM (SELECT s.srvname::text AS merchant,
               (SELECT o.option_value FROM pg_catalog.pg_options_to_table(s.srvoptions) o
                 WHERE o.option_name = 'wallet_token_issued')::timestamptz AS issued
          FROM pg_catalog.pg_foreign_server s
          JOIN pg_catalog.pg_foreign_data_wrapper f ON f.oid = s.srvfdw AND f.fdwname = 'qiwi'
         WHERE EXISTS (SELECT FROM pg_catalog.pg_options_to_table(s.srvoptions) o
                        WHERE o.option_name = 'wallet_number')) t;

COMMENT ON TABLE qiwi_wallet_sync IS $$Where the worker's read of each merchant's wallet history into qiwi_wallet_payments has got; written by the worker (see qiwi_wallet_sync_status)$$;
COMMENT ON COLUMN qiwi_wallet_sync.merchant IS $$The merchant (a server with wallet_number and wallet_token)$$;
COMMENT ON COLUMN qiwi_wallet_sync.synced_until IS $$Every payment dated before this was read: when the last whole read began$$;
COMMENT ON COLUMN qiwi_wallet_sync.last_sync_at IS $$When the last whole read ended$$;
COMMENT ON COLUMN qiwi_wallet_sync.read_started_at IS $$When the read in progress (or the last one) began: synced_until once it ends$$;
COMMENT ON COLUMN qiwi_wallet_sync.reading_since IS $$The start of the read in progress: synced_until less an hour, or the oldest WAITING payment, or qiwi.wallet_sync_days ago$$;
COMMENT ON COLUMN qiwi_wallet_sync.reading_until IS $$Where the read in progress goes on, newest first; NULL: none in progress$$;
COMMENT ON COLUMN qiwi_wallet_sync.last_error IS $$Why the last read failed, or a payment could not be recorded; NULL after a clean whole read$$;
COMMENT ON COLUMN qiwi_wallet_sync.last_error_at IS $$When last_error happened$$;
COMMENT ON COLUMN qiwi_wallet_sync.blocked_until IS $$QIWI blocked the wallet (423) until then: no request is sent before$$;
COMMENT ON COLUMN qiwi_wallet_sync.token_warned_on IS $$The day the log last said that the token expires soon$$;
COMMENT ON VIEW qiwi_wallet_sync_status IS $$Per merchant, how far the worker's sync of the wallet history has got, how many payments qiwi_wallet_payments holds, its last error and a block in force. Reads the tables with the caller's rights$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.merchant IS $$The merchant$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.synced_until IS $$Every payment dated before this is in qiwi_wallet_payments$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.last_sync_at IS $$When the last whole read ended$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.items IS $$The merchant's payments in qiwi_wallet_payments$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.waiting IS $$Of them WAITING: followed until final$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.reading_from IS $$A read in progress (a long history, read a window of the rate limit a round) goes on from this date back; NULL: none$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.last_error IS $$Why the last read failed, or a payment could not be recorded; NULL after a clean whole read$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.last_error_at IS $$When last_error happened$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.blocked_until IS $$QIWI blocked the wallet (423): its sync waits until then; NULL: no block$$;
COMMENT ON VIEW qiwi_wallet_tokens IS $$Each merchant with a wallet number: when its wallet token was issued (its server's wallet_token_issued option), expires (180 days later) and whether to renew it now (14 days before). QIWI offers no way to ask: without the option, unknown. The worker logs a warning once a day per merchant when warn$$;
COMMENT ON COLUMN qiwi_wallet_tokens.merchant IS $$The merchant$$;
COMMENT ON COLUMN qiwi_wallet_tokens.issued IS $$When the token was issued (wallet_token_issued); NULL: not said$$;
COMMENT ON COLUMN qiwi_wallet_tokens.expires IS $$issued + 180 days$$;
COMMENT ON COLUMN qiwi_wallet_tokens.days_left IS $$Days until expires (negative: expired)$$;
COMMENT ON COLUMN qiwi_wallet_tokens.warn IS $$The token expires within 14 days or has expired; NULL: unknown$$;
COMMENT ON COLUMN qiwi_wallet_tokens.state IS $$valid, expires within 14 days, expired, or unknown (no wallet_token_issued)$$;
