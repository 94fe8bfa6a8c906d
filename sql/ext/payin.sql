-- qiwi_kassa, the Payin API v1 (seed 004): its types, tables, functions and
-- reports.  Follows sql/ext/bill.sql.  Payin has tables of its own (not
-- qiwi_bills with an api column): an invoice has payments, and a payment
-- captures and refunds, with statuses and amounts bills do not have.

CREATE TYPE qiwi_payin_invoice AS (
	bill_id text,
	invoice_uid text,
	site_id text,
	amount numeric,
	currency text,
	status text,
	flags text[],
	pay_url text,
	comment text,
	created_at timestamptz,
	expires_at timestamptz,
	customer jsonb,
	custom_fields jsonb
);

CREATE TYPE qiwi_payin_payment AS (
	payment_id text,
	bill_id text,
	status text,
	amount numeric,
	currency text,
	captured_amount numeric,
	refunded_amount numeric,
	method text,
	masked_pan text,
	reason_code text,
	reason_message text,
	created_at timestamptz,
	status_changed_at timestamptz,
	flags text[]
);

CREATE TYPE qiwi_payin_capture AS (
	payment_id text,
	capture_id text,
	amount numeric,
	currency text,
	status text,
	flags text[],
	comment text,
	created_at timestamptz,
	status_changed_at timestamptz
);

CREATE TYPE qiwi_payin_refund AS (
	payment_id text,
	refund_id text,
	amount numeric,
	currency text,
	status text,
	flags text[],
	comment text,
	created_at timestamptz,
	status_changed_at timestamptz
);

CREATE TABLE qiwi_payin_invoices (
	merchant text NOT NULL,
	bill_id text NOT NULL,
	invoice_uid text,
	site_id text,
	amount numeric NOT NULL,
	currency text NOT NULL,
	status text NOT NULL CHECK (status IN ('CREATED', 'PAID', 'EXPIRED', 'MISMATCH')),
	capture text NOT NULL,
	flags text[],
	pay_url text,
	comment text,
	customer jsonb,
	custom_fields jsonb,
	created_at timestamptz,
	expires_at timestamptz,
	status_changed_at timestamptz,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,
	qiwi_amount numeric,
	qiwi_currency text,
	qiwi_status text,
	next_check_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	check_count integer NOT NULL DEFAULT 0,
	failures integer NOT NULL DEFAULT 0,
	last_error text,
	notified_at timestamptz,
	scheduled_at timestamptz DEFAULT clock_timestamp(),
	CONSTRAINT qiwi_payin_invoices_pkey PRIMARY KEY (merchant, bill_id),
	-- a card check (capture 'check') moves no money: QIWI answers it for 0.00
	CONSTRAINT qiwi_payin_invoices_capture_check CHECK (capture IN ('auto', 'manual', 'check')),
	CONSTRAINT qiwi_payin_invoices_amount_check CHECK (amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)
		AND CASE WHEN capture OPERATOR(pg_catalog.=) 'check' THEN amount OPERATOR(pg_catalog.=) 0::numeric
		    ELSE amount OPERATOR(pg_catalog.>) 0::numeric END)
);
CREATE INDEX qiwi_payin_invoices_status ON qiwi_payin_invoices (status, status_changed_at);
CREATE INDEX qiwi_payin_invoices_due ON qiwi_payin_invoices (next_check_at) WHERE status IN ('CREATED', 'PAID');

CREATE TABLE qiwi_payin_payments (
	merchant text NOT NULL,
	payment_id text NOT NULL,
	bill_id text,
	status text NOT NULL CHECK (status IN ('WAITING', 'COMPLETED', 'DECLINED', 'MISMATCH')),
	amount numeric NOT NULL CHECK (amount OPERATOR(pg_catalog.>) 0::numeric AND amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)),
	currency text NOT NULL,
	captured_amount numeric NOT NULL DEFAULT 0 CHECK (captured_amount OPERATOR(pg_catalog.>=) 0::numeric),
	refunded_amount numeric NOT NULL DEFAULT 0 CHECK (refunded_amount OPERATOR(pg_catalog.>=) 0::numeric),
	method text,
	masked_pan text,
	reason_code text,
	reason_message text,
	flags text[],
	created_at timestamptz,
	status_changed_at timestamptz,
	capture_deadline timestamptz,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,
	qiwi_status text,
	CONSTRAINT qiwi_payin_payments_pkey PRIMARY KEY (merchant, payment_id)
);
CREATE INDEX qiwi_payin_payments_bill ON qiwi_payin_payments (merchant, bill_id);

CREATE TABLE qiwi_payin_captures (
	merchant text NOT NULL,
	payment_id text NOT NULL,
	capture_id text NOT NULL,
	amount numeric CHECK (amount OPERATOR(pg_catalog.>) 0::numeric AND amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)),
	currency text,
	status text NOT NULL CHECK (status IN ('sending', 'COMPLETED', 'DECLINED', 'UNSENT')),
	comment text,
	created_at timestamptz,
	status_changed_at timestamptz,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz,
	next_check_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	check_count integer NOT NULL DEFAULT 0,
	failures integer NOT NULL DEFAULT 0,
	last_error text,
	capture_key text NOT NULL GENERATED ALWAYS AS (payment_id OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) capture_id) STORED,
	scheduled_at timestamptz DEFAULT clock_timestamp(),
	CONSTRAINT qiwi_payin_captures_pkey PRIMARY KEY (merchant, payment_id, capture_id),
	CONSTRAINT qiwi_payin_captures_answered CHECK (status IN ('sending', 'UNSENT') OR amount IS NOT NULL AND currency IS NOT NULL)
);
CREATE UNIQUE INDEX qiwi_payin_captures_key ON qiwi_payin_captures (merchant, capture_key);
CREATE INDEX qiwi_payin_captures_due ON qiwi_payin_captures (next_check_at) WHERE status = 'sending';

