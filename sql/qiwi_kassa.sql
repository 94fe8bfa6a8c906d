-- qiwi_kassa: the QIWI Bill Payments API in SQL.  The Makefile installs this
-- file as qiwi_kassa--<default_version>.sql; sql/qiwi_kassa--A--B.sql upgrade
-- older installs to the same schema (test/t/006_upgrade.pl compares them).
\echo Use "CREATE EXTENSION qiwi_kassa" to load this file. \quit

CREATE TYPE qiwi_bill AS (
	bill_id text,
	site_id text,
	amount numeric,
	currency text,
	status text,
	status_changed_at timestamptz,
	created_at timestamptz,
	expires_at timestamptz,
	pay_url text,
	comment text,
	customer jsonb,
	custom_fields jsonb
);

CREATE TYPE qiwi_refund AS (
	bill_id text,
	refund_id text,
	amount numeric,
	currency text,
	status text,
	created_at timestamptz
);

-- The latest known state of every bill this database created or asked about.
CREATE TABLE qiwi_bills (
	bill_id text PRIMARY KEY,
	site_id text,
	amount numeric NOT NULL CHECK (amount > 0 AND amount = round(amount, 2)),
	currency text NOT NULL,
	-- QIWI's statuses; for qiwi_create_bill_after_commit() CREATING (not at
	-- QIWI yet) and CREATE_FAILED (QIWI refused it; see last_error); and
	-- MISMATCH: QIWI reported the bill for another amount or currency than
	-- the shop's (see qiwi_amount, qiwi_currency, qiwi_status)
	status text NOT NULL,
	status_changed_at timestamptz,
	created_at timestamptz,
	expires_at timestamptz,
	pay_url text,
	comment text,
	customer jsonb,
	custom_fields jsonb,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,	-- when QIWI last told us about it
	-- the reconciler's schedule for a WAITING bill
	next_check_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	check_count integer NOT NULL DEFAULT 0,	-- WAITING answers so far
	failures integer NOT NULL DEFAULT 0,	-- failed checks in a row
	last_error text,						-- why the last check failed
	-- what QIWI reported when it disagreed with the shop's amount or currency
	qiwi_amount numeric,
	qiwi_currency text,
	qiwi_status text,
	CONSTRAINT qiwi_bills_status_check CHECK (status IN ('WAITING', 'PAID', 'REJECTED', 'EXPIRED', 'CREATING', 'CREATE_FAILED', 'MISMATCH'))
);
COMMENT ON TABLE qiwi_bills IS 'Latest known state of QIWI bills; maintained by qiwi_kassa';
-- the reconciler scans the due WAITING bills; reports group by status
CREATE INDEX qiwi_bills_waiting_due ON qiwi_bills (next_check_at) WHERE status IN ('WAITING', 'CREATING');
CREATE INDEX qiwi_bills_status ON qiwi_bills (status, status_changed_at);

CREATE TABLE qiwi_refunds (
	bill_id text NOT NULL,
	refund_id text NOT NULL,
	amount numeric NOT NULL CHECK (amount > 0 AND amount = round(amount, 2)),
	currency text NOT NULL,
	status text NOT NULL CHECK (status IN ('PARTIAL', 'FULL')),
	created_at timestamptz,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,
	PRIMARY KEY (bill_id, refund_id)
);
COMMENT ON TABLE qiwi_refunds IS 'Latest known state of QIWI refunds; maintained by qiwi_kassa';

