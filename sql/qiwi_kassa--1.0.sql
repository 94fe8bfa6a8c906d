-- qiwi_kassa 1.0: the QIWI Bill Payments API in SQL
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
	status text NOT NULL CHECK (status IN ('WAITING', 'PAID', 'REJECTED', 'EXPIRED')),
	status_changed_at timestamptz,
	created_at timestamptz,
	expires_at timestamptz,
	pay_url text,
	comment text,
	customer jsonb,
	custom_fields jsonb,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,	-- when QIWI last told us about it
	next_check_at timestamptz NOT NULL DEFAULT clock_timestamp()	-- reconciler schedule
);
COMMENT ON TABLE qiwi_bills IS 'Latest known state of QIWI bills; maintained by qiwi_kassa';
-- the reconciler scans the due WAITING bills; reports group by status
CREATE INDEX qiwi_bills_waiting_due ON qiwi_bills (next_check_at) WHERE status = 'WAITING';
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

SELECT pg_catalog.pg_extension_config_dump('qiwi_bills', '');
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

-- Money moves only for roles the owner trusts: GRANT EXECUTE to them.
REVOKE ALL ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_cancel_bill(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_refund(text, text, numeric, text) FROM PUBLIC;