CREATE TABLE qiwi_payin_refunds (
	merchant text NOT NULL,
	payment_id text NOT NULL,
	refund_id text NOT NULL,
	amount numeric NOT NULL CHECK (amount OPERATOR(pg_catalog.>) 0::numeric AND amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)),
	currency text NOT NULL,
	status text NOT NULL CHECK (status IN ('sending', 'COMPLETED', 'DECLINED', 'UNSENT')),
	reversal boolean NOT NULL,
	flags text[],
	comment text,
	created_at timestamptz,
	status_changed_at timestamptz,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz,
	next_check_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	check_count integer NOT NULL DEFAULT 0,
	failures integer NOT NULL DEFAULT 0,
	last_error text,
	refund_key text NOT NULL GENERATED ALWAYS AS (payment_id OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) refund_id) STORED,
	scheduled_at timestamptz DEFAULT clock_timestamp(),
	CONSTRAINT qiwi_payin_refunds_pkey PRIMARY KEY (merchant, payment_id, refund_id)
);
CREATE UNIQUE INDEX qiwi_payin_refunds_key ON qiwi_payin_refunds (merchant, refund_key);
CREATE INDEX qiwi_payin_refunds_due ON qiwi_payin_refunds (next_check_at) WHERE status = 'sending';

CREATE TABLE qiwi_payin_events (
	id bigserial PRIMARY KEY,
	merchant text NOT NULL,
	object text NOT NULL CHECK (object IN ('invoice', 'payment', 'capture', 'refund', 'token', 'card_check')),
	object_id text NOT NULL,
	old_status text,
	new_status text NOT NULL,
	source text NOT NULL CHECK (source IN ('call', 'reconciler', 'notification')),
	changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX qiwi_payin_events_object ON qiwi_payin_events (object, object_id, id);

SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_invoices', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_payments', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_captures', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_refunds', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_events', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_events_id_seq', '');

CREATE FUNCTION qiwi_payin_create_invoice(
	bill_id text,
	amount numeric DEFAULT NULL,
	currency text DEFAULT 'RUB',
	expires_at timestamptz DEFAULT now() + interval '45 days',
	capture text DEFAULT 'auto',
	comment text DEFAULT NULL,
	phone text DEFAULT NULL,
	email text DEFAULT NULL,
	account text DEFAULT NULL,
	custom_fields jsonb DEFAULT NULL,
	payment_methods text[] DEFAULT NULL,
	callback_url text DEFAULT NULL,
	bind_token boolean DEFAULT false,
	check_card boolean DEFAULT false,
	merchant text DEFAULT NULL)
RETURNS qiwi_payin_invoice
AS 'MODULE_PATHNAME', 'qiwi_payin_create_invoice'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_payin_invoice(bill_id text, merchant text DEFAULT NULL)
RETURNS qiwi_payin_invoice
AS 'MODULE_PATHNAME', 'qiwi_payin_invoice'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_payin_payments(bill_id text, merchant text DEFAULT NULL)
RETURNS SETOF qiwi_payin_payment
AS 'MODULE_PATHNAME', 'qiwi_payin_payments'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- it asks QIWI: its name is no table's (qiwi_payin_payments, the old name,
-- stays for 1.4 only)
CREATE FUNCTION qiwi_payin_invoice_payments(bill_id text, merchant text DEFAULT NULL)
RETURNS SETOF qiwi_payin_payment
AS 'MODULE_PATHNAME', 'qiwi_payin_payments'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION qiwi_payin_invoice_payments(text, text) FROM PUBLIC;

CREATE FUNCTION qiwi_payin_payment(payment_id text, merchant text DEFAULT NULL)
RETURNS qiwi_payin_payment
AS 'MODULE_PATHNAME', 'qiwi_payin_payment'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_payin_capture(payment_id text, capture_id text, comment text DEFAULT NULL,
	merchant text DEFAULT NULL)
RETURNS qiwi_payin_capture
AS 'MODULE_PATHNAME', 'qiwi_payin_capture'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_payin_capture_status(payment_id text, capture_id text, merchant text DEFAULT NULL)
RETURNS qiwi_payin_capture
AS 'MODULE_PATHNAME', 'qiwi_payin_capture_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_payin_refund(payment_id text, refund_id text, amount numeric,
	currency text DEFAULT 'RUB', merchant text DEFAULT NULL)
