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

CREATE FUNCTION qiwi_wallet_transaction(txn_id bigint, type text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS qiwi_wallet_transaction
AS 'MODULE_PATHNAME', 'qiwi_wallet_transaction'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_wallet_totals(since timestamptz, until timestamptz DEFAULT now(), merchant text DEFAULT NULL)
RETURNS TABLE (currency text, incoming numeric, outgoing numeric)
AS 'MODULE_PATHNAME', 'qiwi_wallet_totals'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 2;

CREATE FUNCTION qiwi_wallet_balances(merchant text DEFAULT NULL)
RETURNS TABLE (alias text, currency text, amount numeric, is_default boolean, type text)
AS 'MODULE_PATHNAME', 'qiwi_wallet_balances'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 4;

REVOKE ALL ON FUNCTION qiwi_wallet_transaction(bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_wallet_totals(timestamptz, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_wallet_balances(text) FROM PUBLIC;

COMMENT ON FUNCTION qiwi_wallet_transaction(bigint, text, text) IS $$One payment of the wallet by QIWI's txn_id (positive); type IN or OUT when a transfer between two wallets of the same owner has both. Sends the token: not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_wallet_totals(timestamptz, timestamptz, text) IS $$The wallet's successful money in and out from since to until (to the second), one row per currency, as QIWI totals it: one request per 90 days. Sends the token: not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_wallet_balances(text) IS $$The wallet's accounts: alias (qw_wallet_rub, ...), currency, balance (NULL for an account without one), whether it is the default, its type. Sends the token: not PUBLIC. merchant: whose$$;

-- ---------- transfers ----------

CREATE TYPE qiwi_wallet_transfer AS (
	client_txn_id text,
	to_wallet text,
	amount numeric,
	currency text,
	comment text,
	status text,
	txn_id bigint,
	error_code integer,
	error text
);

CREATE TABLE qiwi_wallet_transfers (
	merchant text NOT NULL,
	client_txn_id text NOT NULL CHECK (client_txn_id OPERATOR(pg_catalog.~) '^[1-9][0-9]{0,19}$'),
	to_wallet text NOT NULL,
	amount numeric NOT NULL CHECK (amount OPERATOR(pg_catalog.>) 0::numeric
		AND amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)),
	currency text NOT NULL DEFAULT 'RUB',
	comment text,
	status text NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'SUCCESS', 'ERROR', 'REFUSED', 'UNSENT')),
	txn_id bigint,
	error_code integer,
	error text,
	created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	sent_at timestamptz,
	status_changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz,
	next_check_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	check_count integer NOT NULL DEFAULT 0,
	failures integer NOT NULL DEFAULT 0,
	last_error text,
	scheduled_at timestamptz DEFAULT clock_timestamp(),
	CONSTRAINT qiwi_wallet_transfers_pkey PRIMARY KEY (merchant, client_txn_id)
);
CREATE INDEX qiwi_wallet_transfers_ids ON qiwi_wallet_transfers (merchant, (client_txn_id::numeric));
CREATE INDEX qiwi_wallet_transfers_due ON qiwi_wallet_transfers (next_check_at)
	WHERE status IN ('queued', 'sending', 'sent');

