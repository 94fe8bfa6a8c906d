-- qiwi_kassa, the Pull REST API 2.1 (1.4): bills and refunds of a QIWI
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