RETURNS qiwi_payin_refund
AS 'MODULE_PATHNAME', 'qiwi_payin_refund'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_payin_refund_status(payment_id text, refund_id text, merchant text DEFAULT NULL)
RETURNS qiwi_payin_refund
AS 'MODULE_PATHNAME', 'qiwi_payin_refund_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_payin_refunds(payment_id text, merchant text DEFAULT NULL)
RETURNS SETOF qiwi_payin_refund
AS 'MODULE_PATHNAME', 'qiwi_payin_refunds'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Money moves only for roles the owner trusts; reading calls show the
-- buyer's details and spend the shop's quota: only trusted roles either.
REVOKE ALL ON FUNCTION qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_payin_capture(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_payin_refund(text, text, numeric, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_payin_invoice(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_payin_payments(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_payin_payment(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_payin_capture_status(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_payin_refund_status(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_payin_refunds(text, text) FROM PUBLIC;

-- ---------- notifications ----------

CREATE FUNCTION qiwi_payin_verify_signature(signature text, notification jsonb, key text DEFAULT NULL,
	merchant text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qiwi_payin_verify_signature'
LANGUAGE C STABLE PARALLEL SAFE;

-- Payment tokens QIWI bound for buyers' accounts (TOKEN notifications)
CREATE TABLE qiwi_payin_tokens (
	merchant text NOT NULL,
	account text NOT NULL,
	token text NOT NULL,
	card text,
	expires_at timestamptz,
	bound_at timestamptz,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	deleted_at timestamptz,
	CONSTRAINT qiwi_payin_tokens_pkey PRIMARY KEY (merchant, token)
);
CREATE INDEX qiwi_payin_tokens_account ON qiwi_payin_tokens (merchant, account);
SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_tokens', '');

-- Card checks QIWI made on its form (CHECK_CARD notifications)
CREATE TABLE qiwi_payin_card_checks (
	merchant text NOT NULL,
	request_uid text NOT NULL,
	status text NOT NULL,
	is_valid_card boolean,
	three_ds_status text,
	check_operation_date timestamptz,
	card_info jsonb,
	created_token text,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	CONSTRAINT qiwi_payin_card_checks_pkey PRIMARY KEY (merchant, request_uid)
);
SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_card_checks', '');

CREATE FUNCTION qiwi_payin_delete_token(account text, token text, merchant text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qiwi_payin_delete_token'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- It changes what a buyer can pay with: only roles the owner trusts.
REVOKE ALL ON FUNCTION qiwi_payin_delete_token(text, text, text) FROM PUBLIC;

CREATE TYPE qiwi_payin_card_check AS (
	request_uid text,
	status text,
	is_valid_card boolean,
	three_ds_status text,
	check_operation_date timestamptz,
	card_info jsonb,
	created_token text
);

CREATE FUNCTION qiwi_payin_card_check(request_uid text, merchant text DEFAULT NULL)
RETURNS qiwi_payin_card_check
AS 'MODULE_PATHNAME', 'qiwi_payin_card_check'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- It shows the buyer's card and token: only roles the owner trusts.
REVOKE ALL ON FUNCTION qiwi_payin_card_check(text, text) FROM PUBLIC;

CREATE FUNCTION qiwi_payin_notification_verify()
RETURNS trigger
AS 'MODULE_PATHNAME', 'qiwi_payin_notification_verify'
LANGUAGE C;

-- The trigger applies QIWI's word to the qiwi_payin_* tables as the owner:
-- only roles the owner grants it to may put it on a table of theirs.
REVOKE ALL ON FUNCTION qiwi_payin_notification_verify() FROM PUBLIC;

-- Payin notifications as the web tier received them; the trigger decides.
-- A PAYMENT, CAPTURE or REFUND body names no site: the web tier stores the
-- site_id of the URL it gave QIWI (one per site).
CREATE TABLE qiwi_payin_notifications (
	id bigserial PRIMARY KEY,
	received_at timestamptz NOT NULL DEFAULT now(),
	site_id text,
	signature text,
	body jsonb,
	merchant text,
	verified boolean,
	applied boolean,
	error text,
	type text GENERATED ALWAYS AS (body OPERATOR(pg_catalog.->>) 'type'::text) STORED
);
CREATE INDEX qiwi_payin_notifications_received ON qiwi_payin_notifications (received_at);
CREATE TRIGGER qiwi_payin_notification_verify BEFORE INSERT ON qiwi_payin_notifications
	FOR EACH ROW EXECUTE FUNCTION qiwi_payin_notification_verify('mark');
SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_notifications', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_payin_notifications_id_seq', '');

-- ---------- reports ----------

-- Held payments: authorised, not captured, something still held; oldest first
CREATE VIEW qiwi_payin_holds WITH (security_invoker = true) AS
SELECT p.merchant, p.payment_id, p.bill_id, p.amount OPERATOR(pg_catalog.-) rel.released AS held,
       p.currency, p.status_changed_at AS authorised_at, p.capture_deadline,
       p.capture_deadline OPERATOR(pg_catalog.-) now() AS time_left
  FROM qiwi_payin_payments p,
       LATERAL (SELECT GREATEST(p.refunded_amount,
                                coalesce((SELECT sum(r.amount) FROM qiwi_payin_refunds r
                                           WHERE r.merchant OPERATOR(pg_catalog.=) p.merchant
                                             AND r.payment_id OPERATOR(pg_catalog.=) p.payment_id
                                             AND r.status OPERATOR(pg_catalog.=) 'COMPLETED'::text), 0::numeric)) AS released) rel
 WHERE p.status OPERATOR(pg_catalog.=) 'COMPLETED'::text
   AND p.captured_amount OPERATOR(pg_catalog.=) 0::numeric
   AND p.capture_deadline IS NOT NULL
   AND p.amount OPERATOR(pg_catalog.>) rel.released
 ORDER BY p.status_changed_at, p.payment_id;

-- ---------- documentation ----------

COMMENT ON TYPE qiwi_payin_invoice IS $$A Payin invoice as QIWI answered (qiwi_payin_create_invoice, qiwi_payin_invoice)$$;
COMMENT ON COLUMN qiwi_payin_invoice.bill_id IS $$The shop's invoice id (billId), unique per site$$;
COMMENT ON COLUMN qiwi_payin_invoice.invoice_uid IS $$QIWI's id of the invoice (invoiceUid)$$;
COMMENT ON COLUMN qiwi_payin_invoice.site_id IS $$The merchant's Payin site (siteId)$$;
COMMENT ON COLUMN qiwi_payin_invoice.amount IS $$The shop's amount, numeric with two decimals$$;
COMMENT ON COLUMN qiwi_payin_invoice.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_payin_invoice.status IS $$CREATED (waiting for the buyer), PAID (a payment is authorised: for capture 'manual' the money is held, not received), EXPIRED, or MISMATCH (QIWI reported other money than the shop's)$$;
COMMENT ON COLUMN qiwi_payin_invoice.flags IS $$QIWI's flags: SALE (one step), BIND_PAYMENT_TOKEN$$;
COMMENT ON COLUMN qiwi_payin_invoice.pay_url IS $$The payment form to send the buyer to$$;
COMMENT ON COLUMN qiwi_payin_invoice.comment IS $$Shown to the buyer$$;
COMMENT ON COLUMN qiwi_payin_invoice.created_at IS $$When QIWI created it, if its answer says$$;
COMMENT ON COLUMN qiwi_payin_invoice.expires_at IS $$When it expires unpaid$$;
COMMENT ON COLUMN qiwi_payin_invoice.customer IS $$The buyer: account, email, phone$$;
COMMENT ON COLUMN qiwi_payin_invoice.custom_fields IS $$cf1..cf5, invoice_callback_url, themeCode, contractId$$;

COMMENT ON TYPE qiwi_payin_payment IS $$A Payin payment as QIWI answered (qiwi_payin_payment, qiwi_payin_payments)$$;
COMMENT ON COLUMN qiwi_payin_payment.payment_id IS $$QIWI's payment id$$;
COMMENT ON COLUMN qiwi_payin_payment.bill_id IS $$The invoice it pays$$;
COMMENT ON COLUMN qiwi_payin_payment.status IS $$WAITING (3-D Secure or the bank pending), COMPLETED (authorised; see captured_amount), DECLINED (see reason_code), or MISMATCH (other money than its invoice)$$;
COMMENT ON COLUMN qiwi_payin_payment.amount IS $$The amount authorised$$;
COMMENT ON COLUMN qiwi_payin_payment.currency IS $$ISO 4217 code of the amounts$$;
COMMENT ON COLUMN qiwi_payin_payment.captured_amount IS $$Money taken: the amount for one step, 0.00 while held, the capture's amount after it$$;
COMMENT ON COLUMN qiwi_payin_payment.refunded_amount IS $$Money returned or released so far$$;
COMMENT ON COLUMN qiwi_payin_payment.method IS $$Payment method type: CARD, TOKEN, ...$$;
COMMENT ON COLUMN qiwi_payin_payment.masked_pan IS $$The card number, masked$$;
COMMENT ON COLUMN qiwi_payin_payment.reason_code IS $$Why it was declined (QIWI's reason code)$$;
COMMENT ON COLUMN qiwi_payin_payment.reason_message IS $$QIWI's text for reason_code$$;
COMMENT ON COLUMN qiwi_payin_payment.created_at IS $$When the buyer started it$$;
COMMENT ON COLUMN qiwi_payin_payment.status_changed_at IS $$When its status last changed (authorisation time for COMPLETED)$$;
COMMENT ON COLUMN qiwi_payin_payment.flags IS $$SALE (one step) or AUTH (two steps: hold, then capture)$$;

COMMENT ON TYPE qiwi_payin_capture IS $$A capture of held money as QIWI answered$$;
COMMENT ON COLUMN qiwi_payin_capture.payment_id IS $$The captured payment$$;
COMMENT ON COLUMN qiwi_payin_capture.capture_id IS $$The shop's capture id$$;
COMMENT ON COLUMN qiwi_payin_capture.amount IS $$Money taken (what was still held)$$;
COMMENT ON COLUMN qiwi_payin_capture.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_payin_capture.status IS $$COMPLETED or DECLINED$$;
COMMENT ON COLUMN qiwi_payin_capture.flags IS $$QIWI's flags, if any$$;
COMMENT ON COLUMN qiwi_payin_capture.comment IS $$The capture's comment$$;
COMMENT ON COLUMN qiwi_payin_capture.created_at IS $$When QIWI made it$$;
COMMENT ON COLUMN qiwi_payin_capture.status_changed_at IS $$When its status was set$$;

COMMENT ON TYPE qiwi_payin_refund IS $$A refund or reversal as QIWI answered$$;
COMMENT ON COLUMN qiwi_payin_refund.payment_id IS $$The refunded payment$$;
COMMENT ON COLUMN qiwi_payin_refund.refund_id IS $$The shop's refund id$$;
COMMENT ON COLUMN qiwi_payin_refund.amount IS $$Money returned, or released from a hold$$;
COMMENT ON COLUMN qiwi_payin_refund.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_payin_refund.status IS $$COMPLETED or DECLINED$$;
COMMENT ON COLUMN qiwi_payin_refund.flags IS $$REVERSAL: it released held money before a capture (no money moved)$$;
COMMENT ON COLUMN qiwi_payin_refund.comment IS $$The refund's comment$$;
COMMENT ON COLUMN qiwi_payin_refund.created_at IS $$When QIWI made it$$;
COMMENT ON COLUMN qiwi_payin_refund.status_changed_at IS $$When its status was set$$;

COMMENT ON TABLE qiwi_payin_invoices IS $$Latest known state of every Payin invoice created or asked about from this database; maintained by qiwi_kassa, forward only$$;
COMMENT ON COLUMN qiwi_payin_invoices.merchant IS $$Whose invoice: a server of the wrapper qiwi (or "default")$$;
COMMENT ON COLUMN qiwi_payin_invoices.bill_id IS $$The shop's invoice id$$;
COMMENT ON COLUMN qiwi_payin_invoices.invoice_uid IS $$QIWI's id of the invoice$$;
COMMENT ON COLUMN qiwi_payin_invoices.site_id IS $$The merchant's Payin site$$;
COMMENT ON COLUMN qiwi_payin_invoices.amount IS $$The shop's amount (kept when QIWI reports another: see qiwi_amount)$$;
COMMENT ON COLUMN qiwi_payin_invoices.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_payin_invoices.status IS $$CREATED, PAID (authorised; held for capture 'manual'), EXPIRED, or MISMATCH (QIWI reported other money: never paid)$$;
COMMENT ON COLUMN qiwi_payin_invoices.capture IS $$auto (one step, SALE), manual (hold, then qiwi_payin_capture) or check (CHECK_CARD: the card is only checked, amount 0.00, no money moves)$$;
COMMENT ON COLUMN qiwi_payin_invoices.flags IS $$QIWI's flags of the invoice$$;
COMMENT ON COLUMN qiwi_payin_invoices.pay_url IS $$The payment form$$;
COMMENT ON COLUMN qiwi_payin_invoices.comment IS $$Shown to the buyer$$;
COMMENT ON COLUMN qiwi_payin_invoices.customer IS $$The buyer: account, email, phone$$;
COMMENT ON COLUMN qiwi_payin_invoices.custom_fields IS $$The invoice's custom fields$$;
COMMENT ON COLUMN qiwi_payin_invoices.created_at IS $$When QIWI created it, if an answer said$$;
COMMENT ON COLUMN qiwi_payin_invoices.expires_at IS $$When it expires unpaid$$;
COMMENT ON COLUMN qiwi_payin_invoices.status_changed_at IS $$When its status last changed$$;
COMMENT ON COLUMN qiwi_payin_invoices.first_seen_at IS $$When this database first recorded it$$;
COMMENT ON COLUMN qiwi_payin_invoices.checked_at IS $$When QIWI last told us about it$$;
COMMENT ON COLUMN qiwi_payin_invoices.qiwi_amount IS $$For MISMATCH: the amount QIWI reported$$;
COMMENT ON COLUMN qiwi_payin_invoices.qiwi_currency IS $$For MISMATCH: the currency QIWI reported$$;
COMMENT ON COLUMN qiwi_payin_invoices.qiwi_status IS $$For MISMATCH: what QIWI said of that other money$$;
COMMENT ON COLUMN qiwi_payin_invoices.next_check_at IS $$When the reconciler asks QIWI about this invoice next, while it is CREATED, one of its payments holds money or a notification about it is unconfirmed (backs off after each unchanged answer or failure; due as soon as expires_at or a capture deadline passes)$$;
COMMENT ON COLUMN qiwi_payin_invoices.check_count IS $$Reconciler checks answered so far$$;
COMMENT ON COLUMN qiwi_payin_invoices.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;
COMMENT ON COLUMN qiwi_payin_invoices.failures IS $$Failed reconciler checks in a row (network, timeout, 429, 5xx, malformed answer, 404); 0 after an answer$$;
COMMENT ON COLUMN qiwi_payin_invoices.notified_at IS $$When a verified PAYMENT, CAPTURE or REFUND notification about this invoice arrived that QIWI's answer has not confirmed yet (notified, unconfirmed: the invoice is due for a check at once); NULL once QIWI answered. Such a notification never changes the money recorded: QIWI signs only its id, date and amount$$;
COMMENT ON COLUMN qiwi_payin_invoices.last_error IS $$Why the last reconciler check failed (keys replaced by ********)$$;

COMMENT ON TABLE qiwi_payin_payments IS $$Latest known state of every Payin payment seen from this database; maintained by qiwi_kassa, forward only$$;
COMMENT ON COLUMN qiwi_payin_payments.merchant IS $$Whose payment: a server of the wrapper qiwi (or "default")$$;
COMMENT ON COLUMN qiwi_payin_payments.payment_id IS $$QIWI's payment id$$;
COMMENT ON COLUMN qiwi_payin_payments.bill_id IS $$The invoice it pays (qiwi_payin_invoices.bill_id)$$;
COMMENT ON COLUMN qiwi_payin_payments.status IS $$WAITING, COMPLETED (authorised), DECLINED, or MISMATCH (other money than its invoice: never paid; see qiwi_status)$$;
COMMENT ON COLUMN qiwi_payin_payments.amount IS $$The amount authorised, as QIWI reported it (for MISMATCH not the invoice's: see qiwi_payin_invoices.amount)$$;
COMMENT ON COLUMN qiwi_payin_payments.currency IS $$ISO 4217 code of the amounts$$;
COMMENT ON COLUMN qiwi_payin_payments.captured_amount IS $$Money taken so far (only grows); 0 while held$$;
COMMENT ON COLUMN qiwi_payin_payments.refunded_amount IS $$Money returned or released so far, as QIWI last said of the payment or of its refunds (only grows)$$;
COMMENT ON COLUMN qiwi_payin_payments.method IS $$Payment method type$$;
COMMENT ON COLUMN qiwi_payin_payments.masked_pan IS $$The card number, masked$$;
COMMENT ON COLUMN qiwi_payin_payments.reason_code IS $$Why it was declined$$;
COMMENT ON COLUMN qiwi_payin_payments.reason_message IS $$QIWI's text for reason_code$$;
COMMENT ON COLUMN qiwi_payin_payments.flags IS $$SALE (one step) or AUTH (two steps)$$;
COMMENT ON COLUMN qiwi_payin_payments.created_at IS $$When the buyer started it$$;
COMMENT ON COLUMN qiwi_payin_payments.status_changed_at IS $$When its status last changed$$;
COMMENT ON COLUMN qiwi_payin_payments.capture_deadline IS $$For an authorised two-step payment: authorisation + the merchant's payin_capture_hours (72 by default), when QIWI captures or releases the hold by itself$$;
COMMENT ON COLUMN qiwi_payin_payments.first_seen_at IS $$When this database first recorded it$$;
COMMENT ON COLUMN qiwi_payin_payments.checked_at IS $$When QIWI last told us about it$$;
COMMENT ON COLUMN qiwi_payin_payments.qiwi_status IS $$For MISMATCH: the status QIWI reported for the other money$$;

COMMENT ON TABLE qiwi_payin_captures IS $$Every Payin capture made or asked about from this database: its intent (sending) committed before it is sent, then recorded once from QIWI's answer and only confirmed; an intent QIWI refused is withdrawn (its events say so), one QIWI never got is UNSENT$$;
COMMENT ON COLUMN qiwi_payin_captures.merchant IS $$Whose capture$$;
COMMENT ON COLUMN qiwi_payin_captures.payment_id IS $$The captured payment$$;
COMMENT ON COLUMN qiwi_payin_captures.capture_id IS $$The shop's capture id$$;
COMMENT ON COLUMN qiwi_payin_captures.amount IS $$Money taken; NULL while sending or UNSENT (QIWI's answer says how much)$$;
COMMENT ON COLUMN qiwi_payin_captures.currency IS $$ISO 4217 code of amount; NULL while sending or UNSENT$$;
COMMENT ON COLUMN qiwi_payin_captures.status IS $$sending (its intent, committed before the PUT: outcome not known yet; the reconciler asks QIWI for it by its id, never sends it again), COMPLETED or DECLINED; UNSENT: QIWI never got it (it did not have it at a second look past qiwi.unsent_after after its intent, see last_error): nothing moved, and a new call with its id sends it, its intent committed again$$;
COMMENT ON COLUMN qiwi_payin_captures.comment IS $$The capture's comment$$;
COMMENT ON COLUMN qiwi_payin_captures.created_at IS $$When QIWI made it$$;
COMMENT ON COLUMN qiwi_payin_captures.status_changed_at IS $$When its status was set: QIWI's time, once it answered; while sending, when its intent was committed (UNSENT's grace counts from it); when it became UNSENT$$;
COMMENT ON COLUMN qiwi_payin_captures.first_seen_at IS $$When this database first recorded it$$;
COMMENT ON COLUMN qiwi_payin_captures.checked_at IS $$When QIWI last told us about it; NULL while sending, before any answer$$;
COMMENT ON COLUMN qiwi_payin_captures.next_check_at IS $$When the reconciler asks QIWI about this capture next, while it is sending (backs off after each answer that leaves it so, or failure)$$;
COMMENT ON COLUMN qiwi_payin_captures.check_count IS $$The reconciler's checks of it while sending that QIWI answered$$;
COMMENT ON COLUMN qiwi_payin_captures.failures IS $$The reconciler's failed checks in a row (0 after an answer)$$;
COMMENT ON COLUMN qiwi_payin_captures.last_error IS $$Why its last check failed, that QIWI does not have it, or why it is UNSENT; NULL once answered$$;
COMMENT ON COLUMN qiwi_payin_captures.capture_key IS $$payment_id/capture_id: the capture's key for the reconciler$$;
COMMENT ON COLUMN qiwi_payin_captures.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;

COMMENT ON TABLE qiwi_payin_refunds IS $$Every Payin refund or reversal made or asked about from this database: its intent (sending) committed before it is sent, then recorded once from QIWI's answer and only confirmed; an intent QIWI refused is withdrawn (its events say so), one QIWI never got is UNSENT$$;
COMMENT ON COLUMN qiwi_payin_refunds.merchant IS $$Whose refund$$;
COMMENT ON COLUMN qiwi_payin_refunds.payment_id IS $$The refunded payment$$;
COMMENT ON COLUMN qiwi_payin_refunds.refund_id IS $$The shop's refund id$$;
COMMENT ON COLUMN qiwi_payin_refunds.amount IS $$Money returned or released$$;
COMMENT ON COLUMN qiwi_payin_refunds.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_payin_refunds.status IS $$sending (its intent, committed before the PUT: outcome not known yet, its amount counted as spent by later refunds; the reconciler asks QIWI for it by its id, never sends it again), COMPLETED or DECLINED; UNSENT: QIWI never got it (it did not have it at a second look past qiwi.unsent_after after its intent, see last_error): nothing moved, it no longer counts against the payment's refunds, and a new call with its id sends it, its intent committed again$$;
COMMENT ON COLUMN qiwi_payin_refunds.reversal IS $$It released held money before a capture (QIWI's flag REVERSAL): no money had moved$$;
COMMENT ON COLUMN qiwi_payin_refunds.flags IS $$QIWI's flags$$;
COMMENT ON COLUMN qiwi_payin_refunds.comment IS $$The refund's comment$$;
COMMENT ON COLUMN qiwi_payin_refunds.created_at IS $$When QIWI made it$$;
COMMENT ON COLUMN qiwi_payin_refunds.status_changed_at IS $$When its status was set: QIWI's time, once it answered; while sending, when its intent was committed (UNSENT's grace counts from it); when it became UNSENT$$;
COMMENT ON COLUMN qiwi_payin_refunds.first_seen_at IS $$When this database first recorded it$$;
COMMENT ON COLUMN qiwi_payin_refunds.checked_at IS $$When QIWI last told us about it; NULL while sending, before any answer$$;
COMMENT ON COLUMN qiwi_payin_refunds.next_check_at IS $$When the reconciler asks QIWI about this refund next, while it is sending (backs off after each answer that leaves it so, or failure)$$;
COMMENT ON COLUMN qiwi_payin_refunds.check_count IS $$The reconciler's checks of it while sending that QIWI answered$$;
COMMENT ON COLUMN qiwi_payin_refunds.failures IS $$The reconciler's failed checks in a row (0 after an answer)$$;
COMMENT ON COLUMN qiwi_payin_refunds.last_error IS $$Why its last check failed, that QIWI does not have it, or why it is UNSENT; NULL once answered$$;
COMMENT ON COLUMN qiwi_payin_refunds.refund_key IS $$payment_id/refund_id: the refund's key for the reconciler$$;
COMMENT ON COLUMN qiwi_payin_refunds.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;

COMMENT ON TABLE qiwi_payin_events IS $$Every status change of a Payin invoice, payment or payment token and every capture, refund and card check recorded; each is also announced with NOTIFY qiwi_payin_status$$;
COMMENT ON COLUMN qiwi_payin_events.id IS $$Order of the changes$$;
COMMENT ON COLUMN qiwi_payin_events.merchant IS $$Whose object$$;
COMMENT ON COLUMN qiwi_payin_events.object IS $$invoice, payment, capture, refund, token or card_check$$;
COMMENT ON COLUMN qiwi_payin_events.object_id IS $$Its id (bill_id, payment_id, capture_id, refund_id, the token, or a card check's request_uid)$$;
COMMENT ON COLUMN qiwi_payin_events.old_status IS $$Status before; NULL when first seen$$;
COMMENT ON COLUMN qiwi_payin_events.new_status IS $$Status after; REFUSED for a capture's or refund's intent that QIWI refused (its row is withdrawn: nothing moved)$$;
COMMENT ON COLUMN qiwi_payin_events.source IS $$What made the change: call (a qiwi_payin_* function), reconciler, or notification$$;
COMMENT ON COLUMN qiwi_payin_events.changed_at IS $$When the change was recorded here$$;
COMMENT ON SEQUENCE qiwi_payin_events_id_seq IS $$Ids of qiwi_payin_events$$;

COMMENT ON FUNCTION qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text) IS $$Create a Payin invoice now and record it (retry-safe: the same bill_id and amount give the same invoice). bill_id: the shop's id; amount: > 0, two decimals at most, sent with two (NULL for a card check); currency: default RUB; expires_at: default now() + 45 days; capture: 'auto' (one step) or 'manual' (hold, then qiwi_payin_capture); comment: at most 256 characters; phone, email, account: the buyer; custom_fields: cf1..cf5, themeCode, contractId, invoice_callback_url; payment_methods: CARD, SBP, QIWI_WALLET; callback_url: where QIWI notifies about its payments; bind_token: ask for a payment token for account; check_card: the buyer only has the card checked (flag CHECK_CARD; no amount, capture 'auto', RUB, card only; recorded with capture 'check'; its request_uid for qiwi_payin_card_check is bill_id). Moves money: not PUBLIC. merchant: whose (a server of the wrapper qiwi with payin_site_id and a payin_api_key)$$;
COMMENT ON FUNCTION qiwi_payin_invoice(text, text) IS $$Ask QIWI for the Payin invoice bill_id with its payments, record them (forward only) and return the invoice. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_payments(text, text) IS $$Deprecated (removed in 1.5): the old name of qiwi_payin_invoice_payments, which the table qiwi_payin_payments shares: asks QIWI for the payments of the Payin invoice bill_id, records and returns them. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_invoice_payments(text, text) IS $$Ask QIWI for the payments of the Payin invoice bill_id, record and return them (a request per call: in a query over many rows, call it in FROM or LATERAL, never as (f()).*). Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_payment(text, text) IS $$Ask QIWI for the Payin payment payment_id, record and return it. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_capture(text, text, text, text) IS $$Capture the money held by the two-step payment payment_id under the shop's capture_id, with an optional comment; a lost answer is asked for by capture_id before anything is sent again, so it captures once. Moves money: not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_capture_status(text, text, text) IS $$Ask QIWI for the capture capture_id of payment payment_id and record it. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_refund(text, text, numeric, text, text) IS $$Refund amount (in currency, default RUB) of payment payment_id under the shop's refund_id: captured money is returned, held money released (flag REVERSAL). Refused before sending when currency is not the payment's or amount exceeds what is left (a payment qiwi_payin_payments lacks is asked for first); a lost answer is asked for by refund_id first. Moves money: not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_refund_status(text, text, text) IS $$Ask QIWI for the refund refund_id of payment payment_id and record it. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_refunds(text, text) IS $$Ask QIWI for every refund of payment payment_id, record and return them. Not PUBLIC. merchant: whose$$;

COMMENT ON FUNCTION qiwi_payin_verify_signature(text, jsonb, text, text) IS $$Does signature (the Signature header: hex HMAC-SHA256) hold for the Payin notification body (PAYMENT, CAPTURE, REFUND: id|createdDateTime|amount with two decimals; TOKEN; CHECK_CARD) under key (NULL: the payin_notification_key of merchant)? NULL if signature or notification is NULL; false for a body it cannot sign$$;

COMMENT ON TABLE qiwi_payin_tokens IS $$Payment tokens QIWI bound for buyers' accounts (invoices with account and bind_token), recorded from verified TOKEN and CHECK_CARD notifications; a later invoice for the same account can be paid with one not deleted, without the card. Rows stay when deleted (qiwi_payin_delete_token)$$;
COMMENT ON COLUMN qiwi_payin_tokens.merchant IS $$Whose token: only that merchant's site can use it$$;
COMMENT ON COLUMN qiwi_payin_tokens.account IS $$The buyer's account (customer.account) it was bound for$$;
COMMENT ON COLUMN qiwi_payin_tokens.token IS $$QIWI's payment token$$;
COMMENT ON COLUMN qiwi_payin_tokens.card IS $$The card it stands for, masked (the notification's name)$$;
COMMENT ON COLUMN qiwi_payin_tokens.expires_at IS $$When it expires (the notification's expiredDate)$$;
COMMENT ON COLUMN qiwi_payin_tokens.bound_at IS $$When QIWI bound it (status.changedDateTime)$$;
COMMENT ON COLUMN qiwi_payin_tokens.first_seen_at IS $$When this database recorded it$$;
COMMENT ON COLUMN qiwi_payin_tokens.deleted_at IS $$When qiwi_payin_delete_token deleted it (or found QIWI no longer knew it); NULL while it can pay$$;

COMMENT ON TABLE qiwi_payin_card_checks IS $$Card checks QIWI made on its form (invoices flagged CHECK_CARD), from verified CHECK_CARD notifications and qiwi_payin_card_check, forward only (a final status is never replaced); no money moves$$;
COMMENT ON COLUMN qiwi_payin_card_checks.merchant IS $$Whose check$$;
COMMENT ON COLUMN qiwi_payin_card_checks.request_uid IS $$QIWI's id of the check (requestUid)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.status IS $$The check's status as QIWI wrote it: INIT (the form waits for the buyer) and WAITING_3DS move on; SUCCESS, ERROR (or any other) are final$$;
COMMENT ON COLUMN qiwi_payin_card_checks.is_valid_card IS $$Whether the card can pay (isValidCard)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.three_ds_status IS $$The 3-D Secure outcome (threeDsStatus)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.check_operation_date IS $$When QIWI checked the card (checkOperationDate); NULL while the check waits (INIT)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.card_info IS $$What QIWI says of the card: payment system, issuing bank and country (cardInfo)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.created_token IS $$The payment token the check bound (createdToken), also recorded in qiwi_payin_tokens; NULL if none$$;
COMMENT ON COLUMN qiwi_payin_card_checks.first_seen_at IS $$When this database recorded it$$;

COMMENT ON FUNCTION qiwi_payin_delete_token(text, text, text) IS $$Delete the payment token token of the buyer's account at QIWI (DELETE tokens) and record it deleted in qiwi_payin_tokens: true when QIWI deleted it now, false when QIWI no longer knew it for that account (deleted before, or never bound); retry-safe. account: at most 256 characters; token: at most 200. Changes what a buyer can pay with: not PUBLIC. merchant: whose$$;
COMMENT ON TYPE qiwi_payin_card_check IS $$A card check as QIWI answered (qiwi_payin_card_check)$$;
COMMENT ON COLUMN qiwi_payin_card_check.request_uid IS $$QIWI's id of the check: the bill_id of its CHECK_CARD invoice$$;
COMMENT ON COLUMN qiwi_payin_card_check.status IS $$INIT, WAITING_3DS, SUCCESS or ERROR, as QIWI wrote it$$;
COMMENT ON COLUMN qiwi_payin_card_check.is_valid_card IS $$Whether the card can pay (isValidCard); NULL until checked$$;
COMMENT ON COLUMN qiwi_payin_card_check.three_ds_status IS $$The 3-D Secure outcome (threeDsStatus)$$;
COMMENT ON COLUMN qiwi_payin_card_check.check_operation_date IS $$When QIWI checked the card; NULL until checked$$;
COMMENT ON COLUMN qiwi_payin_card_check.card_info IS $$What QIWI says of the card (cardInfo)$$;
COMMENT ON COLUMN qiwi_payin_card_check.created_token IS $$The payment token the check bound (createdToken), also recorded in qiwi_payin_tokens$$;
COMMENT ON FUNCTION qiwi_payin_card_check(text, text) IS $$Ask QIWI for the card check request_uid (GET validation/card/requests; for a CHECK_CARD invoice it is its bill_id) and record it, forward only, in qiwi_payin_card_checks (and the token it bound in qiwi_payin_tokens). Shows the buyer's card: not PUBLIC. merchant: whose$$;

COMMENT ON FUNCTION qiwi_payin_notification_verify() IS $$Trigger (BEFORE INSERT) for a table with signature, body, site_id, merchant, verified, applied, error: verifies the signature with the payin_notification_key of the merchant whose payin_site_id is site_id (or a TOKEN's merchantSiteUid) and applies a verified PAYMENT, CAPTURE, REFUND, TOKEN or CHECK_CARD to the qiwi_payin_* tables, forward only. Argument 'mark' (default) stores a bad one marked, 'reject' fails the INSERT (QKSIG). Not PUBLIC$$;
COMMENT ON TABLE qiwi_payin_notifications IS $$QIWI Payin notifications as the web tier received them, verified and applied by the trigger qiwi_payin_notification_verify()$$;
COMMENT ON COLUMN qiwi_payin_notifications.id IS $$Order of arrival$$;
COMMENT ON COLUMN qiwi_payin_notifications.received_at IS $$When the notification was stored$$;
COMMENT ON COLUMN qiwi_payin_notifications.site_id IS $$The site it was sent for, stored by the web tier (the notification URL it gave QIWI for that site); NULL: a TOKEN's merchantSiteUid, else unverifiable$$;
COMMENT ON COLUMN qiwi_payin_notifications.signature IS $$The Signature header as received$$;
COMMENT ON COLUMN qiwi_payin_notifications.body IS $$The request body as received$$;
COMMENT ON COLUMN qiwi_payin_notifications.merchant IS $$Set by the trigger: the merchant whose key verified it$$;
COMMENT ON COLUMN qiwi_payin_notifications.verified IS $$Set by the trigger: the signature holds for the merchant's payin_notification_key$$;
COMMENT ON COLUMN qiwi_payin_notifications.applied IS $$Set by the trigger: it moved the qiwi_payin_* tables forward$$;
COMMENT ON COLUMN qiwi_payin_notifications.error IS $$Set by the trigger: why it was not verified or not applied (a duplicate, out of order, a type not recorded, ...)$$;
COMMENT ON COLUMN qiwi_payin_notifications.type IS $$PAYMENT, CAPTURE, REFUND, TOKEN, CHECK_CARD (generated from the body; unsigned until verified)$$;
COMMENT ON SEQUENCE qiwi_payin_notifications_id_seq IS $$Ids of qiwi_payin_notifications$$;
COMMENT ON TRIGGER qiwi_payin_notification_verify ON qiwi_payin_notifications IS $$Checks each notification's signature and applies verified ones to the qiwi_payin_* tables ('mark': a bad one is stored with verified = false)$$;

COMMENT ON VIEW qiwi_payin_holds IS $$Money held by authorised two-step payments not captured yet, oldest first, with the capture deadline (authorisation + payin_capture_hours): what the shop must capture or release. Reads the tables with the caller's rights$$;
COMMENT ON COLUMN qiwi_payin_holds.merchant IS $$Whose payment$$;
COMMENT ON COLUMN qiwi_payin_holds.payment_id IS $$The payment$$;
COMMENT ON COLUMN qiwi_payin_holds.bill_id IS $$Its invoice$$;
COMMENT ON COLUMN qiwi_payin_holds.held IS $$Money still held: the amount less reversals (those recorded, or what QIWI reports released, whichever is more)$$;
COMMENT ON COLUMN qiwi_payin_holds.currency IS $$ISO 4217 code of held$$;
COMMENT ON COLUMN qiwi_payin_holds.authorised_at IS $$When the payment was authorised$$;
COMMENT ON COLUMN qiwi_payin_holds.capture_deadline IS $$When QIWI captures or releases it by itself$$;
COMMENT ON COLUMN qiwi_payin_holds.time_left IS $$capture_deadline - now()$$;