-- Every status change of a bill, whatever made it
CREATE TABLE qiwi_bill_events (
	id bigserial PRIMARY KEY,
	bill_id text NOT NULL,
	old_status text,			-- NULL when the bill was first seen
	new_status text NOT NULL,
	source text NOT NULL CHECK (source IN ('call', 'reconciler', 'notification')),
	changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE qiwi_bill_events IS 'Status changes of QIWI bills; each is also announced with NOTIFY qiwi_bill_status';
CREATE INDEX qiwi_bill_events_bill ON qiwi_bill_events (bill_id, id);

SELECT pg_catalog.pg_extension_config_dump('qiwi_bills', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_bill_events', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_bill_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_refunds', '');

CREATE FUNCTION qiwi_create_bill(
	bill_id text,
	amount numeric,
	currency text DEFAULT 'RUB',
	expires_at timestamptz DEFAULT now() + interval '45 days',
	comment text DEFAULT NULL,
	phone text DEFAULT NULL,
	email text DEFAULT NULL,
	account text DEFAULT NULL,
	custom_fields jsonb DEFAULT NULL,
	success_url text DEFAULT NULL)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_create_bill'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_bill_status(bill_id text)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_bill_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_cancel_bill(bill_id text)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_cancel_bill'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_refund(
	bill_id text,
	refund_id text,
	amount numeric,
	currency text DEFAULT 'RUB')
RETURNS qiwi_refund
AS 'MODULE_PATHNAME', 'qiwi_refund'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_refund_status(bill_id text, refund_id text)
RETURNS qiwi_refund
AS 'MODULE_PATHNAME', 'qiwi_refund_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Record a bill in qiwi_bills now and create it at QIWI only after this
-- transaction commits (the reconciler does): a rollback leaves no bill at QIWI
CREATE FUNCTION qiwi_create_bill_after_commit(
	bill_id text,
	amount numeric,
	currency text DEFAULT 'RUB',
	expires_at timestamptz DEFAULT now() + interval '45 days',
	comment text DEFAULT NULL,
	phone text DEFAULT NULL,
	email text DEFAULT NULL,
	account text DEFAULT NULL,
	custom_fields jsonb DEFAULT NULL)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_create_bill_after_commit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Money moves only for roles the owner trusts: GRANT EXECUTE to them.
REVOKE ALL ON FUNCTION qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_cancel_bill(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_refund(text, text, numeric, text) FROM PUBLIC;

-- ---------- notifications ----------

CREATE FUNCTION qiwi_verify_signature(signature text, notification jsonb, secret text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qiwi_verify_signature'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION qiwi_sign_notification(notification jsonb, secret text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'qiwi_sign_notification'
LANGUAGE C STABLE PARALLEL SAFE;

-- Signing with qiwi.secret_key forges QIWI's word: the owner decides who may.
REVOKE ALL ON FUNCTION qiwi_sign_notification(jsonb, text) FROM PUBLIC;

CREATE FUNCTION qiwi_notification_verify()
RETURNS trigger
AS 'MODULE_PATHNAME', 'qiwi_notification_verify'
LANGUAGE C;

-- The trigger applies QIWI's word to qiwi_bills as the owner: only roles the
-- owner grants it to may put it on a table of theirs.
REVOKE ALL ON FUNCTION qiwi_notification_verify() FROM PUBLIC;

-- Notifications as the web tier received them; the trigger decides.
CREATE TABLE qiwi_notifications (
	id bigserial PRIMARY KEY,
	received_at timestamptz NOT NULL DEFAULT now(),
	signature text,			-- the X-Api-Signature-SHA256 header
	body jsonb,				-- the request body
	verified boolean,		-- set by the trigger
	applied boolean,		-- set by the trigger: it moved qiwi_bills forward
	error text,				-- set by the trigger: why not verified or not applied
	bill_id text GENERATED ALWAYS AS (body->'bill'->>'billId') STORED,
	status text GENERATED ALWAYS AS (body->'bill'->'status'->>'value') STORED
);
COMMENT ON TABLE qiwi_notifications IS 'QIWI payment notifications, verified and applied by qiwi_notification_verify()';
CREATE INDEX qiwi_notifications_bill ON qiwi_notifications (bill_id, received_at);
CREATE TRIGGER qiwi_notification_verify BEFORE INSERT ON qiwi_notifications
	FOR EACH ROW EXECUTE FUNCTION qiwi_notification_verify('mark');
SELECT pg_catalog.pg_extension_config_dump('qiwi_notifications', '');
SELECT pg_catalog.pg_extension_config_dump('qiwi_notifications_id_seq', '');

-- ---------- payment links ----------

CREATE FUNCTION qiwi_payment_form_url(
	bill_id text,
	amount numeric,
	public_key text DEFAULT NULL,
	phone text DEFAULT NULL,
	email text DEFAULT NULL,
	account text DEFAULT NULL,
	comment text DEFAULT NULL,
	custom_fields jsonb DEFAULT NULL,
	lifetime timestamptz DEFAULT NULL,
	success_url text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'qiwi_payment_form_url'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION qiwi_pay_url(
	pay_url text,
	pay_source text DEFAULT NULL,
	allowed_pay_sources text[] DEFAULT NULL,
	success_url text DEFAULT NULL,
	lifetime timestamptz DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'qiwi_pay_url'
LANGUAGE C VOLATILE PARALLEL SAFE;

-- ---------- the reconciler ----------

-- Make every WAITING bill due and wake the reconciler when this commits
CREATE FUNCTION qiwi_reconcile_now()
RETURNS bigint
AS 'MODULE_PATHNAME', 'qiwi_reconcile_now'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION qiwi_reconcile_now() FROM PUBLIC;

CREATE FUNCTION qiwi_reconciler_state(
	OUT running boolean,
	OUT pid integer,
	OUT database text,
	OUT started_at timestamptz,
	OUT rounds bigint,
	OUT last_round_start timestamptz,
	OUT last_round_duration interval,
	OUT last_round_checked bigint,
	OUT last_round_changed bigint,
	OUT last_round_failed bigint,
	OUT stopped_by_auth boolean,
	OUT last_error text,
	OUT last_error_at timestamptz)
AS 'MODULE_PATHNAME', 'qiwi_reconciler_state'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE VIEW qiwi_reconciler_status AS SELECT * FROM qiwi_reconciler_state();
