-- qiwi_kassa 1.3 -> 1.4: money safety, second pass (see CHANGELOG).
-- Every object added here is also in sql/ext, so an upgraded install
-- equals a fresh 1.4 (test/t/008_upgrade_and_cluster.pl).
\echo Use "ALTER EXTENSION qiwi_kassa UPDATE TO '1.4'" to load this file. \quit

-- A Payin PAYMENT, CAPTURE or REFUND notification, whose signature covers
-- only its id, date and amount, no longer records money: it marks its
-- invoice notified and due, and QIWI's answer decides
ALTER TABLE qiwi_payin_invoices ADD COLUMN notified_at timestamptz;
COMMENT ON COLUMN qiwi_payin_invoices.notified_at IS $$When a verified PAYMENT, CAPTURE or REFUND notification about this invoice arrived that QIWI's answer has not confirmed yet (notified, unconfirmed: the invoice is due for a check at once); NULL once QIWI answered. Such a notification never changes the money recorded: QIWI signs only its id, date and amount$$;
COMMENT ON COLUMN qiwi_payin_invoices.next_check_at IS $$When the reconciler asks QIWI about this invoice next, while it is CREATED, one of its payments holds money or a notification about it is unconfirmed (backs off after each unchanged answer or failure; due as soon as expires_at or a capture deadline passes)$$;

-- The due watermark: qiwi_reconcile_now() raises it, and every followed
-- item scheduled before it (its scheduled_at) is due, so that making all
-- items due writes none of them
CREATE TABLE qiwi_reconcile_watermark (
	due_before timestamptz NOT NULL DEFAULT '-infinity',
	single boolean NOT NULL DEFAULT true CHECK (single),
	CONSTRAINT qiwi_reconcile_watermark_pkey PRIMARY KEY (single)
);
COMMENT ON TABLE qiwi_reconcile_watermark IS $$At most one row (none before the first qiwi_reconcile_now(), so that a reporting copy takes the primary's): the due watermark that qiwi_reconcile_now() raises; every item the reconciler follows whose scheduled_at is before it is due, whatever its next_check_at. Written by the extension only$$;
COMMENT ON COLUMN qiwi_reconcile_watermark.due_before IS $$When qiwi_reconcile_now() last made every followed item due$$;
COMMENT ON COLUMN qiwi_reconcile_watermark.single IS $$Always true: the table has one row at most$$;

-- the followed rows' schedule time, which the watermark is compared with
-- (NULL in the rows of 1.3: before any watermark; no table rewrite)
ALTER TABLE qiwi_bills ADD COLUMN scheduled_at timestamptz;
ALTER TABLE qiwi_bills ALTER COLUMN scheduled_at SET DEFAULT clock_timestamp();
COMMENT ON COLUMN qiwi_bills.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;
ALTER TABLE qiwi_payin_invoices ADD COLUMN scheduled_at timestamptz;
ALTER TABLE qiwi_payin_invoices ALTER COLUMN scheduled_at SET DEFAULT clock_timestamp();
COMMENT ON COLUMN qiwi_payin_invoices.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;
COMMENT ON FUNCTION qiwi_reconcile_now() IS $$Make every item the reconciler follows due now (WAITING and CREATING bills; CREATED Payin invoices and PAID ones with money held; Payin captures and refunds sending; Pull bills and refunds; Wallet transfers not final) by raising the due watermark, which writes none of them, and wake the reconciler when this transaction commits; returns how many items of all kinds it follows. Not PUBLIC$$;

-- The Pull REST API 2.1 (new in 1.4, as sql/ext/pull.sql): bills and refunds of a QIWI
-- Wallet project, with Basic authorization and form bodies.

CREATE TYPE qiwi_pull_bill AS (
	bill_id text,
	amount numeric,
	currency text,
	status text,
	qiwi_user text,
	comment text,
	origin_amount numeric,
	origin_currency text,
	error text
);

CREATE TYPE qiwi_pull_refund AS (
	bill_id text,
	refund_id text,
	amount numeric,
	currency text,
	status text,
	error text
);

CREATE TABLE qiwi_pull_bills (
	merchant text NOT NULL,
	bill_id text NOT NULL,
	amount numeric NOT NULL CHECK (amount OPERATOR(pg_catalog.>) 0::numeric
		AND amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)),
	currency text NOT NULL,
	status text NOT NULL CHECK (status IN ('waiting', 'paid', 'rejected', 'unpaid', 'expired')),
	qiwi_user text,
	comment text,
	origin_amount numeric,
	origin_currency text,
	error text,
	status_changed_at timestamptz NOT NULL,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,
	next_check_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	check_count integer NOT NULL DEFAULT 0,
	failures integer NOT NULL DEFAULT 0,
	last_error text,
	scheduled_at timestamptz DEFAULT clock_timestamp(),
	CONSTRAINT qiwi_pull_bills_pkey PRIMARY KEY (merchant, bill_id)
);
CREATE INDEX qiwi_pull_bills_due ON qiwi_pull_bills (next_check_at) WHERE status = 'waiting';

CREATE TABLE qiwi_pull_refunds (
	merchant text NOT NULL,
	bill_id text NOT NULL,
	refund_id text NOT NULL,
	amount numeric NOT NULL CHECK (amount OPERATOR(pg_catalog.>) 0::numeric),
	currency text,
	status text NOT NULL CHECK (status IN ('processing', 'success', 'fail')),
	error text,
	status_changed_at timestamptz NOT NULL,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,
	next_check_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	check_count integer NOT NULL DEFAULT 0,
	failures integer NOT NULL DEFAULT 0,
	last_error text,
	scheduled_at timestamptz DEFAULT clock_timestamp(),
	refund_key text NOT NULL GENERATED ALWAYS AS (bill_id OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) refund_id) STORED,
	CONSTRAINT qiwi_pull_refunds_pkey PRIMARY KEY (merchant, bill_id, refund_id)
);
CREATE UNIQUE INDEX qiwi_pull_refunds_key ON qiwi_pull_refunds (merchant, refund_key);
CREATE INDEX qiwi_pull_refunds_due ON qiwi_pull_refunds (next_check_at) WHERE status = 'processing';