CREATE TABLE qiwi_wallet_transfer_events (
	id bigserial PRIMARY KEY,
	merchant text NOT NULL,
	client_txn_id text NOT NULL,
	old_status text,
	new_status text NOT NULL,
	source text NOT NULL CHECK (source IN ('call', 'reconciler', 'notification')),
	changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX qiwi_wallet_transfer_events_transfer ON qiwi_wallet_transfer_events (merchant, client_txn_id, id);

SELECT pg_catalog.pg_extension_config_dump('qiwi_wallet_transfers', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_wallet_transfer_events', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_wallet_transfer_events_id_seq', '');

CREATE FUNCTION qiwi_wallet_transfer(to_wallet text, amount numeric, comment text DEFAULT NULL,
	client_txn_id text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS qiwi_wallet_transfer
AS 'MODULE_PATHNAME', 'qiwi_wallet_transfer'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_wallet_transfer_after_commit(to_wallet text, amount numeric,
	comment text DEFAULT NULL, client_txn_id text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS qiwi_wallet_transfer
AS 'MODULE_PATHNAME', 'qiwi_wallet_transfer_after_commit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- They move money and send the wallet's token: only roles the owner trusts
REVOKE ALL ON FUNCTION qiwi_wallet_transfer(text, numeric, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_wallet_transfer_after_commit(text, numeric, text, text, text) FROM PUBLIC;

COMMENT ON TYPE qiwi_wallet_transfer IS $$A transfer from the merchant's wallet to another, as recorded: returned by qiwi_wallet_transfer and qiwi_wallet_transfer_after_commit$$;
COMMENT ON COLUMN qiwi_wallet_transfer.client_txn_id IS $$The transfer's client id (QIWI's id, trmTxnId in the history): at most 20 digits, increasing$$;
COMMENT ON COLUMN qiwi_wallet_transfer.to_wallet IS $$The wallet the money goes to: its number, digits only$$;
COMMENT ON COLUMN qiwi_wallet_transfer.amount IS $$The amount, in rubles, two decimals at most$$;
COMMENT ON COLUMN qiwi_wallet_transfer.currency IS $$RUB: a wallet transfer is in rubles (643)$$;
COMMENT ON COLUMN qiwi_wallet_transfer.comment IS $$The transfer's comment$$;
COMMENT ON COLUMN qiwi_wallet_transfer.status IS $$queued, sending, sent, SUCCESS, ERROR, REFUSED or UNSENT, as in qiwi_wallet_transfers$$;
COMMENT ON COLUMN qiwi_wallet_transfer.txn_id IS $$QIWI's transaction id, once QIWI accepted the transfer$$;
COMMENT ON COLUMN qiwi_wallet_transfer.error_code IS $$QIWI's error code of an ERROR transfer (the history's errorCode)$$;
COMMENT ON COLUMN qiwi_wallet_transfer.error IS $$QIWI's description of error_code$$;

COMMENT ON TABLE qiwi_wallet_transfers IS $$Every transfer from a merchant's wallet, recorded before it is sent and moved forward only: queued, sending, sent, then SUCCESS or ERROR from the wallet's history, REFUSED or UNSENT. Never sent twice: a send whose answer was lost is looked for in the history by its client id first$$;
COMMENT ON COLUMN qiwi_wallet_transfers.merchant IS $$The merchant whose wallet pays$$;
COMMENT ON COLUMN qiwi_wallet_transfers.client_txn_id IS $$The transfer's client id, sent as its id (trmTxnId in the history): at most 20 digits, unique and increasing per merchant; generated as the greater of the clock in microseconds and the greatest id + 1$$;
COMMENT ON COLUMN qiwi_wallet_transfers.to_wallet IS $$The wallet the money goes to: its number, digits only$$;
COMMENT ON COLUMN qiwi_wallet_transfers.amount IS $$The amount, two decimals at most (QIWI would round more down)$$;
COMMENT ON COLUMN qiwi_wallet_transfers.currency IS $$RUB (QIWI's 643)$$;
COMMENT ON COLUMN qiwi_wallet_transfers.comment IS $$The transfer's comment, as sent$$;
COMMENT ON COLUMN qiwi_wallet_transfers.status IS $$queued: by qiwi_wallet_transfer_after_commit, for the worker to send, a merchant's one at a time in client-id order (again after a send that made no connection); sending: recorded and committed before its POST, by the call (in a worker of its own, so it stays if the caller rolls back) or by the worker, waiting for a synchronous standby if one is configured; left so when the outcome is unknown: the worker looks for it in the history and never sends it again; sent: QIWI accepted it, the history says WAITING; SUCCESS or ERROR: final, from the history; REFUSED: QIWI refused the send (the call's refusal is committed beside its intent), or answered QWPRC-300 after accepting a greater id of the merchant's: nothing moved (see last_error); UNSENT: a sending transfer the history does not have past qiwi.unsent_after, at the second look after it: nothing moved$$;
COMMENT ON COLUMN qiwi_wallet_transfers.txn_id IS $$QIWI's transaction id, once accepted$$;
COMMENT ON COLUMN qiwi_wallet_transfers.error_code IS $$QIWI's error code of an ERROR transfer$$;
COMMENT ON COLUMN qiwi_wallet_transfers.error IS $$QIWI's description of error_code, or of a refusal$$;
COMMENT ON COLUMN qiwi_wallet_transfers.created_at IS $$When the transfer was recorded$$;
COMMENT ON COLUMN qiwi_wallet_transfers.sent_at IS $$When QIWI's acceptance (or refusal, or UNSENT) was recorded$$;
COMMENT ON COLUMN qiwi_wallet_transfers.status_changed_at IS $$When status last changed$$;
COMMENT ON COLUMN qiwi_wallet_transfers.checked_at IS $$When the worker last asked QIWI about it$$;
COMMENT ON COLUMN qiwi_wallet_transfers.next_check_at IS $$When the worker sends or looks in the history next, while not final$$;
COMMENT ON COLUMN qiwi_wallet_transfers.check_count IS $$The worker's answered checks$$;
COMMENT ON COLUMN qiwi_wallet_transfers.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;
COMMENT ON COLUMN qiwi_wallet_transfers.failures IS $$The worker's failed checks in a row$$;
COMMENT ON COLUMN qiwi_wallet_transfers.last_error IS $$Why the last send or check failed, or the refusal$$;
COMMENT ON TABLE qiwi_wallet_transfer_events IS $$Every status change of a transfer recorded; each is also announced with NOTIFY qiwi_wallet_transfer_status$$;
COMMENT ON COLUMN qiwi_wallet_transfer_events.id IS $$Order of the changes$$;
COMMENT ON COLUMN qiwi_wallet_transfer_events.merchant IS $$Whose transfer$$;
COMMENT ON COLUMN qiwi_wallet_transfer_events.client_txn_id IS $$The transfer's client id$$;
COMMENT ON COLUMN qiwi_wallet_transfer_events.old_status IS $$Status before; NULL when recorded$$;
COMMENT ON COLUMN qiwi_wallet_transfer_events.new_status IS $$Status after$$;
COMMENT ON COLUMN qiwi_wallet_transfer_events.source IS $$What told us: call or reconciler (the worker)$$;
COMMENT ON COLUMN qiwi_wallet_transfer_events.changed_at IS $$When it was recorded$$;
COMMENT ON SEQUENCE qiwi_wallet_transfer_events_id_seq IS $$Ids of qiwi_wallet_transfer_events$$;
COMMENT ON FUNCTION qiwi_wallet_transfer(text, numeric, text, text, text) IS $$Transfer amount rubles from the merchant's wallet to to_wallet (provider 99), recorded in qiwi_wallet_transfers before it is sent; a lost answer is looked for in the wallet's history before anything is sent again. comment: the transfer's; client_txn_id: NULL to generate one; merchant: whose wallet (NULL: the default merchant). Its intent (sending) is committed by a background worker of its own before the POST, durably (with a synchronous standby, once it acknowledged); QIWI's answer is recorded in the caller's transaction. A caller that rolls back after it returns leaves the transfer made and its intent committed: the worker settles it from the history. Refused with no free worker slot (max_worker_processes) or in a REPEATABLE READ or SERIALIZABLE transaction, before anything is sent. Moves money: not PUBLIC. Use qiwi_wallet_transfer_after_commit for a transfer that must follow the transaction$$;
COMMENT ON FUNCTION qiwi_wallet_transfer_after_commit(text, numeric, text, text, text) IS $$Record a transfer as queued now; the worker sends it once this transaction commits, so a rollback sends nothing. to_wallet, amount, comment, client_txn_id and merchant as in qiwi_wallet_transfer. Moves money: not PUBLIC$$;

-- ---------- webhooks ----------

CREATE FUNCTION qiwi_wallet_verify_webhook(body jsonb, key_base64 text DEFAULT NULL,
	merchant text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qiwi_wallet_verify_webhook'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION qiwi_wallet_verify_webhook(jsonb, text, text) IS $$Is the hash of a Wallet webhook body QIWI's? The values payment.signFields names, in its order, joined by '|' (a JSON number printed without trailing zeros: 1.00 as 1, 1.50 as 1.5; a string as written), HMAC-SHA256 keyed with the base64-decoded key_base64 (NULL: the merchant's wallet_webhook_key), lowercase hex; compared in constant time. A missing signed field or hash: false. NULL if body is NULL. merchant: whose$$;
CREATE FUNCTION qiwi_wallet_webhook_verify()
RETURNS trigger
AS 'MODULE_PATHNAME', 'qiwi_wallet_webhook_verify'
LANGUAGE C;
REVOKE ALL ON FUNCTION qiwi_wallet_webhook_verify() FROM PUBLIC;

CREATE TABLE qiwi_wallet_webhooks (
	id bigserial PRIMARY KEY,
	received_at timestamptz NOT NULL DEFAULT now(),
	body jsonb,
	message_id text GENERATED ALWAYS AS (body ->> 'messageId') STORED,
	txn_id text GENERATED ALWAYS AS (body -> 'payment' ->> 'txnId') STORED,
	test boolean GENERATED ALWAYS AS (coalesce(body -> 'test' = 'true'::jsonb, false)) STORED,
	merchant text,
	verified boolean,
	applied boolean,
	error text
);
CREATE INDEX qiwi_wallet_webhooks_received ON qiwi_wallet_webhooks (received_at);
CREATE INDEX qiwi_wallet_webhooks_message ON qiwi_wallet_webhooks (message_id);
CREATE TRIGGER qiwi_wallet_webhook_verify BEFORE INSERT ON qiwi_wallet_webhooks
	FOR EACH ROW EXECUTE FUNCTION qiwi_wallet_webhook_verify('mark');
SELECT pg_catalog.pg_extension_config_dump('qiwi_wallet_webhooks', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_wallet_webhooks_id_seq', '');

COMMENT ON FUNCTION qiwi_wallet_webhook_verify() IS $$Trigger (BEFORE INSERT) for a table with body, merchant, verified, applied, error: verifies a Wallet webhook's hash with the wallet_webhook_key of the merchant whose wallet_number is payment.personId, and records a verified payment in qiwi_wallet_payments, forward only (a WAITING one may become final; a message stored before, or a payment already so, changes nothing). A test without payment or hash is stored unverified without an error; a signed test is verified, not recorded. Argument 'mark' (default) stores a bad one marked, 'reject' fails the INSERT (QKSIG). Not PUBLIC$$;
COMMENT ON TABLE qiwi_wallet_webhooks IS $$QIWI Wallet webhooks as the web tier received them (the JSON body QIWI POSTed), verified and applied by the trigger qiwi_wallet_webhook_verify()$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.id IS $$Order of arrival$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.received_at IS $$When the webhook was stored$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.body IS $$The JSON body as QIWI sent it: hash, hookId, messageId, payment, test, version$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.message_id IS $$The body's messageId: a message QIWI sends again has the same$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.txn_id IS $$The payment's txnId (qiwi_wallet_payments.txn_id), as the body writes it$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.test IS $$The body says test: true (a hooks/test notification; never recorded as a payment)$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.merchant IS $$Set by the trigger: the merchant whose key verified it$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.verified IS $$Set by the trigger: the hash holds under the merchant's wallet_webhook_key$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.applied IS $$Set by the trigger: it wrote the payment into qiwi_wallet_payments$$;
COMMENT ON COLUMN qiwi_wallet_webhooks.error IS $$Set by the trigger: why it was not verified or not applied (a duplicate, a final status already, ...); NULL for a test without payment or hash$$;
COMMENT ON SEQUENCE qiwi_wallet_webhooks_id_seq IS $$Ids of qiwi_wallet_webhooks$$;
COMMENT ON TRIGGER qiwi_wallet_webhook_verify ON qiwi_wallet_webhooks IS $$Checks each webhook's hash and records verified payments in qiwi_wallet_payments ('mark': a bad one is stored with verified = false)$$;
CREATE TYPE qiwi_wallet_hook AS (
	hook_id text,
	url text,
	txn_type text
);

CREATE FUNCTION qiwi_wallet_webhook_register(url text, txn_type text DEFAULT 'BOTH', merchant text DEFAULT NULL)
RETURNS qiwi_wallet_hook
AS 'MODULE_PATHNAME', 'qiwi_wallet_webhook_register'
LANGUAGE C VOLATILE;
CREATE FUNCTION qiwi_wallet_webhook(merchant text DEFAULT NULL)
RETURNS qiwi_wallet_hook
AS 'MODULE_PATHNAME', 'qiwi_wallet_webhook'
LANGUAGE C VOLATILE;
CREATE FUNCTION qiwi_wallet_webhook_delete(merchant text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qiwi_wallet_webhook_delete'
LANGUAGE C VOLATILE;
CREATE FUNCTION qiwi_wallet_webhook_test(merchant text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'qiwi_wallet_webhook_test'
LANGUAGE C VOLATILE;
CREATE FUNCTION qiwi_wallet_webhook_fetch_key(rotate boolean DEFAULT false, merchant text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'qiwi_wallet_webhook_fetch_key'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION qiwi_wallet_webhook_register(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_wallet_webhook(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_wallet_webhook_delete(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_wallet_webhook_test(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_wallet_webhook_fetch_key(boolean, text) FROM PUBLIC;

COMMENT ON TYPE qiwi_wallet_hook IS $$A wallet's webhook as QIWI describes it (qiwi_wallet_webhook_register, qiwi_wallet_webhook)$$;
COMMENT ON COLUMN qiwi_wallet_hook.hook_id IS $$QIWI's id of the hook (hookId)$$;
COMMENT ON COLUMN qiwi_wallet_hook.url IS $$Where QIWI POSTs the webhooks (hookParameters.url)$$;
COMMENT ON COLUMN qiwi_wallet_hook.txn_type IS $$The payments it is sent for: IN, OUT or BOTH$$;
COMMENT ON FUNCTION qiwi_wallet_webhook_register(text, text, text) IS $$Register the wallet's webhook (PUT payment-notifier/v1/hooks, hookType 1): url http or https, at most 100 characters; txn_type IN, OUT or BOTH. A wallet has one: QIWI refuses a second (422) until qiwi_wallet_webhook_delete(). Sends the wallet's token: not PUBLIC. merchant: whose wallet$$;
COMMENT ON FUNCTION qiwi_wallet_webhook(text) IS $$The wallet's active webhook (GET hooks/active), NULL if it has none. Not PUBLIC. merchant: whose wallet$$;
COMMENT ON FUNCTION qiwi_wallet_webhook_delete(text) IS $$Delete the wallet's active webhook; false if it had none. Not PUBLIC. merchant: whose wallet$$;
COMMENT ON FUNCTION qiwi_wallet_webhook_test(text) IS $$Ask QIWI to send the active webhook a test notification (GET hooks/test; stored in qiwi_wallet_webhooks as a test). Not PUBLIC. merchant: whose wallet$$;
COMMENT ON FUNCTION qiwi_wallet_webhook_fetch_key(boolean, text) IS $$Fetch the active webhook's key (rotate: a new one, POST hooks/{id}/newkey) and keep it as the wallet_webhook_key of the merchant's user mapping, which the trigger and qiwi_wallet_verify_webhook use; never returns it. Needs the rights ALTER USER MAPPING needs; not PUBLIC. merchant: whose wallet$$;
-- ---------- end of webhooks ----------

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
COMMENT ON COLUMN qiwi_wallet_sync.last_error IS $$Why the last read failed, or a payment could not be read or recorded; NULL after a clean whole read$$;
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
COMMENT ON COLUMN qiwi_wallet_sync_status.last_error IS $$Why the last read failed, or a payment could not be read or recorded; NULL after a clean whole read$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.last_error_at IS $$When last_error happened$$;
COMMENT ON COLUMN qiwi_wallet_sync_status.blocked_until IS $$QIWI blocked the wallet (423): its sync waits until then; NULL: no block$$;
COMMENT ON VIEW qiwi_wallet_tokens IS $$Each merchant with a wallet number: when its wallet token was issued (its server's wallet_token_issued option), expires (180 days later) and whether to renew it now (14 days before). QIWI offers no way to ask: without the option, unknown. The worker logs a warning once a day per merchant when warn$$;
COMMENT ON COLUMN qiwi_wallet_tokens.merchant IS $$The merchant$$;
COMMENT ON COLUMN qiwi_wallet_tokens.issued IS $$When the token was issued (wallet_token_issued); NULL: not said$$;
COMMENT ON COLUMN qiwi_wallet_tokens.expires IS $$issued + 180 days$$;
COMMENT ON COLUMN qiwi_wallet_tokens.days_left IS $$Days until expires (negative: expired)$$;
COMMENT ON COLUMN qiwi_wallet_tokens.warn IS $$The token expires within 14 days or has expired; NULL: unknown$$;
COMMENT ON COLUMN qiwi_wallet_tokens.state IS $$valid, expires within 14 days, expired, or unknown (no wallet_token_issued)$$;

-- Transfers out of the wallet that no row of qiwi_wallet_transfers records:
-- made by another client, or by qiwi_wallet_transfer in a transaction that
-- then rolled back (the synchronous call cannot commit its intent first)
CREATE VIEW qiwi_wallet_transfers_unrecorded WITH (security_invoker = true) AS
SELECT p.merchant, p.trm_txn_id AS client_txn_id, p.txn_id, p.date, p.status, p.amount, p.currency,
       p.account, p.comment
  FROM qiwi_wallet_payments p
 WHERE p.type = 'OUT' AND p.provider = 99 AND p.trm_txn_id IS NOT NULL
   AND NOT EXISTS (SELECT FROM qiwi_wallet_transfers t
                    WHERE t.merchant = p.merchant AND t.client_txn_id = p.trm_txn_id);

COMMENT ON VIEW qiwi_wallet_transfers_unrecorded IS $$Wallet-to-wallet transfers out (provider 99) in qiwi_wallet_payments that no row of qiwi_wallet_transfers records: made by another client of the wallet, or one whose intent a promoted asynchronous standby never got (money moved). Reads the tables with the caller's rights$$;
COMMENT ON COLUMN qiwi_wallet_transfers_unrecorded.merchant IS $$The merchant whose wallet paid$$;
COMMENT ON COLUMN qiwi_wallet_transfers_unrecorded.client_txn_id IS $$The transfer's client id as sent (trmTxnId)$$;
COMMENT ON COLUMN qiwi_wallet_transfers_unrecorded.txn_id IS $$QIWI's transaction id$$;
COMMENT ON COLUMN qiwi_wallet_transfers_unrecorded.date IS $$When it was made$$;
COMMENT ON COLUMN qiwi_wallet_transfers_unrecorded.status IS $$SUCCESS, WAITING or ERROR, as the history says$$;
COMMENT ON COLUMN qiwi_wallet_transfers_unrecorded.amount IS $$The amount paid$$;
COMMENT ON COLUMN qiwi_wallet_transfers_unrecorded.currency IS $$ISO 4217 letters of amount$$;
COMMENT ON COLUMN qiwi_wallet_transfers_unrecorded.account IS $$The wallet paid$$;
COMMENT ON COLUMN qiwi_wallet_transfers_unrecorded.comment IS $$The transfer's comment$$;
