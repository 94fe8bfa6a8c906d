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