CREATE TABLE qiwi_pull_events (
	id bigserial PRIMARY KEY,
	merchant text NOT NULL,
	object text NOT NULL CHECK (object IN ('bill', 'refund')),
	object_id text NOT NULL,
	old_status text,
	new_status text NOT NULL,
	source text NOT NULL CHECK (source IN ('call', 'reconciler', 'notification')),
	changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX qiwi_pull_events_object ON qiwi_pull_events (object, object_id, id);

SELECT pg_catalog.pg_extension_config_dump('qiwi_pull_bills', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_pull_refunds', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_pull_events', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_pull_events_id_seq', '');

CREATE FUNCTION qiwi_pull_create_bill(bill_id text, phone text, amount numeric, comment text,
	lifetime timestamptz, currency text DEFAULT 'RUB', pay_source text DEFAULT NULL,
	prv_name text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS qiwi_pull_bill
AS 'MODULE_PATHNAME', 'qiwi_pull_create_bill'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_pull_bill_status(bill_id text, merchant text DEFAULT NULL)
RETURNS qiwi_pull_bill
AS 'MODULE_PATHNAME', 'qiwi_pull_bill_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_pull_cancel_bill(bill_id text, merchant text DEFAULT NULL)
RETURNS qiwi_pull_bill
AS 'MODULE_PATHNAME', 'qiwi_pull_cancel_bill'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_pull_refund(bill_id text, refund_id text, amount numeric,
	merchant text DEFAULT NULL)
RETURNS qiwi_pull_refund
AS 'MODULE_PATHNAME', 'qiwi_pull_refund'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_pull_refund_status(bill_id text, refund_id text, merchant text DEFAULT NULL)
RETURNS qiwi_pull_refund
AS 'MODULE_PATHNAME', 'qiwi_pull_refund_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_pull_form_url(bill_id text, success_url text DEFAULT NULL,
	fail_url text DEFAULT NULL, pay_source text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'qiwi_pull_form_url'
LANGUAGE C STABLE PARALLEL SAFE;

-- Money moves only for roles the owner trusts; the others send the
-- project's credentials and spend its quota: only trusted roles either.
REVOKE ALL ON FUNCTION qiwi_pull_create_bill(text, text, numeric, text, timestamptz, text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_pull_bill_status(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_pull_cancel_bill(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_pull_refund(text, text, numeric, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_pull_refund_status(text, text, text) FROM PUBLIC;

COMMENT ON TYPE qiwi_pull_bill IS $$A Pull bill as QIWI answered (qiwi_pull_create_bill, qiwi_pull_bill_status, qiwi_pull_cancel_bill)$$;
COMMENT ON COLUMN qiwi_pull_bill.bill_id IS $$The shop's bill id$$;
COMMENT ON COLUMN qiwi_pull_bill.amount IS $$The bill's amount$$;
COMMENT ON COLUMN qiwi_pull_bill.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_pull_bill.status IS $$waiting (open), paid, rejected, unpaid or expired$$;
COMMENT ON COLUMN qiwi_pull_bill.qiwi_user IS $$The buyer's wallet, tel:+<digits> (QIWI's user)$$;
COMMENT ON COLUMN qiwi_pull_bill.comment IS $$The bill's comment$$;
COMMENT ON COLUMN qiwi_pull_bill.origin_amount IS $$What the buyer pays in origin_currency, once paying began (QIWI's originAmount)$$;
COMMENT ON COLUMN qiwi_pull_bill.origin_currency IS $$ISO 4217 code of origin_amount (QIWI's originCcy)$$;
COMMENT ON COLUMN qiwi_pull_bill.error IS $$QIWI's error code of the bill, 0 for none$$;
COMMENT ON TYPE qiwi_pull_refund IS $$A refund of a Pull bill as QIWI answered (qiwi_pull_refund, qiwi_pull_refund_status)$$;
COMMENT ON COLUMN qiwi_pull_refund.bill_id IS $$The refunded bill$$;
COMMENT ON COLUMN qiwi_pull_refund.refund_id IS $$The shop's refund id, 1 to 9 Latin letters or digits$$;
COMMENT ON COLUMN qiwi_pull_refund.amount IS $$Money returned$$;
COMMENT ON COLUMN qiwi_pull_refund.currency IS $$ISO 4217 code of amount: the bill's, NULL when qiwi_pull_bills lacks the bill$$;
COMMENT ON COLUMN qiwi_pull_refund.status IS $$processing (open), success or fail$$;
COMMENT ON COLUMN qiwi_pull_refund.error IS $$QIWI's error code of the refund, 0 for none$$;

COMMENT ON TABLE qiwi_pull_bills IS $$Every Pull bill the shop created or asked about, forward only (waiting, then one final status)$$;
COMMENT ON COLUMN qiwi_pull_bills.merchant IS $$Whose bill: default or a server of the wrapper qiwi$$;
COMMENT ON COLUMN qiwi_pull_bills.bill_id IS $$The shop's bill id$$;
COMMENT ON COLUMN qiwi_pull_bills.amount IS $$The bill's amount, as the shop asked$$;
COMMENT ON COLUMN qiwi_pull_bills.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_pull_bills.status IS $$waiting, paid, rejected, unpaid or expired$$;
COMMENT ON COLUMN qiwi_pull_bills.qiwi_user IS $$The buyer's wallet, tel:+<digits>$$;
COMMENT ON COLUMN qiwi_pull_bills.comment IS $$The bill's comment$$;
COMMENT ON COLUMN qiwi_pull_bills.origin_amount IS $$What the buyer pays in origin_currency, once paying began$$;
COMMENT ON COLUMN qiwi_pull_bills.origin_currency IS $$ISO 4217 code of origin_amount$$;
COMMENT ON COLUMN qiwi_pull_bills.error IS $$QIWI's error code of the bill, 0 for none$$;
COMMENT ON COLUMN qiwi_pull_bills.status_changed_at IS $$When the status was recorded here$$;
COMMENT ON COLUMN qiwi_pull_bills.first_seen_at IS $$When the row was written first$$;
COMMENT ON COLUMN qiwi_pull_bills.checked_at IS $$When QIWI last told us about it$$;
COMMENT ON COLUMN qiwi_pull_bills.next_check_at IS $$When the reconciler asks QIWI next, while waiting$$;
COMMENT ON COLUMN qiwi_pull_bills.check_count IS $$The reconciler's answers so far$$;
COMMENT ON COLUMN qiwi_pull_bills.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;
COMMENT ON COLUMN qiwi_pull_bills.failures IS $$The reconciler's failed checks in a row$$;
COMMENT ON COLUMN qiwi_pull_bills.last_error IS $$Why the reconciler's last check failed$$;
COMMENT ON TABLE qiwi_pull_refunds IS $$Every refund of a Pull bill the shop made or asked about, forward only (processing, then success or fail)$$;
COMMENT ON COLUMN qiwi_pull_refunds.merchant IS $$Whose refund$$;
COMMENT ON COLUMN qiwi_pull_refunds.bill_id IS $$The refunded bill$$;
COMMENT ON COLUMN qiwi_pull_refunds.refund_id IS $$The shop's refund id$$;
COMMENT ON COLUMN qiwi_pull_refunds.amount IS $$Money returned$$;
COMMENT ON COLUMN qiwi_pull_refunds.currency IS $$ISO 4217 code of amount: the bill's$$;
COMMENT ON COLUMN qiwi_pull_refunds.status IS $$processing, success or fail$$;
COMMENT ON COLUMN qiwi_pull_refunds.error IS $$QIWI's error code of the refund, 0 for none$$;
COMMENT ON COLUMN qiwi_pull_refunds.status_changed_at IS $$When the status was recorded here$$;
COMMENT ON COLUMN qiwi_pull_refunds.first_seen_at IS $$When the row was written first$$;
COMMENT ON COLUMN qiwi_pull_refunds.checked_at IS $$When QIWI last told us about it$$;
COMMENT ON COLUMN qiwi_pull_refunds.next_check_at IS $$When the reconciler asks QIWI next, while processing$$;
COMMENT ON COLUMN qiwi_pull_refunds.check_count IS $$The reconciler's answers so far$$;
COMMENT ON COLUMN qiwi_pull_refunds.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;
COMMENT ON COLUMN qiwi_pull_refunds.failures IS $$The reconciler's failed checks in a row$$;
COMMENT ON COLUMN qiwi_pull_refunds.last_error IS $$Why the reconciler's last check failed$$;
COMMENT ON COLUMN qiwi_pull_refunds.refund_key IS $$bill_id/refund_id: the refund's key for the reconciler and in qiwi_pull_events$$;
COMMENT ON TABLE qiwi_pull_events IS $$Every status change of a Pull bill or refund recorded; each is also announced with NOTIFY qiwi_pull_status$$;
COMMENT ON COLUMN qiwi_pull_events.id IS $$Order of the changes$$;
COMMENT ON COLUMN qiwi_pull_events.merchant IS $$Whose object$$;
COMMENT ON COLUMN qiwi_pull_events.object IS $$bill or refund$$;
COMMENT ON COLUMN qiwi_pull_events.object_id IS $$Its id: bill_id, or bill_id/refund_id$$;
COMMENT ON COLUMN qiwi_pull_events.old_status IS $$Status before; NULL when first seen$$;
COMMENT ON COLUMN qiwi_pull_events.new_status IS $$Status after$$;
COMMENT ON COLUMN qiwi_pull_events.source IS $$What told us: call, reconciler or notification$$;
COMMENT ON COLUMN qiwi_pull_events.changed_at IS $$When it was recorded$$;
COMMENT ON SEQUENCE qiwi_pull_events_id_seq IS $$Ids of qiwi_pull_events$$;

COMMENT ON FUNCTION qiwi_pull_create_bill(text, text, numeric, text, timestamptz, text, text, text, text) IS $$Create the Pull bill bill_id (PUT, form body) for amount in currency (RUB, EUR, USD or KZT; never rounded) to the wallet phone (digits, sent as tel:+phone), with comment (required, at most 255) and lifetime (required, sent in Moscow time; more than 45 days ahead is refused, since QIWI expires a bill after 45 days); pay_source qw or mobile; prv_name at most 100. A lost answer is repeated safely; another amount under the same bill_id is refused (QIWI's 215, a reused id). Moves money: not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_pull_bill_status(text, text) IS $$Ask QIWI for the Pull bill bill_id and record it. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_pull_cancel_bill(text, text) IS $$Cancel the waiting Pull bill bill_id (PATCH status=rejected) and record it; a paid bill or one being paid is QIWI's 1419. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_pull_refund(text, text, numeric, text) IS $$Refund amount of the paid Pull bill bill_id under refund_id (1 to 9 Latin letters or digits); several refunds while their total stays within the bill, refused before sending otherwise; a lost answer is repeated safely. Moves money: not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_pull_refund_status(text, text, text) IS $$Ask QIWI for the refund refund_id of Pull bill bill_id and record it. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_pull_form_url(text, text, text, text, text) IS $$URL of QIWI's payment form for the Pull bill bill_id (shop: the merchant's pull_prv_id), with success_url and fail_url to return to and pay_source (qw, mobile, card, wm or ssk), escaped by libcurl. merchant: whose$$;

-- ---------- notifications ----------

CREATE FUNCTION qiwi_pull_verify_notification(params jsonb, signature text, password text DEFAULT NULL,
	merchant text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qiwi_pull_verify_notification'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION qiwi_pull_verify_basic_auth(authorization text, prv_id text DEFAULT NULL,
	password text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qiwi_pull_verify_basic_auth'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION qiwi_pull_notification_answer(result_code integer DEFAULT 0)
RETURNS text
AS 'MODULE_PATHNAME', 'qiwi_pull_notification_answer'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION qiwi_pull_notification_verify()
RETURNS trigger
AS 'MODULE_PATHNAME', 'qiwi_pull_notification_verify'
LANGUAGE C;
REVOKE ALL ON FUNCTION qiwi_pull_notification_verify() FROM PUBLIC;

CREATE TABLE qiwi_pull_notifications (
	id bigserial PRIMARY KEY,
	received_at timestamptz NOT NULL DEFAULT now(),
	prv_id text,
	credential text,
	body jsonb,
	merchant text,
	verified boolean,
	applied boolean,
	error text
);
CREATE INDEX qiwi_pull_notifications_received ON qiwi_pull_notifications (received_at);
CREATE TRIGGER qiwi_pull_notification_verify BEFORE INSERT ON qiwi_pull_notifications
	FOR EACH ROW EXECUTE FUNCTION qiwi_pull_notification_verify('mark');
SELECT pg_catalog.pg_extension_config_dump('qiwi_pull_notifications', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_pull_notifications_id_seq', '');

COMMENT ON FUNCTION qiwi_pull_verify_notification(jsonb, text, text, text) IS $$Is signature (the X-Api-Signature header) QIWI's for the Pull notification params (its form parameters as a jsonb object of strings)? The values of all parameters, empty ones kept, sorted by name in byte order, joined by '|', HMAC-SHA1 under password (NULL: the merchant's pull_notification_password), base64; compared in constant time. NULL if params or signature is NULL. merchant: whose$$;
COMMENT ON FUNCTION qiwi_pull_verify_basic_auth(text, text, text, text) IS $$Is authorization (the Authorization header of a notification) exactly Basic base64(prv_id:password)? prv_id and password NULL: the merchant's pull_prv_id and pull_notification_password. Compared in constant time; a header with anything more (the docs' example with a newline) is refused. merchant: whose$$;
COMMENT ON FUNCTION qiwi_pull_notification_answer(integer) IS $$The XML answer QIWI expects to a Pull notification, for the web tier: result_code 0 (taken), 5, 13, 150, 151 (bad signature) or 300 (temporary failure: QIWI sends it again)$$;
COMMENT ON FUNCTION qiwi_pull_notification_verify() IS $$Trigger (BEFORE INSERT) for a table with credential, body, prv_id, merchant, verified, applied, error: verifies the X-Api-Signature or Basic Authorization in credential for the merchant whose pull_prv_id is prv_id, and applies a verified notification to qiwi_pull_bills, forward only. Argument 'mark' (default) stores a bad one marked, 'reject' fails the INSERT (QKSIG). Not PUBLIC$$;
COMMENT ON TABLE qiwi_pull_notifications IS $$QIWI Pull notifications as the web tier received them, verified and applied by the trigger qiwi_pull_notification_verify()$$;
COMMENT ON COLUMN qiwi_pull_notifications.id IS $$Order of arrival$$;
COMMENT ON COLUMN qiwi_pull_notifications.received_at IS $$When the notification was stored$$;
COMMENT ON COLUMN qiwi_pull_notifications.prv_id IS $$The project it was sent for, stored by the web tier (the notification URL it gave QIWI for that project)$$;
COMMENT ON COLUMN qiwi_pull_notifications.credential IS $$The X-Api-Signature header, or the Authorization header, as received$$;
COMMENT ON COLUMN qiwi_pull_notifications.body IS $$The form parameters as a jsonb object of strings, '+' already a space$$;
COMMENT ON COLUMN qiwi_pull_notifications.merchant IS $$Set by the trigger: the merchant whose password verified it$$;
COMMENT ON COLUMN qiwi_pull_notifications.verified IS $$Set by the trigger: the signature or Basic authorization holds for the merchant$$;
COMMENT ON COLUMN qiwi_pull_notifications.applied IS $$Set by the trigger: it recorded the bill's status in qiwi_pull_bills$$;
COMMENT ON COLUMN qiwi_pull_notifications.error IS $$Set by the trigger: why it was not verified or not applied (a duplicate, out of order, ...)$$;
COMMENT ON SEQUENCE qiwi_pull_notifications_id_seq IS $$Ids of qiwi_pull_notifications$$;
COMMENT ON TRIGGER qiwi_pull_notification_verify ON qiwi_pull_notifications IS $$Checks each notification's signature or Basic authorization and applies verified ones to qiwi_pull_bills ('mark': a bad one is stored with verified = false)$$;

-- The QIWI Wallet API (new in 1.4, as sql/ext/wallet.sql): balances, the
-- payment history, transfers and webhooks of a wallet.

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

-- The reports across every API, now with Pull (as sql/ext/reports.sql); the
-- reconciler also follows a PAID invoice while a notification about it is unconfirmed
-- All money by merchant, API and status, in one query.  received is money
-- the shop has: PAID bills, captured Payin payments, paid Pull bills, less
-- refunds; held and awaited money is listed with received 0.
CREATE OR REPLACE VIEW qiwi_money_by_status WITH (security_invoker = true) AS
SELECT m.merchant, m.api, m.status, m.currency, count(*) AS items,
       sum(m.amount) AS amount, sum(m.received) AS received
  FROM (SELECT b.merchant, 'bill'::text AS api, b.status, b.currency, b.amount,
               CASE WHEN b.status OPERATOR(pg_catalog.=) 'PAID'::text THEN b.amount ELSE 0.00 END AS received
          FROM qiwi_bills b
        UNION ALL
        SELECT r.merchant, 'bill', 'REFUNDED', r.currency, r.amount, OPERATOR(pg_catalog.-) r.amount
          FROM qiwi_refunds r
        UNION ALL
        SELECT i.merchant, 'payin', 'INVOICE_' OPERATOR(pg_catalog.||) i.status, i.currency, i.amount, 0.00
          FROM qiwi_payin_invoices i
         WHERE i.status OPERATOR(pg_catalog.<>) 'PAID'::text
        UNION ALL
        SELECT p.merchant, 'payin',
               CASE WHEN p.status OPERATOR(pg_catalog.<>) 'COMPLETED'::text THEN p.status
                    WHEN p.captured_amount OPERATOR(pg_catalog.>) 0::numeric THEN 'CAPTURED'
                    ELSE 'HELD' END,
               p.currency,
               CASE WHEN p.status OPERATOR(pg_catalog.<>) 'COMPLETED'::text THEN p.amount
                    WHEN p.captured_amount OPERATOR(pg_catalog.>) 0::numeric THEN p.captured_amount
                    ELSE p.amount OPERATOR(pg_catalog.-) rev.released END,
               CASE WHEN p.status OPERATOR(pg_catalog.=) 'COMPLETED'::text THEN p.captured_amount ELSE 0.00 END
          FROM qiwi_payin_payments p,
               LATERAL (SELECT GREATEST(CASE WHEN p.captured_amount OPERATOR(pg_catalog.=) 0::numeric
                                             THEN p.refunded_amount ELSE 0::numeric END,
                                        coalesce(sum(r.amount), 0::numeric)) AS released FROM qiwi_payin_refunds r
                         WHERE r.merchant OPERATOR(pg_catalog.=) p.merchant
                           AND r.payment_id OPERATOR(pg_catalog.=) p.payment_id
                           AND r.reversal AND r.status OPERATOR(pg_catalog.=) 'COMPLETED'::text) rev
         WHERE p.status OPERATOR(pg_catalog.<>) 'COMPLETED'::text
            OR p.captured_amount OPERATOR(pg_catalog.>) 0::numeric
            OR p.amount OPERATOR(pg_catalog.>) rev.released
        UNION ALL
        SELECT r.merchant, 'payin', CASE WHEN r.reversal THEN 'RELEASED' ELSE 'REFUNDED' END,
               r.currency, r.amount,
               CASE WHEN r.reversal THEN 0.00 ELSE OPERATOR(pg_catalog.-) r.amount END
          FROM qiwi_payin_refunds r
         WHERE r.status OPERATOR(pg_catalog.=) 'COMPLETED'::text
        UNION ALL
        SELECT pb.merchant, 'pull', pg_catalog.upper(pb.status), pb.currency, pb.amount,
               CASE WHEN pb.status OPERATOR(pg_catalog.=) 'paid'::text THEN pb.amount ELSE 0.00 END
          FROM qiwi_pull_bills pb
        UNION ALL
        SELECT pr.merchant, 'pull', CASE WHEN pr.status OPERATOR(pg_catalog.=) 'success'::text
                                         THEN 'REFUNDED' ELSE 'REFUNDING' END,
               pr.currency, pr.amount,
               CASE WHEN pr.status OPERATOR(pg_catalog.=) 'success'::text THEN OPERATOR(pg_catalog.-) pr.amount
                    ELSE 0.00 END
          FROM qiwi_pull_refunds pr
         WHERE pr.status OPERATOR(pg_catalog.<>) 'fail'::text
        UNION ALL
        SELECT w.merchant, 'wallet', w.type OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) w.status,
               w.currency, w.amount,
               CASE WHEN w.status OPERATOR(pg_catalog.<>) 'SUCCESS'::text THEN 0.00
                    WHEN w.type OPERATOR(pg_catalog.=) 'IN'::text THEN w.amount
                    ELSE OPERATOR(pg_catalog.-) w.amount END
          FROM qiwi_wallet_payments w) m
 GROUP BY m.merchant, m.api, m.status, m.currency;

-- One row: is the reconciler keeping up, with bills, with Payin invoices
-- and with Pull bills and refunds?
CREATE OR REPLACE VIEW qiwi_reconciler_health WITH (security_invoker = true) AS
SELECT s.running, s.pid, s.rounds, s.last_round_start, s.last_round_duration,
       s.last_round_checked, s.last_round_changed, s.last_round_failed, s.stopped_by_auth,
       b.open_bills, b.due_bills, coalesce(now() - b.oldest_due_at, interval '0') AS lag,
       b.failing_bills, b.max_failures, b.bill_error,
       s.last_error, s.last_error_at,
       p.payin_open_invoices, p.payin_due_invoices,
       coalesce(now() OPERATOR(pg_catalog.-) p.oldest_due_at, interval '0') AS payin_lag,
       p.payin_failing_invoices, p.payin_max_failures, p.payin_invoice_error,
       pl.pull_open_items, pl.pull_due_items,
       coalesce(now() OPERATOR(pg_catalog.-) pl.oldest_due_at, interval '0') AS pull_lag,
       pl.pull_failing_items, pl.pull_max_failures, pl.pull_error,
       ws.wallet_merchants, ws.wallet_lag, ws.wallet_blocked, ws.wallet_failing, ws.wallet_error
  FROM qiwi_reconciler_status s,
       (SELECT count(*) AS open_bills,
               count(*) FILTER (WHERE q.due_at <= now()) AS due_bills,
               min(q.due_at) FILTER (WHERE q.due_at <= now()) AS oldest_due_at,
               count(*) FILTER (WHERE q.failures > 0) AS failing_bills,
               coalesce(max(q.failures), 0) AS max_failures,
               (array_agg(q.last_error ORDER BY q.failures DESC, q.next_check_at)
                    FILTER (WHERE q.failures > 0))[1] AS bill_error
          -- due: by its schedule, or made due by qiwi_reconcile_now (the
          -- watermark, as the reconciler's claims read it)
          FROM (SELECT o.next_check_at, o.failures, o.last_error, CASE WHEN coalesce(o.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(o.next_check_at, w.due_before, now()) ELSE o.next_check_at END AS due_at
                  FROM qiwi_bills o LEFT JOIN qiwi_reconcile_watermark w ON true
                 WHERE o.status IN ('WAITING', 'CREATING')) q) b,
       -- the invoices the reconciler follows (payin_store.c's PAYIN_FOLLOWED)
       (SELECT count(*) AS payin_open_invoices,
               count(*) FILTER (WHERE CASE WHEN coalesce(i.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(i.next_check_at, w.due_before, now()) ELSE i.next_check_at END OPERATOR(pg_catalog.<=) now()) AS payin_due_invoices,
               min(CASE WHEN coalesce(i.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(i.next_check_at, w.due_before, now()) ELSE i.next_check_at END) FILTER (WHERE CASE WHEN coalesce(i.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(i.next_check_at, w.due_before, now()) ELSE i.next_check_at END OPERATOR(pg_catalog.<=) now()) AS oldest_due_at,
               count(*) FILTER (WHERE i.failures OPERATOR(pg_catalog.>) 0) AS payin_failing_invoices,
               coalesce(max(i.failures), 0) AS payin_max_failures,
               (array_agg(i.last_error ORDER BY i.failures DESC, i.next_check_at)
                    FILTER (WHERE i.failures OPERATOR(pg_catalog.>) 0))[1] AS payin_invoice_error
          FROM qiwi_payin_invoices i LEFT JOIN qiwi_reconcile_watermark w ON true
         WHERE i.status OPERATOR(pg_catalog.=) 'CREATED'::text
            OR (i.status OPERATOR(pg_catalog.=) 'PAID'::text
                AND (i.notified_at IS NOT NULL
                     OR EXISTS (SELECT FROM qiwi_payin_holds h
                                 WHERE h.merchant OPERATOR(pg_catalog.=) i.merchant
                                   AND h.bill_id OPERATOR(pg_catalog.=) i.bill_id)))) p,
       -- the Pull bills and refunds the reconciler follows: waiting, processing
       (SELECT count(*) AS pull_open_items,
               count(*) FILTER (WHERE CASE WHEN coalesce(o.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(o.next_check_at, w.due_before, now()) ELSE o.next_check_at END OPERATOR(pg_catalog.<=) now()) AS pull_due_items,
               min(CASE WHEN coalesce(o.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(o.next_check_at, w.due_before, now()) ELSE o.next_check_at END) FILTER (WHERE CASE WHEN coalesce(o.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(o.next_check_at, w.due_before, now()) ELSE o.next_check_at END OPERATOR(pg_catalog.<=) now()) AS oldest_due_at,
               count(*) FILTER (WHERE o.failures OPERATOR(pg_catalog.>) 0) AS pull_failing_items,
               coalesce(max(o.failures), 0) AS pull_max_failures,
               (array_agg(o.last_error ORDER BY o.failures DESC, o.next_check_at)
                    FILTER (WHERE o.failures OPERATOR(pg_catalog.>) 0))[1] AS pull_error
          FROM (SELECT b.next_check_at, b.scheduled_at, b.failures, b.last_error FROM qiwi_pull_bills b
                 WHERE b.status OPERATOR(pg_catalog.=) 'waiting'::text
                UNION ALL
                SELECT r.next_check_at, r.scheduled_at, r.failures, r.last_error FROM qiwi_pull_refunds r
                 WHERE r.status OPERATOR(pg_catalog.=) 'processing'::text) o
               LEFT JOIN qiwi_reconcile_watermark w ON true) pl,
       -- the merchants whose wallet history the worker keeps (wallet_sync.c)
       (SELECT count(*) AS wallet_merchants,
               coalesce(now() OPERATOR(pg_catalog.-) min(y.synced_until), interval '0') AS wallet_lag,
               count(*) FILTER (WHERE y.blocked_until OPERATOR(pg_catalog.>) now()) AS wallet_blocked,
               count(*) FILTER (WHERE y.last_error IS NOT NULL) AS wallet_failing,
               (array_agg(y.last_error ORDER BY y.last_error_at DESC)
                    FILTER (WHERE y.last_error IS NOT NULL))[1] AS wallet_error
          FROM qiwi_wallet_sync y) ws;

COMMENT ON VIEW qiwi_money_by_status IS $$All money by merchant, API (bill, payin, pull, wallet), status and currency: bills by status and their refunds; Payin invoices not paid (INVOICE_CREATED, INVOICE_EXPIRED, INVOICE_MISMATCH), payments HELD (what is still held), CAPTURED, WAITING, DECLINED, MISMATCH (QIWI's amount), refunds REFUNDED and reversals RELEASED; Pull bills by status (WAITING, PAID, REJECTED, UNPAID, EXPIRED) and their refunds REFUNDED or REFUNDING (processing); wallet payments by type and status (IN_SUCCESS, OUT_WAITING, QIWI_CARD_ERROR, ...). Held money is never received. Reads the tables with the caller's rights$$;
COMMENT ON COLUMN qiwi_money_by_status.merchant IS $$The merchant$$;
COMMENT ON COLUMN qiwi_money_by_status.api IS $$bill (Bill Payments), payin, pull or wallet$$;
COMMENT ON COLUMN qiwi_money_by_status.status IS $$The items' status (see the view's comment)$$;
COMMENT ON COLUMN qiwi_money_by_status.currency IS $$ISO 4217 code of the sums$$;
COMMENT ON COLUMN qiwi_money_by_status.items IS $$How many bills, invoices, payments or refunds$$;
COMMENT ON COLUMN qiwi_money_by_status.amount IS $$Their amounts (a captured payment's captured amount)$$;
COMMENT ON COLUMN qiwi_money_by_status.received IS $$What the shop received: PAID bills, captured payments, paid Pull bills and wallet payments IN_SUCCESS, less refunds and what the wallet paid out (OUT_SUCCESS, QIWI_CARD_SUCCESS: negative); 0 for held, awaited, declined, released, failed or MISMATCH money$$;
COMMENT ON VIEW qiwi_reconciler_health IS $$One row: qiwi_reconciler_status plus how far behind the reconciler is and which items' checks fail, for bills (open_bills ... bill_error), for Payin invoices (payin_*), for Pull bills and refunds (pull_*) and for the wallet histories it keeps (wallet_*). Reads qiwi_bills, qiwi_payin_invoices, qiwi_payin_holds, qiwi_pull_bills, qiwi_pull_refunds, qiwi_reconcile_watermark, qiwi_wallet_sync and qiwi_reconciler_status with the caller's rights$$;
COMMENT ON COLUMN qiwi_reconciler_health.running IS $$A reconciler process is running$$;
COMMENT ON COLUMN qiwi_reconciler_health.pid IS $$Its process id$$;
COMMENT ON COLUMN qiwi_reconciler_health.rounds IS $$Rounds completed since the server started (a counter)$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_start IS $$When the last round started$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_duration IS $$How long the last round took$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_checked IS $$Items the last round asked QIWI about: bills and Payin invoices$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_changed IS $$Items (bills, Payin invoices) whose status the last round changed$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_failed IS $$Checks (of bills and Payin invoices) that failed in the last round$$;
COMMENT ON COLUMN qiwi_reconciler_health.stopped_by_auth IS $$QIWI answered 401 for a merchant's key: that merchant's bills and Payin invoices wait for its options to change (last_error names it); other merchants go on$$;
COMMENT ON COLUMN qiwi_reconciler_health.open_bills IS $$WAITING and CREATING bills$$;
COMMENT ON COLUMN qiwi_reconciler_health.due_bills IS $$Open bills due: next_check_at has passed, or qiwi_reconcile_now() made them due since their last check (scheduled_at before the watermark)$$;
COMMENT ON COLUMN qiwi_reconciler_health.lag IS $$now() - the oldest due time among the due bills (next_check_at, or when qiwi_reconcile_now() made it due if earlier); 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.failing_bills IS $$Open bills whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.max_failures IS $$Most failed checks in a row of one open bill$$;
COMMENT ON COLUMN qiwi_reconciler_health.bill_error IS $$last_error of the open bill with the most failures in a row$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_error IS $$The reconciler's own last error (no worker slot, 401, ...)$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_error_at IS $$When last_error happened$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_open_invoices IS $$Payin invoices the reconciler follows: CREATED, or PAID with money held (in qiwi_payin_holds)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_due_invoices IS $$Followed Payin invoices due: next_check_at has passed, or qiwi_reconcile_now() made them due since their last check$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_lag IS $$now() - the oldest due time among the due Payin invoices (as lag); 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_failing_invoices IS $$Followed Payin invoices whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_max_failures IS $$Most failed checks in a row of one followed Payin invoice$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_invoice_error IS $$last_error of the followed Payin invoice with the most failures in a row$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_open_items IS $$Pull bills waiting and Pull refunds processing: what the reconciler follows$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_due_items IS $$Followed Pull bills and refunds due: next_check_at has passed, or qiwi_reconcile_now() made them due since their last check$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_lag IS $$now() - the oldest due time among the due Pull items (as lag); 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_failing_items IS $$Followed Pull bills and refunds whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_max_failures IS $$Most failed checks in a row of one followed Pull item$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_error IS $$last_error of the followed Pull item with the most failures in a row$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_merchants IS $$Merchants whose wallet history the worker keeps in qiwi_wallet_payments (rows of qiwi_wallet_sync)$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_lag IS $$now() - the oldest synced_until of qiwi_wallet_sync: how old the least current wallet history is; 0 when none was read whole yet$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_blocked IS $$Merchants whose wallet QIWI blocked (423) for now: their sync waits for the block to end$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_failing IS $$Merchants whose last wallet history read failed, or left a payment unrecorded$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_error IS $$The latest of their errors$$;

-- Duties: what each kind of role needs, granted in one call (qiwi_grant)
-- Every privilege a duty grants, one row each.  The list names objects;
-- each is resolved among the extension's own members (a function by name
-- resolves to all its overloads), so a planted object of the same name in
-- another schema is never granted.  A name that resolves to nothing gives
-- a row with object NULL, which qiwi_grant() refuses.
CREATE VIEW qiwi_duties AS
SELECT d.duty, d.object_type, d.name,
       (pg_catalog.pg_identify_object(o.classid, o.objid, 0)).identity AS object,
       d.privilege, d.columns
  FROM (VALUES
	-- read: the books, tables and reports; no call to QIWI, and not the
	-- buyers' saved payment means (qiwi_payin_tokens, qiwi_payin_card_checks)
	('read', 'TABLE', 'qiwi_bills', 'SELECT', NULL::text[]),
	('read', 'TABLE', 'qiwi_refunds', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_bill_events', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_notifications', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_invoices', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_payments', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_captures', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_refunds', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_events', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_notifications', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_pull_bills', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_pull_refunds', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_pull_events', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_pull_notifications', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_payments', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_transfers', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_transfer_events', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_transfers_unrecorded', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_webhooks', 'SELECT', NULL),

	('read', 'TABLE', 'qiwi_wallet_sync', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_sync_status', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_tokens', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_reconciler_status', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_reconciler_health', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_reconcile_watermark', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_money_per_day', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_money_by_status', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_open_bills', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_bills_changed_today', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_refunds_per_bill', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_holds', 'SELECT', NULL),
	-- pay: money in (bills, invoices) and QIWI's word on what pay made
	('pay', 'FUNCTION', 'qiwi_create_bill', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_create_bill_after_commit', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_bill_status', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_create_invoice', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_invoice', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_payments', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_invoice_payments', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_payment', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_card_check', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_delete_token', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_pull_create_bill', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_pull_bill_status', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_history', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_transaction', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_totals', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_balances', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook_register', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook_delete', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook_test', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook_fetch_key', 'EXECUTE', NULL),
	-- refund: money given back, bills cancelled, held money captured, and
	-- QIWI's word on what refund made
	('refund', 'FUNCTION', 'qiwi_refund', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_refund_status', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_cancel_bill', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_refund', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_refund_status', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_refunds', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_capture', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_capture_status', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_pull_cancel_bill', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_pull_refund', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_pull_refund_status', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_wallet_transfer', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_wallet_transfer_after_commit', 'EXECUTE', NULL),
	-- monitor: what monitoring/postgres_exporter_queries.yaml reads, and
	-- of the tables only the columns those reports need (no buyer's
	-- details, links, comments or notification bodies)
	('monitor', 'TABLE', 'qiwi_reconciler_status', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_reconciler_health', 'SELECT', NULL),
	('monitor', 'FUNCTION', 'qiwi_reconcilers', 'EXECUTE', NULL),
	('monitor', 'TABLE', 'qiwi_reconcile_watermark', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_money_per_day', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_money_by_status', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_open_bills', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_payin_holds', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_wallet_sync_status', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_wallet_sync', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_bills', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'amount', 'currency', 'status', 'status_changed_at', 'created_at',
	       'expires_at', 'first_seen_at', 'next_check_at', 'failures', 'last_error', 'scheduled_at']),
	('monitor', 'TABLE', 'qiwi_refunds', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'amount', 'currency', 'created_at', 'first_seen_at']),
	('monitor', 'TABLE', 'qiwi_payin_invoices', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'amount', 'currency', 'status', 'created_at', 'expires_at',
	       'first_seen_at', 'next_check_at', 'failures', 'last_error', 'notified_at', 'scheduled_at']),
	('monitor', 'TABLE', 'qiwi_payin_payments', 'SELECT',
	 ARRAY['merchant', 'payment_id', 'bill_id', 'amount', 'currency', 'status', 'captured_amount',
	       'refunded_amount', 'status_changed_at', 'capture_deadline']),
	('monitor', 'TABLE', 'qiwi_payin_refunds', 'SELECT',
	 ARRAY['merchant', 'payment_id', 'amount', 'currency', 'status', 'reversal']),
	('monitor', 'TABLE', 'qiwi_pull_bills', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'amount', 'currency', 'status', 'status_changed_at', 'first_seen_at',
	       'next_check_at', 'failures', 'last_error', 'scheduled_at']),
	('monitor', 'TABLE', 'qiwi_pull_refunds', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'refund_id', 'amount', 'currency', 'status', 'first_seen_at',
	       'next_check_at', 'failures', 'last_error', 'scheduled_at']),
	('monitor', 'TABLE', 'qiwi_wallet_payments', 'SELECT',
	 ARRAY['merchant', 'txn_id', 'type', 'date', 'status', 'amount', 'currency']),
	('monitor', 'TABLE', 'qiwi_notifications', 'SELECT', ARRAY['received_at', 'verified']),
	('monitor', 'TABLE', 'qiwi_payin_notifications', 'SELECT', ARRAY['received_at', 'verified']),
	('monitor', 'TABLE', 'qiwi_pull_notifications', 'SELECT', ARRAY['received_at', 'verified']),
	-- notify: the web tier stores QIWI's notifications; the triggers decide
	('notify', 'TABLE', 'qiwi_notifications', 'INSERT', NULL),
	('notify', 'SEQUENCE', 'qiwi_notifications_id_seq', 'USAGE', NULL),
	('notify', 'TABLE', 'qiwi_payin_notifications', 'INSERT', NULL),
	('notify', 'SEQUENCE', 'qiwi_payin_notifications_id_seq', 'USAGE', NULL),
	('notify', 'TABLE', 'qiwi_pull_notifications', 'INSERT', NULL),
	('notify', 'SEQUENCE', 'qiwi_pull_notifications_id_seq', 'USAGE', NULL),
	('notify', 'TABLE', 'qiwi_wallet_webhooks', 'INSERT', NULL),
	('notify', 'SEQUENCE', 'qiwi_wallet_webhooks_id_seq', 'USAGE', NULL)
	) d(duty, object_type, name, privilege, columns)
  LEFT JOIN LATERAL (
	SELECT m.classid, m.objid
	  FROM pg_catalog.pg_depend m
	  JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) m.refobjid
	  LEFT JOIN pg_catalog.pg_proc p
	         ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
	        AND p.oid OPERATOR(pg_catalog.=) m.objid
	  LEFT JOIN pg_catalog.pg_class c
	         ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
	        AND c.oid OPERATOR(pg_catalog.=) m.objid
	 WHERE e.extname OPERATOR(pg_catalog.=) 'qiwi_kassa'::pg_catalog.name
	   AND m.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
	   AND m.deptype OPERATOR(pg_catalog.=) 'e'::"char"
	   AND CASE d.object_type
	       WHEN 'FUNCTION' THEN p.proname::pg_catalog.text OPERATOR(pg_catalog.=) d.name
	       WHEN 'TABLE' THEN c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v']::"char"[])
	                         AND c.relname::pg_catalog.text OPERATOR(pg_catalog.=) d.name
	       WHEN 'SEQUENCE' THEN c.relkind OPERATOR(pg_catalog.=) 'S'::"char"
	                            AND c.relname::pg_catalog.text OPERATOR(pg_catalog.=) d.name
	       END) o ON true;

-- Grant role what duty needs (see qiwi_duties); as the extension's owner
-- or a superuser, since it runs with the caller's rights
CREATE FUNCTION qiwi_grant(role regrole, duty text)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	duties text;
	owner oid;
	known text;
	grantee text;
	p record;
	granted integer := 0;
BEGIN
	-- the extension's own view, whatever the caller's search_path
	SELECT pg_catalog.format('%I.qiwi_duties', n.nspname), e.extowner INTO duties, owner
	  FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
	 WHERE e.extname = 'qiwi_kassa';
	IF NOT pg_catalog.pg_has_role(current_user, owner, 'USAGE') THEN
		RAISE EXCEPTION 'permission denied to grant the duty % of qiwi_kassa to %', duty, role
		      USING ERRCODE = '42501',
		            DETAIL = pg_catalog.format('Role %I is neither a superuser nor has the rights of the extension''s owner %s.',
		                                       current_user, owner::regrole),
		            HINT = 'Run qiwi_grant() as the owner of qiwi_kassa or as a superuser.';
	END IF;
	EXECUTE pg_catalog.format('SELECT pg_catalog.string_agg(DISTINCT d.duty, '', '' ORDER BY d.duty) FROM %s d', duties)
	   INTO known;
	IF duty IS NULL OR NOT duty = ANY (pg_catalog.string_to_array(known, ', ')) THEN
		RAISE EXCEPTION 'duty % is not a duty of qiwi_kassa', coalesce(pg_catalog.quote_literal(duty), 'NULL')
		      USING ERRCODE = '22023', HINT = pg_catalog.format('duty must be one of: %s.', known);
	END IF;
	SELECT r.rolname INTO grantee FROM pg_catalog.pg_roles r WHERE r.oid = role;
	IF grantee IS NULL THEN
		RAISE EXCEPTION 'role must name an existing role (it is %)', coalesce(role::text, 'NULL')
		      USING ERRCODE = '22023';
	END IF;
	FOR p IN EXECUTE pg_catalog.format('SELECT d.* FROM %s d WHERE d.duty = $1 ORDER BY d.object_type, d.name', duties)
	         USING duty LOOP
		IF p.object IS NULL THEN
			RAISE EXCEPTION 'duty % names the % %, which this installation of qiwi_kassa lacks',
			      duty, pg_catalog.lower(p.object_type), p.name
			      USING ERRCODE = '55000', HINT = 'Update the extension: ALTER EXTENSION qiwi_kassa UPDATE.';
		END IF;
		EXECUTE pg_catalog.format('GRANT %s%s ON %s %s TO %I', p.privilege,
		        (SELECT ' (' || pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') || ')'
		           FROM pg_catalog.unnest(p.columns) c),
		        p.object_type, p.object, grantee);
		granted := granted + 1;
	END LOOP;
	RETURN granted;
END
$fn$;

-- It grants as the owner: only the owner runs it (and checks so itself).
REVOKE ALL ON FUNCTION qiwi_grant(regrole, text) FROM PUBLIC;

COMMENT ON VIEW qiwi_duties IS $$What qiwi_grant(role, duty) grants, one privilege a row: read (SELECT on the books and reports, no call to QIWI), pay (EXECUTE on the calls that take money in and ask QIWI about it), refund (EXECUTE on refunds, cancellations, captures and their status calls), monitor (what monitoring/postgres_exporter_queries.yaml reads: the reports and only the columns they need), notify (INSERT into the notification tables). Not PUBLIC$$;
COMMENT ON COLUMN qiwi_duties.duty IS $$The duty: read, pay, refund, monitor or notify$$;
COMMENT ON COLUMN qiwi_duties.object_type IS $$FUNCTION, TABLE (a table or a view) or SEQUENCE$$;
COMMENT ON COLUMN qiwi_duties.name IS $$The object's name; a function's name stands for all its overloads$$;
COMMENT ON COLUMN qiwi_duties.object IS $$The extension's object, schema-qualified (a function with its argument types); NULL when this installation lacks it$$;
COMMENT ON COLUMN qiwi_duties.privilege IS $$The privilege granted: SELECT, INSERT, EXECUTE or USAGE$$;
COMMENT ON COLUMN qiwi_duties.columns IS $$The columns SELECT is granted on, NULL for the whole table or view$$;
COMMENT ON FUNCTION qiwi_grant(regrole, text) IS $$Grant the role what the duty needs, as listed in qiwi_duties: 'read', 'pay', 'refund', 'monitor' or 'notify'; returns how many privileges (a function's overloads each count). Idempotent; duties add up. Runs with the caller's rights: only the extension's owner or a superuser can grant. USAGE on a merchant's server is granted apart (GRANT USAGE ON FOREIGN SERVER). Not PUBLIC$$;

-- qiwi_reconciler_status: last_error describes the last round (cleared by a
-- clean one); its history is in the new last_seen_error columns
CREATE FUNCTION qiwi_reconciler_seen_error(
	OUT last_seen_error text,
	OUT last_seen_error_at timestamptz)
AS 'MODULE_PATHNAME', 'qiwi_reconciler_seen_error'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE OR REPLACE VIEW qiwi_reconciler_status AS
SELECT s.*, e.last_seen_error, e.last_seen_error_at FROM qiwi_reconciler_state() s, qiwi_reconciler_seen_error() e;
COMMENT ON COLUMN qiwi_reconciler_status.last_error IS $$The reconciler's error now: of the last round that checked items, or a condition that lasts (a refused key, no worker slot, no key); NULL once a round ends clean (not an item's: see qiwi_bills.last_error, qiwi_payin_invoices.last_error)$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_error_at IS $$When last_error happened$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_seen_error IS $$The reconciler's latest error, kept after clean rounds (the history of last_error)$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_seen_error_at IS $$When last_seen_error happened$$;
COMMENT ON FUNCTION qiwi_reconciler_seen_error() IS $$The reconciler's latest error and its time, kept after clean rounds (read it through the view qiwi_reconciler_status)$$;

-- qiwi_payin_invoice_payments asks QIWI; qiwi_payin_payments, its old name,
-- is also a table's: it stays for 1.4 only
-- it asks QIWI: its name is no table's (qiwi_payin_payments, the old name,
-- stays for 1.4 only)
CREATE FUNCTION qiwi_payin_invoice_payments(bill_id text, merchant text DEFAULT NULL)
RETURNS SETOF qiwi_payin_payment
AS 'MODULE_PATHNAME', 'qiwi_payin_payments'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION qiwi_payin_invoice_payments(text, text) FROM PUBLIC;

-- The new name gets exactly the old one's privileges: what a shop granted,
-- to its roles, with grant option
DO $$
DECLARE
	old_oid oid := pg_catalog.to_regprocedure('@extschema@.qiwi_payin_payments(text, text)');
	entry record;
BEGIN
	FOR entry IN
		SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0::oid THEN 'PUBLIC'
		            ELSE pg_catalog.quote_ident(r.rolname) END AS grantee,
		       a.is_grantable
		  FROM pg_catalog.pg_proc p
		  CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
		  LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
		 WHERE p.oid OPERATOR(pg_catalog.=) old_oid
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION @extschema@.qiwi_payin_invoice_payments(text, text) TO %s%s',
		                          entry.grantee, CASE WHEN entry.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
END
$$;
COMMENT ON FUNCTION qiwi_payin_payments(text, text) IS $$Deprecated (removed in 1.5): the old name of qiwi_payin_invoice_payments, which the table qiwi_payin_payments shares: asks QIWI for the payments of the Payin invoice bill_id, records and returns them. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_invoice_payments(text, text) IS $$Ask QIWI for the payments of the Payin invoice bill_id, record and return them (a request per call: in a query over many rows, call it in FROM or LATERAL, never as (f()).*). Not PUBLIC. merchant: whose$$;

-- Payin refunds: refused before sending in another currency than their
-- payment's; recording one writes its payment's row (issue 19)
COMMENT ON COLUMN qiwi_payin_payments.refunded_amount IS $$Money returned or released so far, as QIWI last said of the payment or of its refunds (only grows)$$;
COMMENT ON FUNCTION qiwi_payin_refund(text, text, numeric, text, text) IS $$Refund amount (in currency, default RUB) of payment payment_id under the shop's refund_id: captured money is returned, held money released (flag REVERSAL). Refused before sending when currency is not the payment's or amount exceeds what is left (a payment qiwi_payin_payments lacks is asked for first); a lost answer is asked for by refund_id first. Moves money: not PUBLIC. merchant: whose$$;

-- Bill refunds: refused before sending in another currency than their
-- bill's; recording one writes its bill's row (issue 19)
COMMENT ON COLUMN qiwi_bills.checked_at IS $$When QIWI last told us about the bill (a call, the reconciler or a verified notification) or about a refund of it$$;
COMMENT ON FUNCTION qiwi_refund(text, text, numeric, text, text) IS $$Refund amount (in currency, default RUB) of the paid bill bill_id under the shop's refund_id (retry-safe); refused before sending when currency is not the bill's or amount exceeds what is left to refund (a bill qiwi_bills lacks is asked for first). Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;

-- The extension's comment names both APIs it covers (CREATE EXTENSION takes
-- it from qiwi_kassa.control; an update does not)
COMMENT ON EXTENSION qiwi_kassa IS 'QIWI payments in SQL: the Bill Payments API (bills, refunds, payment links), the Payin API (invoices, holds, captures, refunds, tokens, card checks) and the Pull API (QIWI Wallet bills and refunds)';

-- Each option of a merchant names its API (issue 21): the options of the
-- servers of the wrapper qiwi and of their user mappings, made under 1.2
-- and 1.3, get their new names with the same values.  This library's
-- validator checks them (it refuses the old names); no message shows a
-- value, which may be a key.
DO $$
DECLARE
	target record;
	changes text;
	hint_changes text;
	message text;
	detail text;
	state text;
BEGIN
	FOR target IN
		SELECT pg_catalog.format('server %I', s.srvname) AS object,
		       pg_catalog.format('ALTER SERVER %I', s.srvname) AS command,
		       s.srvoptions AS options
		  FROM pg_catalog.pg_foreign_server s
		  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) s.srvfdw
		 WHERE w.fdwname OPERATOR(pg_catalog.=) 'qiwi'::name
		UNION ALL
		SELECT pg_catalog.format('the user mapping for %s of server %I', m.who, s.srvname),
		       pg_catalog.format('ALTER USER MAPPING FOR %s SERVER %I', m.who, s.srvname),
		       u.umoptions
		  FROM pg_catalog.pg_user_mapping u
		  JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) u.umserver
		  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) s.srvfdw
		  LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) u.umuser
		 CROSS JOIN LATERAL (SELECT CASE WHEN u.umuser OPERATOR(pg_catalog.=) 0::oid THEN 'PUBLIC'
		                                 ELSE pg_catalog.quote_ident(r.rolname) END) m(who)
		 WHERE w.fdwname OPERATOR(pg_catalog.=) 'qiwi'::name
	LOOP
		SELECT pg_catalog.string_agg(pg_catalog.format('DROP %I, ADD %I %L', o.option_name, n.new_name, o.option_value), ', '),
		       pg_catalog.string_agg(pg_catalog.format('DROP %I, ADD %I ''...''', o.option_name, n.new_name), ', ')
		  INTO changes, hint_changes
		  FROM pg_catalog.pg_options_to_table(target.options) o
		  JOIN (VALUES ('site_id', 'bill_site_id'), ('api_url', 'bill_api_url'),
		               ('public_key', 'bill_public_key'), ('secret_key', 'bill_secret_key'),
		               ('capture_hours', 'payin_capture_hours')) n(old_name, new_name)
		    ON n.old_name OPERATOR(pg_catalog.=) o.option_name;
		CONTINUE WHEN changes IS NULL;
		BEGIN
			EXECUTE pg_catalog.format('%s OPTIONS (%s)', target.command, changes);
		EXCEPTION WHEN OTHERS THEN
			-- said again without the statement, which holds the values
			GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
			                        state = RETURNED_SQLSTATE;
			RAISE EXCEPTION 'could not rename the options of %: %', target.object, message
				USING ERRCODE = state, DETAIL = detail,
				      HINT = pg_catalog.format('Rename them yourself in one statement, correcting the value refused: %s OPTIONS (%s); then run ALTER EXTENSION qiwi_kassa UPDATE again.',
				                               target.command, hint_changes);
		END;
	END LOOP;
END
$$;
-- the comments say the new names
COMMENT ON FUNCTION qiwi_fdw_validator(text[], oid) IS $$Validator of the wrapper qiwi: refuses unknown options (and the names options had before 1.4, saying the new one), keys anywhere but on a user mapping, and invalid values (without showing them)$$;
COMMENT ON FOREIGN DATA WRAPPER qiwi IS $$QIWI merchants: CREATE SERVER name FOREIGN DATA WRAPPER qiwi OPTIONS (for Bill Payments bill_site_id, bill_api_url, bill_public_key; for Payin payin_site_id, payin_api_url, payin_capture_hours; for Pull pull_prv_id, pull_api_id, pull_api_url; for Wallet wallet_number, wallet_api_url, wallet_token_issued); CREATE USER MAPPING FOR PUBLIC SERVER name OPTIONS (bill_secret_key; payin_api_key, payin_notification_key; pull_api_password, pull_notification_password; wallet_token, wallet_webhook_key). Each option's name says its API. A role uses a merchant with USAGE on its server$$;
COMMENT ON FUNCTION qiwi_payment_form_url(text, numeric, text, text, text, text, text, jsonb, timestamptz, text, text) IS $$URL of QIWI's form that creates the bill bill_id for amount when the buyer opens it. public_key: NULL means the merchant's (qiwi.public_key, or its server's bill_public_key); phone, email, account, comment, custom_fields as in qiwi_create_bill; lifetime: expiry (cut to the minute); success_url: where the buyer returns. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON COLUMN qiwi_payin_payments.capture_deadline IS $$For an authorised two-step payment: authorisation + the merchant's payin_capture_hours (72 by default), when QIWI captures or releases the hold by itself$$;
COMMENT ON VIEW qiwi_payin_holds IS $$Money held by authorised two-step payments not captured yet, oldest first, with the capture deadline (authorisation + payin_capture_hours): what the shop must capture or release. Reads the tables with the caller's rights$$;

-- ---------- a reporting copy ----------
-- The publication a reporting copy subscribes to: every table the reports
-- read, of every API (not the notification tables: no report reads them,
-- and a Payin TOKEN notification carries a buyer's payment token, like
-- qiwi_payin_tokens and qiwi_payin_card_checks, which stay out too).  Run
-- as the caller, who must own the tables (the extension's owner, or a
-- superuser) and may create in the database, as CREATE PUBLICATION asks.
CREATE FUNCTION qiwi_create_publication(name text DEFAULT 'qiwi_kassa_reports')
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	statement text;
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s', name,
	                         pg_catalog.string_agg(pg_catalog.format('%I.%I', s.nspname, t.tab), ', ' ORDER BY t.ord))
	  INTO statement
	  FROM pg_catalog.pg_extension e
	  JOIN pg_catalog.pg_namespace s ON s.oid OPERATOR(pg_catalog.=) e.extnamespace,
	       pg_catalog.unnest(ARRAY['qiwi_bills', 'qiwi_refunds', 'qiwi_bill_events',
	                               'qiwi_payin_invoices', 'qiwi_payin_payments', 'qiwi_payin_captures',
	                               'qiwi_payin_refunds', 'qiwi_payin_events',
	                               'qiwi_pull_bills', 'qiwi_pull_refunds', 'qiwi_pull_events',
	                               'qiwi_wallet_payments', 'qiwi_wallet_transfers',
	                               'qiwi_wallet_transfer_events', 'qiwi_wallet_sync',
	                               'qiwi_reconcile_watermark']) WITH ORDINALITY AS t(tab, ord)
	 WHERE e.extname OPERATOR(pg_catalog.=) 'qiwi_kassa'
	 GROUP BY s.nspname;
	EXECUTE statement;
	RETURN statement;
END
$fn$;
REVOKE ALL ON FUNCTION qiwi_create_publication(text) FROM PUBLIC;
COMMENT ON FUNCTION qiwi_create_publication(text) IS $$Create the publication (named name) of every table the reports read, for a reporting copy that subscribes to it with logical replication: qiwi_bills, qiwi_refunds, qiwi_bill_events, qiwi_payin_invoices, qiwi_payin_payments, qiwi_payin_captures, qiwi_payin_refunds, qiwi_payin_events, qiwi_pull_bills, qiwi_pull_refunds, qiwi_pull_events, qiwi_wallet_payments, qiwi_wallet_transfers, qiwi_wallet_transfer_events, qiwi_wallet_sync, qiwi_reconcile_watermark (which the health view reads; not the notification tables, tokens and card checks); returns the statement it ran. Runs with the caller's rights: the tables' owner or a superuser. Not PUBLIC$$;

-- A reconciler for every database that has the extension (1.4): every
-- database's reconciler from any database, and this one's state
-- Every database's reconciler, cluster-wide (1.4)
CREATE FUNCTION qiwi_reconcilers(
	OUT database text,
	OUT state text,
	OUT pid integer,
	OUT waiting_since timestamptz,
	OUT started_at timestamptz,
	OUT rounds bigint,
	OUT last_round_start timestamptz,
	OUT last_round_duration interval,
	OUT last_round_checked bigint,
	OUT last_round_failed bigint,
	OUT last_error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'qiwi_reconcilers'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
REVOKE ALL ON FUNCTION qiwi_reconcilers() FROM PUBLIC;

CREATE OR REPLACE VIEW qiwi_reconciler_status AS
SELECT s.*, e.last_seen_error, e.last_seen_error_at,
       coalesce(r.state, 'not served') AS state, r.waiting_since
  FROM qiwi_reconciler_state() s CROSS JOIN qiwi_reconciler_seen_error() e
  LEFT JOIN qiwi_reconcilers() r ON r.database OPERATOR(pg_catalog.=) s.database;

COMMENT ON FUNCTION qiwi_reconcilers() IS $$Every database's reconciler, from any database: one row per database where a reconciler found the extension, as the launcher knows them: its state (running, starting, waiting for a slot while qiwi.max_reconcilers run and the databases take turns, stopped), since when it waits, its process, rounds and last round, and its last error. Not PUBLIC (the duty monitor has it)$$;
COMMENT ON COLUMN qiwi_reconciler_status.state IS $$running, starting, waiting for a slot (more databases than qiwi.max_reconcilers: they take turns), stopped, or not served (qiwi.database filters this database out, or the launcher has not come to it yet)$$;
COMMENT ON COLUMN qiwi_reconciler_status.waiting_since IS $$While waiting for a slot: since when$$;
COMMENT ON COLUMN qiwi_reconciler_status.database IS $$This database (each database that has the extension has its own reconciler)$$;
COMMENT ON VIEW qiwi_reconciler_status IS $$This database's reconciler: is it running (pid, database) or waiting for its turn (state), its rounds, the last round's start, duration and items (bills, Payin invoices) checked, changed and failed, a 401 stop, and its last error; every database's: qiwi_reconcilers()$$;
COMMENT ON FUNCTION qiwi_reconciler_state() IS $$This database's reconciler's state (read it through the view qiwi_reconciler_status)$$;
COMMENT ON FUNCTION qiwi_reconciler_seen_error() IS $$This database's reconciler's latest error and its time, kept after clean rounds (read it through the view qiwi_reconciler_status)$$;

-- Payin captures and refunds record their intent ('sending') with a commit
-- of its own before their PUT; the reconciler settles those whose outcome
-- is not known by asking QIWI for them by their id, and makes UNSENT those
-- QIWI never got (docs/operations.md).
ALTER TABLE qiwi_payin_captures ALTER COLUMN amount DROP NOT NULL, ALTER COLUMN currency DROP NOT NULL,
	ALTER COLUMN checked_at DROP NOT NULL,
	DROP CONSTRAINT qiwi_payin_captures_status_check,
	ADD CONSTRAINT qiwi_payin_captures_status_check CHECK (status IN ('sending', 'COMPLETED', 'DECLINED', 'UNSENT')),
	ADD COLUMN next_check_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	ADD COLUMN check_count integer NOT NULL DEFAULT 0,
	ADD COLUMN failures integer NOT NULL DEFAULT 0,
	ADD COLUMN last_error text,
	ADD COLUMN capture_key text NOT NULL GENERATED ALWAYS AS (payment_id OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) capture_id) STORED,
	ADD CONSTRAINT qiwi_payin_captures_answered CHECK (status IN ('sending', 'UNSENT') OR amount IS NOT NULL AND currency IS NOT NULL);
CREATE UNIQUE INDEX qiwi_payin_captures_key ON qiwi_payin_captures (merchant, capture_key);
CREATE INDEX qiwi_payin_captures_due ON qiwi_payin_captures (next_check_at) WHERE status = 'sending';
ALTER TABLE qiwi_payin_captures ADD COLUMN scheduled_at timestamptz;
ALTER TABLE qiwi_payin_captures ALTER COLUMN scheduled_at SET DEFAULT clock_timestamp();
ALTER TABLE qiwi_payin_refunds ALTER COLUMN checked_at DROP NOT NULL,
	DROP CONSTRAINT qiwi_payin_refunds_status_check,
	ADD CONSTRAINT qiwi_payin_refunds_status_check CHECK (status IN ('sending', 'COMPLETED', 'DECLINED', 'UNSENT')),
	ADD COLUMN next_check_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	ADD COLUMN check_count integer NOT NULL DEFAULT 0,
	ADD COLUMN failures integer NOT NULL DEFAULT 0,
	ADD COLUMN last_error text,
	ADD COLUMN refund_key text NOT NULL GENERATED ALWAYS AS (payment_id OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) refund_id) STORED;
CREATE UNIQUE INDEX qiwi_payin_refunds_key ON qiwi_payin_refunds (merchant, refund_key);
CREATE INDEX qiwi_payin_refunds_due ON qiwi_payin_refunds (next_check_at) WHERE status = 'sending';
ALTER TABLE qiwi_payin_refunds ADD COLUMN scheduled_at timestamptz;
ALTER TABLE qiwi_payin_refunds ALTER COLUMN scheduled_at SET DEFAULT clock_timestamp();
COMMENT ON TABLE qiwi_payin_captures IS $$Every Payin capture made or asked about from this database: its intent (sending) committed before it is sent, then recorded once from QIWI's answer and only confirmed; an intent QIWI refused is withdrawn (its events say so), one QIWI never got is UNSENT$$;
COMMENT ON COLUMN qiwi_payin_captures.amount IS $$Money taken; NULL while sending or UNSENT (QIWI's answer says how much)$$;
COMMENT ON COLUMN qiwi_payin_captures.currency IS $$ISO 4217 code of amount; NULL while sending or UNSENT$$;
COMMENT ON COLUMN qiwi_payin_captures.status IS $$sending (its intent, committed before the PUT: outcome not known yet; the reconciler asks QIWI for it by its id, never sends it again), COMPLETED or DECLINED; UNSENT: QIWI never got it (it did not have it at a second look past qiwi.unsent_after after its intent, see last_error): nothing moved, and a new call with its id sends it, its intent committed again$$;
COMMENT ON COLUMN qiwi_payin_captures.checked_at IS $$When QIWI last told us about it; NULL while sending, before any answer$$;
COMMENT ON COLUMN qiwi_payin_captures.status_changed_at IS $$When its status was set: QIWI's time, once it answered; while sending, when its intent was committed (UNSENT's grace counts from it); when it became UNSENT$$;
COMMENT ON COLUMN qiwi_payin_captures.next_check_at IS $$When the reconciler asks QIWI about this capture next, while it is sending (backs off after each answer that leaves it so, or failure)$$;
COMMENT ON COLUMN qiwi_payin_captures.check_count IS $$The reconciler's checks of it while sending that QIWI answered$$;
COMMENT ON COLUMN qiwi_payin_captures.failures IS $$The reconciler's failed checks in a row (0 after an answer)$$;
COMMENT ON COLUMN qiwi_payin_captures.last_error IS $$Why its last check failed, that QIWI does not have it, or why it is UNSENT; NULL once answered$$;
COMMENT ON COLUMN qiwi_payin_captures.capture_key IS $$payment_id/capture_id: the capture's key for the reconciler$$;
COMMENT ON COLUMN qiwi_payin_captures.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;
COMMENT ON TABLE qiwi_payin_refunds IS $$Every Payin refund or reversal made or asked about from this database: its intent (sending) committed before it is sent, then recorded once from QIWI's answer and only confirmed; an intent QIWI refused is withdrawn (its events say so), one QIWI never got is UNSENT$$;
COMMENT ON COLUMN qiwi_payin_refunds.amount IS $$Money returned or released$$;
COMMENT ON COLUMN qiwi_payin_refunds.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_payin_refunds.status IS $$sending (its intent, committed before the PUT: outcome not known yet, its amount counted as spent by later refunds; the reconciler asks QIWI for it by its id, never sends it again), COMPLETED or DECLINED; UNSENT: QIWI never got it (it did not have it at a second look past qiwi.unsent_after after its intent, see last_error): nothing moved, it no longer counts against the payment's refunds, and a new call with its id sends it, its intent committed again$$;
COMMENT ON COLUMN qiwi_payin_refunds.checked_at IS $$When QIWI last told us about it; NULL while sending, before any answer$$;
COMMENT ON COLUMN qiwi_payin_refunds.status_changed_at IS $$When its status was set: QIWI's time, once it answered; while sending, when its intent was committed (UNSENT's grace counts from it); when it became UNSENT$$;
COMMENT ON COLUMN qiwi_payin_refunds.next_check_at IS $$When the reconciler asks QIWI about this refund next, while it is sending (backs off after each answer that leaves it so, or failure)$$;
COMMENT ON COLUMN qiwi_payin_refunds.check_count IS $$The reconciler's checks of it while sending that QIWI answered$$;
COMMENT ON COLUMN qiwi_payin_refunds.failures IS $$The reconciler's failed checks in a row (0 after an answer)$$;
COMMENT ON COLUMN qiwi_payin_refunds.last_error IS $$Why its last check failed, that QIWI does not have it, or why it is UNSENT; NULL once answered$$;
COMMENT ON COLUMN qiwi_payin_refunds.refund_key IS $$payment_id/refund_id: the refund's key for the reconciler$$;
COMMENT ON COLUMN qiwi_payin_refunds.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;
COMMENT ON COLUMN qiwi_payin_events.new_status IS $$Status after; REFUSED for a capture's or refund's intent that QIWI refused (its row is withdrawn: nothing moved)$$;
