-- qiwi_kassa, core: what every API's objects share (merchants, the
-- reconciler's state).  The Makefile builds qiwi_kassa--<default_version>.sql
-- from sql/ext/core.sql followed by one file per API (sql/ext/bill.sql, ...);
-- sql/qiwi_kassa--A--B.sql upgrade older installs to the same schema
-- (test/t/008_upgrade_and_cluster.pl compares them).
--
-- Expressions stored here (constraints, generated columns, views) use operators
-- whose argument types pg_catalog has exactly, or name pg_catalog's: CREATE
-- EXTENSION runs with the target schema in its path, where a role could have
-- planted a better-matching operator.

-- ---------- merchants ----------
-- A merchant is a server of this wrapper: its ids and endpoints are server
-- options, its keys the options of its user mapping FOR PUBLIC (which
-- pg_user_mappings shows only to superusers and the server's owner).
CREATE FUNCTION qiwi_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'qiwi_fdw_validator'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER qiwi VALIDATOR qiwi_fdw_validator;
COMMENT ON FUNCTION qiwi_fdw_validator(text[], oid) IS $$Validator of the wrapper qiwi: refuses unknown options, keys anywhere but on a user mapping, and invalid values (without showing them)$$;
COMMENT ON FOREIGN DATA WRAPPER qiwi IS $$QIWI merchants: CREATE SERVER name FOREIGN DATA WRAPPER qiwi OPTIONS (site_id, api_url, public_key; for Payin payin_site_id, payin_api_url, capture_hours); CREATE USER MAPPING FOR PUBLIC SERVER name OPTIONS (secret_key; for Payin payin_api_key, payin_notification_key). A role uses a merchant with USAGE on its server$$;

-- ---------- the reconciler ----------

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

-- Make every item the reconciler follows due (each API's: open bills, open
-- Payin invoices) and wake it when this commits
CREATE FUNCTION qiwi_reconcile_now()
RETURNS bigint
AS 'MODULE_PATHNAME', 'qiwi_reconcile_now'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION qiwi_reconcile_now() FROM PUBLIC;

COMMENT ON FUNCTION qiwi_reconciler_state() IS $$The reconciler's state for this server (read it through the view qiwi_reconciler_status)$$;
COMMENT ON VIEW qiwi_reconciler_status IS $$Is the reconciler running (pid, database), its rounds, the last round's start, duration and items (bills, Payin invoices) checked, changed and failed, a 401 stop, and its last error$$;
COMMENT ON COLUMN qiwi_reconciler_status.running IS $$A reconciler process is running$$;
COMMENT ON COLUMN qiwi_reconciler_status.pid IS $$Its process id (see pg_stat_activity)$$;
COMMENT ON COLUMN qiwi_reconciler_status.database IS $$The database it serves (qiwi.database)$$;
COMMENT ON COLUMN qiwi_reconciler_status.started_at IS $$When the running process started$$;
COMMENT ON COLUMN qiwi_reconciler_status.rounds IS $$Rounds completed since the server started$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_start IS $$When the last round started$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_duration IS $$How long the last round took$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_checked IS $$Items the last round asked QIWI about: bills and Payin invoices$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_changed IS $$Items (bills, Payin invoices) whose status the last round changed$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_failed IS $$Checks (of bills and Payin invoices) that failed in the last round$$;
COMMENT ON COLUMN qiwi_reconciler_status.stopped_by_auth IS $$QIWI answered 401 for a merchant's key: that merchant's items wait for a configuration reload or a change of its user mapping (last_error names it); other merchants go on$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_error IS $$The reconciler's last error (not an item's: see qiwi_bills.last_error, qiwi_payin_invoices.last_error)$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_error_at IS $$When last_error happened$$;
COMMENT ON FUNCTION qiwi_reconcile_now() IS $$Make every item the reconciler follows due now (WAITING and CREATING bills; CREATED Payin invoices and PAID ones with money held), leaving rows another transaction holds, and wake the reconciler when this transaction commits; returns how many of all kinds. Not PUBLIC$$;
-- qiwi_kassa, the Bill Payments API (seed 001): its types, tables,
-- functions, notifications and reports.  Follows sql/ext/core.sql.

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
	bill_id text NOT NULL,
	site_id text,
	amount numeric NOT NULL CHECK (amount OPERATOR(pg_catalog.>) 0::numeric AND amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)),
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
	CONSTRAINT qiwi_bills_status_check CHECK (status IN ('WAITING', 'PAID', 'REJECTED', 'EXPIRED', 'CREATING', 'CREATE_FAILED', 'MISMATCH')),
	-- whose bill: "default" (the qiwi.* settings) or a server of the wrapper qiwi
	merchant text NOT NULL DEFAULT 'default',
	CONSTRAINT qiwi_bills_pkey PRIMARY KEY (merchant, bill_id)
);
COMMENT ON TABLE qiwi_bills IS 'Latest known state of QIWI bills; maintained by qiwi_kassa';
-- the reconciler scans the due WAITING bills; reports group by status
CREATE INDEX qiwi_bills_waiting_due ON qiwi_bills (next_check_at) WHERE status IN ('WAITING', 'CREATING');
CREATE INDEX qiwi_bills_status ON qiwi_bills (status, status_changed_at);

CREATE TABLE qiwi_refunds (
	bill_id text NOT NULL,
	refund_id text NOT NULL,
	amount numeric NOT NULL CHECK (amount OPERATOR(pg_catalog.>) 0::numeric AND amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)),
	currency text NOT NULL,
	status text NOT NULL CHECK (status IN ('PARTIAL', 'FULL')),
	created_at timestamptz,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,
	merchant text NOT NULL DEFAULT 'default',
	CONSTRAINT qiwi_refunds_pkey PRIMARY KEY (merchant, bill_id, refund_id)
);
COMMENT ON TABLE qiwi_refunds IS 'Latest known state of QIWI refunds; maintained by qiwi_kassa';

-- Every status change of a bill, whatever made it
CREATE TABLE qiwi_bill_events (
	id bigserial PRIMARY KEY,
	bill_id text NOT NULL,
	old_status text,			-- NULL when the bill was first seen
	new_status text NOT NULL,
	source text NOT NULL CHECK (source IN ('call', 'reconciler', 'notification')),
	changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	merchant text NOT NULL DEFAULT 'default'
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
	success_url text DEFAULT NULL,
	merchant text DEFAULT NULL)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_create_bill'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_bill_status(bill_id text, merchant text DEFAULT NULL)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_bill_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_cancel_bill(bill_id text, merchant text DEFAULT NULL)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_cancel_bill'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_refund(
	bill_id text,
	refund_id text,
	amount numeric,
	currency text DEFAULT 'RUB',
	merchant text DEFAULT NULL)
RETURNS qiwi_refund
AS 'MODULE_PATHNAME', 'qiwi_refund'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION qiwi_refund_status(bill_id text, refund_id text, merchant text DEFAULT NULL)
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
	custom_fields jsonb DEFAULT NULL,
	merchant text DEFAULT NULL)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_create_bill_after_commit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Money moves only for roles the owner trusts: GRANT EXECUTE to them.
REVOKE ALL ON FUNCTION qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_cancel_bill(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_refund(text, text, numeric, text, text) FROM PUBLIC;

-- Reading calls show the buyer's details and spend the shop's request quota:
-- only roles the owner trusts.
REVOKE ALL ON FUNCTION qiwi_bill_status(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION qiwi_refund_status(text, text, text) FROM PUBLIC;

-- ---------- notifications ----------

CREATE FUNCTION qiwi_verify_signature(signature text, notification jsonb, secret text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qiwi_verify_signature'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE FUNCTION qiwi_sign_notification(notification jsonb, secret text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'qiwi_sign_notification'
LANGUAGE C STABLE PARALLEL SAFE;

-- Signing with qiwi.secret_key forges QIWI's word: the owner decides who may.
REVOKE ALL ON FUNCTION qiwi_sign_notification(jsonb, text, text) FROM PUBLIC;

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
	bill_id text GENERATED ALWAYS AS ((body OPERATOR(pg_catalog.->) 'bill'::text) OPERATOR(pg_catalog.->>) 'billId'::text) STORED,
	status text GENERATED ALWAYS AS (((body OPERATOR(pg_catalog.->) 'bill'::text) OPERATOR(pg_catalog.->) 'status'::text) OPERATOR(pg_catalog.->>) 'value'::text) STORED
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
	success_url text DEFAULT NULL,
	merchant text DEFAULT NULL)
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

-- ---------- reports ----------
-- security_invoker: a view reads the tables with the caller's rights, so a
-- role sees money through a report only when it may read qiwi_bills itself.

-- Money per day: PAID bills (by the day their status changed) and refunds
-- (by the day QIWI made them).  MISMATCH bills never count as paid.
CREATE VIEW qiwi_money_per_day WITH (security_invoker = true) AS
SELECT m.day, m.merchant, m.currency,
       sum(m.paid) AS paid, sum(m.refunded) AS refunded, sum(m.paid) - sum(m.refunded) AS net,
       count(*) FILTER (WHERE m.paid > 0::numeric) AS paid_bills,
       count(*) FILTER (WHERE m.refunded > 0::numeric) AS refunds
  FROM (SELECT coalesce(b.status_changed_at, b.first_seen_at)::date AS day, b.merchant,
               b.currency, b.amount AS paid, 0::numeric AS refunded
          FROM qiwi_bills b
         WHERE b.status = 'PAID'
        UNION ALL
        SELECT coalesce(r.created_at, r.first_seen_at)::date, r.merchant, r.currency, 0::numeric, r.amount
          FROM qiwi_refunds r) m
 GROUP BY m.day, m.merchant, m.currency;

-- Bills waiting for the buyer (or for the reconciler to create them)
CREATE VIEW qiwi_open_bills WITH (security_invoker = true) AS
SELECT b.bill_id, b.merchant, b.amount, b.currency, b.status,
       coalesce(b.created_at, b.first_seen_at) AS created_at,
       now() - coalesce(b.created_at, b.first_seen_at) AS age,
       b.expires_at, b.expires_at - now() AS time_left,
       b.next_check_at, b.failures, b.last_error
  FROM qiwi_bills b
 WHERE b.status IN ('WAITING', 'CREATING');

-- Bills whose status changed today (the session's TimeZone decides the day)
CREATE VIEW qiwi_bills_changed_today WITH (security_invoker = true) AS
SELECT b.bill_id, b.merchant, b.amount, b.currency, b.status, b.status_changed_at,
       b.qiwi_status, b.qiwi_amount, b.qiwi_currency
  FROM qiwi_bills b
 WHERE b.status_changed_at >= current_date AND b.status_changed_at < current_date + 1;

-- What was paid, refunded and is left to refund, per bill that has either
CREATE VIEW qiwi_refunds_per_bill WITH (security_invoker = true) AS
SELECT b.bill_id, b.merchant, b.currency, b.status,
       CASE WHEN b.status = 'PAID' THEN b.amount ELSE 0 END AS paid,
       coalesce(r.refunded, 0) AS refunded,
       CASE WHEN b.status = 'PAID' THEN b.amount ELSE 0 END - coalesce(r.refunded, 0) AS left_to_refund,
       coalesce(r.refunds, 0) AS refunds, r.last_refund_at
  FROM qiwi_bills b
  LEFT JOIN (SELECT r.merchant, r.bill_id, sum(r.amount) AS refunded, count(*) AS refunds,
                    max(coalesce(r.created_at, r.first_seen_at)) AS last_refund_at
               FROM qiwi_refunds r GROUP BY r.merchant, r.bill_id) r
    ON r.merchant = b.merchant AND r.bill_id = b.bill_id
 WHERE b.status = 'PAID' OR r.bill_id IS NOT NULL;

-- Bills final at QIWI that disagree with the shop's own order table
CREATE FUNCTION qiwi_reconcile_orders(
	orders regclass,
	bill_id_column name,
	amount_column name,
	cancelled_column name DEFAULT NULL)
RETURNS TABLE (bill_id text, problem text, qiwi_status text, qiwi_amount numeric, order_amount numeric)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	bills text;
BEGIN
	IF orders IS NULL THEN
		RAISE EXCEPTION 'orders must not be NULL' USING ERRCODE = '22004';
	ELSIF bill_id_column IS NULL THEN
		RAISE EXCEPTION 'bill_id_column must not be NULL' USING ERRCODE = '22004';
	ELSIF amount_column IS NULL THEN
		RAISE EXCEPTION 'amount_column must not be NULL' USING ERRCODE = '22004';
	END IF;
	-- the extension's own qiwi_bills, whatever the caller's search_path
	SELECT pg_catalog.format('%I.qiwi_bills', n.nspname) INTO bills
	  FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
	 WHERE e.extname = 'qiwi_kassa';
	RETURN QUERY EXECUTE pg_catalog.format($q$
WITH o AS (
	SELECT (o.%1$I)::pg_catalog.text AS bill_id, (o.%2$I)::pg_catalog.numeric AS amount,
	       %3$s AS cancelled
	  FROM %4$s o
	 WHERE o.%1$I IS NOT NULL),
b AS (
	SELECT b.bill_id, b.status, b.amount,
	       CASE WHEN b.status = 'MISMATCH' THEN b.qiwi_status ELSE b.status END AS qiwi_status,
	       CASE WHEN b.status = 'MISMATCH' THEN b.qiwi_amount ELSE b.amount END AS qiwi_amount
	  FROM %5$s b)
SELECT p.bill_id, p.problem, p.qiwi_status, p.qiwi_amount, p.order_amount FROM (
	SELECT b.bill_id, 'missing order' AS problem, b.qiwi_status, b.qiwi_amount, NULL::pg_catalog.numeric AS order_amount
	  FROM b WHERE b.status = 'PAID' AND NOT EXISTS (SELECT FROM o WHERE o.bill_id = b.bill_id)
	UNION ALL
	SELECT b.bill_id, 'other amount', b.qiwi_status, b.qiwi_amount, o.amount
	  FROM b JOIN o ON o.bill_id = b.bill_id
	 WHERE b.status = 'PAID' AND o.amount IS DISTINCT FROM b.amount
	UNION ALL
	SELECT b.bill_id, 'paid but order cancelled', b.qiwi_status, b.qiwi_amount, o.amount
	  FROM b JOIN o ON o.bill_id = b.bill_id
	 WHERE b.status = 'PAID' AND o.cancelled
	UNION ALL
	SELECT b.bill_id, 'QIWI reported other money', b.qiwi_status, b.qiwi_amount, o.amount
	  FROM b LEFT JOIN o ON o.bill_id = b.bill_id
	 WHERE b.status = 'MISMATCH'
	UNION ALL
	SELECT o.bill_id, 'unknown bill', NULL, NULL, o.amount
	  FROM o WHERE NOT o.cancelled AND NOT EXISTS (SELECT FROM b WHERE b.bill_id = o.bill_id)
	UNION ALL
	SELECT b.bill_id, 'bill not paid', b.qiwi_status, b.qiwi_amount, o.amount
	  FROM b JOIN o ON o.bill_id = b.bill_id
	 WHERE NOT o.cancelled AND b.status IN ('REJECTED', 'EXPIRED', 'CREATE_FAILED')
	UNION ALL
	SELECT o.bill_id, 'several orders', pg_catalog.min(b.qiwi_status), pg_catalog.min(b.qiwi_amount), NULL
	  FROM o LEFT JOIN b ON b.bill_id = o.bill_id
	 WHERE NOT o.cancelled
	 GROUP BY o.bill_id HAVING pg_catalog.count(*) > 1) p
 ORDER BY p.bill_id, p.problem, p.order_amount$q$,
		bill_id_column, amount_column,
		CASE WHEN cancelled_column IS NULL THEN 'false'
		     ELSE pg_catalog.format('coalesce((o.%I)::pg_catalog.bool, false)', cancelled_column) END,
		orders, bills);
END
$fn$;

-- ---------- documentation in the catalog (\d+, \df+, \dT+) ----------
-- Every object and column of the extension has a comment; the regression
-- test qiwi_catalog_docs fails on one that has none.

COMMENT ON TYPE qiwi_bill IS $$A bill as QIWI answered for it: returned by qiwi_create_bill, qiwi_bill_status, qiwi_cancel_bill and qiwi_create_bill_after_commit$$;
COMMENT ON COLUMN qiwi_bill.bill_id IS $$The shop's bill id (QIWI billId)$$;
COMMENT ON COLUMN qiwi_bill.site_id IS $$QIWI merchant (siteId) the bill belongs to$$;
COMMENT ON COLUMN qiwi_bill.amount IS $$Amount QIWI reported, numeric exactly as QIWI has it (two decimals, never rounded)$$;
COMMENT ON COLUMN qiwi_bill.currency IS $$ISO 4217 code of amount (RUB, KZT, ...)$$;
COMMENT ON COLUMN qiwi_bill.status IS $$Status QIWI reported: WAITING (not paid yet), PAID, REJECTED (cancelled), EXPIRED (final); CREATING from qiwi_create_bill_after_commit until the reconciler created it$$;
COMMENT ON COLUMN qiwi_bill.status_changed_at IS $$When the status last changed, as QIWI reported it$$;
COMMENT ON COLUMN qiwi_bill.created_at IS $$When QIWI created the bill$$;
COMMENT ON COLUMN qiwi_bill.expires_at IS $$When QIWI expires the bill if it is not paid$$;
COMMENT ON COLUMN qiwi_bill.pay_url IS $$The payment form for the buyer (QIWI payUrl, with successUrl if one was given)$$;
COMMENT ON COLUMN qiwi_bill.comment IS $$Comment shown to the buyer$$;
COMMENT ON COLUMN qiwi_bill.customer IS $$The buyer as given at creation: JSON object with phone, email, account$$;
COMMENT ON COLUMN qiwi_bill.custom_fields IS $$QIWI customFields (themeCode, ...): JSON object of strings$$;

COMMENT ON TYPE qiwi_refund IS $$A refund as QIWI answered for it: returned by qiwi_refund and qiwi_refund_status$$;
COMMENT ON COLUMN qiwi_refund.bill_id IS $$The refunded bill$$;
COMMENT ON COLUMN qiwi_refund.refund_id IS $$The shop's refund id, unique per bill$$;
COMMENT ON COLUMN qiwi_refund.amount IS $$Money returned by this refund, numeric exactly as QIWI has it$$;
COMMENT ON COLUMN qiwi_refund.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_refund.status IS $$PARTIAL (part of the bill is refunded so far) or FULL (all of it)$$;
COMMENT ON COLUMN qiwi_refund.created_at IS $$When QIWI made the refund$$;

COMMENT ON TABLE qiwi_bills IS $$Latest known state of every QIWI bill this database created or asked about; maintained by qiwi_kassa (calls, the reconciler, verified notifications); a status only moves forward$$;
COMMENT ON COLUMN qiwi_bills.bill_id IS $$The shop's bill id (QIWI billId): 1-200 of A-Z a-z 0-9 _ - .$$;
COMMENT ON COLUMN qiwi_bills.merchant IS $$Whose bill: "default" (the qiwi.* settings) or the name of a server of the wrapper qiwi; bill ids are unique per merchant$$;
COMMENT ON COLUMN qiwi_refunds.merchant IS $$Whose refund: the merchant of its bill$$;
COMMENT ON COLUMN qiwi_bill_events.merchant IS $$The merchant of the bill$$;
COMMENT ON COLUMN qiwi_bills.site_id IS $$QIWI merchant (siteId) the bill belongs to; NULL until QIWI has answered for a CREATING bill$$;
COMMENT ON COLUMN qiwi_bills.amount IS $$The shop's amount, numeric exactly as QIWI has it (two decimals, never rounded); for MISMATCH QIWI's own is in qiwi_amount$$;
COMMENT ON COLUMN qiwi_bills.currency IS $$ISO 4217 code of amount (RUB, KZT, ...)$$;
COMMENT ON COLUMN qiwi_bills.status IS $$WAITING: issued, not paid yet; PAID: paid (final); REJECTED: cancelled (final); EXPIRED: not paid in time (final); CREATING: recorded by qiwi_create_bill_after_commit, not at QIWI yet; CREATE_FAILED: QIWI refused to create it (see last_error); MISMATCH: QIWI reported another amount or currency than the shop's (see qiwi_amount, qiwi_currency, qiwi_status), never counted as paid$$;
COMMENT ON COLUMN qiwi_bills.status_changed_at IS $$When the status last changed: QIWI's time for an answer, the time recorded here for a notification or a MISMATCH; NULL for a CREATING bill$$;
COMMENT ON COLUMN qiwi_bills.created_at IS $$When QIWI created the bill; NULL while CREATING$$;
COMMENT ON COLUMN qiwi_bills.expires_at IS $$When QIWI expires the bill if it is not paid; the reconciler checks it then$$;
COMMENT ON COLUMN qiwi_bills.pay_url IS $$QIWI's payment form for the buyer (payUrl); NULL while CREATING$$;
COMMENT ON COLUMN qiwi_bills.comment IS $$Comment shown to the buyer$$;
COMMENT ON COLUMN qiwi_bills.customer IS $$The buyer as given at creation: JSON object with phone, email, account$$;
COMMENT ON COLUMN qiwi_bills.custom_fields IS $$QIWI customFields (themeCode, ...): JSON object of strings$$;
COMMENT ON COLUMN qiwi_bills.first_seen_at IS $$When this database first recorded the bill$$;
COMMENT ON COLUMN qiwi_bills.checked_at IS $$When QIWI last told us about the bill (a call, the reconciler or a verified notification)$$;
COMMENT ON COLUMN qiwi_bills.next_check_at IS $$When the reconciler asks QIWI about this WAITING or CREATING bill next (backs off after each WAITING answer or failure; due as soon as expires_at passes)$$;
COMMENT ON COLUMN qiwi_bills.check_count IS $$WAITING answers the reconciler got so far (sets its back-off)$$;
COMMENT ON COLUMN qiwi_bills.failures IS $$Failed checks in a row (network, timeout, 429, 5xx, malformed answer); 0 after an answer$$;
COMMENT ON COLUMN qiwi_bills.last_error IS $$Why the last check failed, or why QIWI refused to create a CREATE_FAILED bill (keys replaced by ********)$$;
COMMENT ON COLUMN qiwi_bills.qiwi_amount IS $$For MISMATCH: the amount QIWI reported (not the shop's); NULL otherwise$$;
COMMENT ON COLUMN qiwi_bills.qiwi_currency IS $$For MISMATCH: the currency QIWI reported; NULL otherwise$$;
COMMENT ON COLUMN qiwi_bills.qiwi_status IS $$For MISMATCH: the status QIWI reported for that other money (PAID means the buyer paid another amount); NULL otherwise$$;

COMMENT ON TABLE qiwi_refunds IS $$Latest known state of every QIWI refund made or asked about from this database; maintained by qiwi_kassa$$;
COMMENT ON COLUMN qiwi_refunds.bill_id IS $$The refunded bill (qiwi_bills.bill_id)$$;
COMMENT ON COLUMN qiwi_refunds.refund_id IS $$The shop's refund id, unique per bill$$;
COMMENT ON COLUMN qiwi_refunds.amount IS $$Money returned by this refund, numeric exactly as QIWI has it$$;
COMMENT ON COLUMN qiwi_refunds.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_refunds.status IS $$PARTIAL (part of the bill is refunded so far) or FULL (all of it), as QIWI reported$$;
COMMENT ON COLUMN qiwi_refunds.created_at IS $$When QIWI made the refund$$;
COMMENT ON COLUMN qiwi_refunds.first_seen_at IS $$When this database first recorded the refund$$;
COMMENT ON COLUMN qiwi_refunds.checked_at IS $$When QIWI last told us about the refund$$;

COMMENT ON TABLE qiwi_bill_events IS $$Every status change of a QIWI bill, whatever made it; each is also announced with NOTIFY qiwi_bill_status$$;
COMMENT ON COLUMN qiwi_bill_events.id IS $$Order of the changes$$;
COMMENT ON COLUMN qiwi_bill_events.bill_id IS $$The bill (qiwi_bills.bill_id)$$;
COMMENT ON COLUMN qiwi_bill_events.old_status IS $$Status before the change; NULL when the bill was first seen$$;
COMMENT ON COLUMN qiwi_bill_events.new_status IS $$Status after the change (see qiwi_bills.status)$$;
COMMENT ON COLUMN qiwi_bill_events.source IS $$What made the change: call (a qiwi_* function), reconciler, or notification$$;
COMMENT ON COLUMN qiwi_bill_events.changed_at IS $$When the change was recorded here$$;
COMMENT ON SEQUENCE qiwi_bill_events_id_seq IS $$Ids of qiwi_bill_events$$;

COMMENT ON TABLE qiwi_notifications IS $$QIWI payment notifications as the web tier received them, verified and applied by the trigger qiwi_notification_verify()$$;
COMMENT ON COLUMN qiwi_notifications.id IS $$Order of arrival$$;
COMMENT ON COLUMN qiwi_notifications.received_at IS $$When the notification was stored$$;
COMMENT ON COLUMN qiwi_notifications.signature IS $$The X-Api-Signature-SHA256 header as received$$;
COMMENT ON COLUMN qiwi_notifications.body IS $$The request body as received$$;
COMMENT ON COLUMN qiwi_notifications.verified IS $$Set by the trigger: the signature holds for qiwi.secret_key$$;
COMMENT ON COLUMN qiwi_notifications.applied IS $$Set by the trigger: it moved the bill forward in qiwi_bills$$;
COMMENT ON COLUMN qiwi_notifications.error IS $$Set by the trigger: why it was not verified or not applied (a duplicate, out of order, another merchant, ...)$$;
COMMENT ON COLUMN qiwi_notifications.bill_id IS $$billId in the body (generated; unsigned until verified)$$;
COMMENT ON COLUMN qiwi_notifications.status IS $$Bill status in the body (generated; unsigned until verified)$$;
COMMENT ON SEQUENCE qiwi_notifications_id_seq IS $$Ids of qiwi_notifications$$;
COMMENT ON TRIGGER qiwi_notification_verify ON qiwi_notifications IS $$Checks each notification's signature and applies verified ones to qiwi_bills ('mark': a bad one is stored with verified = false)$$;

COMMENT ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text, text) IS $$Create a bill at QIWI now and record it in qiwi_bills (retry-safe: the same bill_id and amount give the same bill). bill_id: the shop's id; amount: > 0, two decimals at most; currency: default RUB; expires_at: default now() + 45 days; comment: shown to the buyer; phone, email, account: the buyer; custom_fields: JSON object of strings; success_url: appended to pay_url. Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_bill_status(text, text) IS $$Ask QIWI for the bill bill_id, record the answer in qiwi_bills (forward only) and return what QIWI said. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_cancel_bill(text, text) IS $$Cancel the unpaid bill bill_id at QIWI (REJECTED); cancelling it again returns it. Not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_refund(text, text, numeric, text, text) IS $$Refund amount (in currency, default RUB) of the paid bill bill_id under the shop's refund_id (retry-safe); refused before sending when it exceeds what is left to refund. Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_refund_status(text, text, text) IS $$Ask QIWI for the refund refund_id of bill bill_id and record it in qiwi_refunds. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb, text) IS $$Record a bill as CREATING now; the reconciler creates it at QIWI after this transaction commits, so a rollback leaves no bill at QIWI. Arguments as qiwi_create_bill: bill_id, amount, currency, expires_at, comment, phone, email, account, custom_fields. Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_verify_signature(text, jsonb, text, text) IS $$Does signature (X-Api-Signature-SHA256) hold for the notification body under secret (NULL: qiwi.secret_key)? NULL if signature or notification is NULL; never an error. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_sign_notification(jsonb, text, text) IS $$The signature QIWI would send for notification under secret (NULL: qiwi.secret_key); for tests. Forges QIWI's word: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_notification_verify() IS $$Trigger (BEFORE INSERT) for a table with signature, body, verified, applied, error: verifies the signature and applies a verified notification to qiwi_bills. Argument 'mark' (default) stores a bad one marked, 'reject' fails the INSERT (QKSIG). Not PUBLIC$$;
COMMENT ON FUNCTION qiwi_payment_form_url(text, numeric, text, text, text, text, text, jsonb, timestamptz, text, text) IS $$URL of QIWI's form that creates the bill bill_id for amount when the buyer opens it. public_key: NULL means qiwi.public_key; phone, email, account, comment, custom_fields as in qiwi_create_bill; lifetime: expiry (cut to the minute); success_url: where the buyer returns. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_pay_url(text, text, text[], text, timestamptz) IS $$pay_url (from qiwi_create_bill) with options added: pay_source (qw, card, mobile, sovest) preselected, allowed_pay_sources offered, success_url, lifetime$$;
COMMENT ON FUNCTION qiwi_reconcile_orders(regclass, name, name, name) IS $$Bills that disagree with the shop's order table orders (its columns bill_id_column, amount_column and, if given, the boolean cancelled_column): missing order, other amount, paid but order cancelled, QIWI reported other money, unknown bill, bill not paid, several orders. Runs with the caller's rights$$;


COMMENT ON VIEW qiwi_money_per_day IS $$Money per day (session time zone), merchant and currency: PAID bills by the day their status changed, refunds by the day QIWI made them; MISMATCH and unpaid bills never count. Reads qiwi_bills and qiwi_refunds with the caller's rights$$;
COMMENT ON COLUMN qiwi_money_per_day.day IS $$The day (status_changed_at of a PAID bill, created_at of a refund)$$;
COMMENT ON COLUMN qiwi_money_per_day.merchant IS $$The merchant: "default" (the qiwi.* settings) or a server of the wrapper qiwi$$;
COMMENT ON COLUMN qiwi_money_per_day.currency IS $$ISO 4217 code of the sums$$;
COMMENT ON COLUMN qiwi_money_per_day.paid IS $$Sum of the amounts of the bills that became PAID that day$$;
COMMENT ON COLUMN qiwi_money_per_day.refunded IS $$Sum of the refunds made that day$$;
COMMENT ON COLUMN qiwi_money_per_day.net IS $$paid - refunded$$;
COMMENT ON COLUMN qiwi_money_per_day.paid_bills IS $$Bills that became PAID that day$$;
COMMENT ON COLUMN qiwi_money_per_day.refunds IS $$Refunds made that day$$;

COMMENT ON VIEW qiwi_open_bills IS $$Bills not final yet: WAITING for the buyer or CREATING (qiwi_create_bill_after_commit, not at QIWI yet), with their age and time left. Reads qiwi_bills with the caller's rights$$;
COMMENT ON COLUMN qiwi_open_bills.bill_id IS $$The shop's bill id$$;
COMMENT ON COLUMN qiwi_open_bills.merchant IS $$The merchant: "default" (the qiwi.* settings) or a server of the wrapper qiwi$$;
COMMENT ON COLUMN qiwi_open_bills.amount IS $$The shop's amount, numeric exactly as QIWI has it$$;
COMMENT ON COLUMN qiwi_open_bills.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_open_bills.status IS $$WAITING or CREATING$$;
COMMENT ON COLUMN qiwi_open_bills.created_at IS $$When QIWI created it, or when it was recorded here while CREATING$$;
COMMENT ON COLUMN qiwi_open_bills.age IS $$now() - created_at$$;
COMMENT ON COLUMN qiwi_open_bills.expires_at IS $$When QIWI expires it if not paid$$;
COMMENT ON COLUMN qiwi_open_bills.time_left IS $$expires_at - now(); negative when it expired and the reconciler has not seen it yet$$;
COMMENT ON COLUMN qiwi_open_bills.next_check_at IS $$When the reconciler checks it next$$;
COMMENT ON COLUMN qiwi_open_bills.failures IS $$Failed checks in a row$$;
COMMENT ON COLUMN qiwi_open_bills.last_error IS $$Why the last check failed$$;

COMMENT ON VIEW qiwi_bills_changed_today IS $$Bills whose status changed today (session time zone). Reads qiwi_bills with the caller's rights$$;
COMMENT ON COLUMN qiwi_bills_changed_today.bill_id IS $$The shop's bill id$$;
COMMENT ON COLUMN qiwi_bills_changed_today.merchant IS $$The merchant: "default" (the qiwi.* settings) or a server of the wrapper qiwi$$;
COMMENT ON COLUMN qiwi_bills_changed_today.amount IS $$The shop's amount, numeric exactly as QIWI has it$$;
COMMENT ON COLUMN qiwi_bills_changed_today.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_bills_changed_today.status IS $$The status it changed to (see qiwi_bills.status)$$;
COMMENT ON COLUMN qiwi_bills_changed_today.status_changed_at IS $$When it changed$$;
COMMENT ON COLUMN qiwi_bills_changed_today.qiwi_status IS $$For MISMATCH: the status QIWI reported for other money$$;
COMMENT ON COLUMN qiwi_bills_changed_today.qiwi_amount IS $$For MISMATCH: the amount QIWI reported$$;
COMMENT ON COLUMN qiwi_bills_changed_today.qiwi_currency IS $$For MISMATCH: the currency QIWI reported$$;

COMMENT ON VIEW qiwi_refunds_per_bill IS $$Per bill that is PAID or has refunds: paid, refunded so far and left to refund (what qiwi_refund still accepts). Reads qiwi_bills and qiwi_refunds with the caller's rights$$;
COMMENT ON COLUMN qiwi_refunds_per_bill.bill_id IS $$The shop's bill id$$;
COMMENT ON COLUMN qiwi_refunds_per_bill.merchant IS $$The merchant: "default" (the qiwi.* settings) or a server of the wrapper qiwi$$;
COMMENT ON COLUMN qiwi_refunds_per_bill.currency IS $$ISO 4217 code of the sums$$;
COMMENT ON COLUMN qiwi_refunds_per_bill.status IS $$The bill's status$$;
COMMENT ON COLUMN qiwi_refunds_per_bill.paid IS $$The bill's amount if PAID, else 0$$;
COMMENT ON COLUMN qiwi_refunds_per_bill.refunded IS $$Sum of its refunds in qiwi_refunds$$;
COMMENT ON COLUMN qiwi_refunds_per_bill.left_to_refund IS $$paid - refunded (negative would mean more was refunded than paid)$$;
COMMENT ON COLUMN qiwi_refunds_per_bill.refunds IS $$Number of its refunds$$;
COMMENT ON COLUMN qiwi_refunds_per_bill.last_refund_at IS $$When QIWI made its last refund$$;

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
	amount numeric NOT NULL CHECK (amount OPERATOR(pg_catalog.>) 0::numeric AND amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)),
	currency text NOT NULL,
	status text NOT NULL CHECK (status IN ('COMPLETED', 'DECLINED')),
	comment text,
	created_at timestamptz,
	status_changed_at timestamptz,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,
	CONSTRAINT qiwi_payin_captures_pkey PRIMARY KEY (merchant, payment_id, capture_id)
);

CREATE TABLE qiwi_payin_refunds (
	merchant text NOT NULL,
	payment_id text NOT NULL,
	refund_id text NOT NULL,
	amount numeric NOT NULL CHECK (amount OPERATOR(pg_catalog.>) 0::numeric AND amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)),
	currency text NOT NULL,
	status text NOT NULL CHECK (status IN ('COMPLETED', 'DECLINED')),
	reversal boolean NOT NULL,
	flags text[],
	comment text,
	created_at timestamptz,
	status_changed_at timestamptz,
	first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	checked_at timestamptz NOT NULL,
	CONSTRAINT qiwi_payin_refunds_pkey PRIMARY KEY (merchant, payment_id, refund_id)
);

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

-- All money by merchant, API and status, in one query.  received is money
-- the shop has: PAID bills, captured Payin payments, less refunds; held
-- and awaited money is listed with received 0.
CREATE VIEW qiwi_money_by_status WITH (security_invoker = true) AS
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
         WHERE r.status OPERATOR(pg_catalog.=) 'COMPLETED'::text) m
 GROUP BY m.merchant, m.api, m.status, m.currency;

-- One row: is the reconciler keeping up, with bills and with Payin
-- invoices?  Here, after every API's tables, since it reads them all.
CREATE VIEW qiwi_reconciler_health WITH (security_invoker = true) AS
SELECT s.running, s.pid, s.rounds, s.last_round_start, s.last_round_duration,
       s.last_round_checked, s.last_round_changed, s.last_round_failed, s.stopped_by_auth,
       b.open_bills, b.due_bills, coalesce(now() - b.oldest_due_at, interval '0') AS lag,
       b.failing_bills, b.max_failures, b.bill_error,
       s.last_error, s.last_error_at,
       p.payin_open_invoices, p.payin_due_invoices,
       coalesce(now() OPERATOR(pg_catalog.-) p.oldest_due_at, interval '0') AS payin_lag,
       p.payin_failing_invoices, p.payin_max_failures, p.payin_invoice_error
  FROM qiwi_reconciler_status s,
       (SELECT count(*) AS open_bills,
               count(*) FILTER (WHERE q.next_check_at <= now()) AS due_bills,
               min(q.next_check_at) FILTER (WHERE q.next_check_at <= now()) AS oldest_due_at,
               count(*) FILTER (WHERE q.failures > 0) AS failing_bills,
               coalesce(max(q.failures), 0) AS max_failures,
               (array_agg(q.last_error ORDER BY q.failures DESC, q.next_check_at)
                    FILTER (WHERE q.failures > 0))[1] AS bill_error
          FROM qiwi_bills q
         WHERE q.status IN ('WAITING', 'CREATING')) b,
       -- the invoices the reconciler follows (payin_store.c's PAYIN_FOLLOWED)
       (SELECT count(*) AS payin_open_invoices,
               count(*) FILTER (WHERE i.next_check_at OPERATOR(pg_catalog.<=) now()) AS payin_due_invoices,
               min(i.next_check_at) FILTER (WHERE i.next_check_at OPERATOR(pg_catalog.<=) now()) AS oldest_due_at,
               count(*) FILTER (WHERE i.failures OPERATOR(pg_catalog.>) 0) AS payin_failing_invoices,
               coalesce(max(i.failures), 0) AS payin_max_failures,
               (array_agg(i.last_error ORDER BY i.failures DESC, i.next_check_at)
                    FILTER (WHERE i.failures OPERATOR(pg_catalog.>) 0))[1] AS payin_invoice_error
          FROM qiwi_payin_invoices i
         WHERE i.status OPERATOR(pg_catalog.=) 'CREATED'::text
            OR (i.status OPERATOR(pg_catalog.=) 'PAID'::text
                AND EXISTS (SELECT FROM qiwi_payin_holds h
                             WHERE h.merchant OPERATOR(pg_catalog.=) i.merchant
                               AND h.bill_id OPERATOR(pg_catalog.=) i.bill_id))) p;

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
COMMENT ON COLUMN qiwi_payin_invoices.next_check_at IS $$When the reconciler asks QIWI about this invoice next, while it is CREATED or one of its payments holds money (backs off after each unchanged answer or failure; due as soon as expires_at or a capture deadline passes)$$;
COMMENT ON COLUMN qiwi_payin_invoices.check_count IS $$Reconciler checks answered so far$$;
COMMENT ON COLUMN qiwi_payin_invoices.failures IS $$Failed reconciler checks in a row (network, timeout, 429, 5xx, malformed answer, 404); 0 after an answer$$;
COMMENT ON COLUMN qiwi_payin_invoices.last_error IS $$Why the last reconciler check failed (keys replaced by ********)$$;

COMMENT ON TABLE qiwi_payin_payments IS $$Latest known state of every Payin payment seen from this database; maintained by qiwi_kassa, forward only$$;
COMMENT ON COLUMN qiwi_payin_payments.merchant IS $$Whose payment: a server of the wrapper qiwi (or "default")$$;
COMMENT ON COLUMN qiwi_payin_payments.payment_id IS $$QIWI's payment id$$;
COMMENT ON COLUMN qiwi_payin_payments.bill_id IS $$The invoice it pays (qiwi_payin_invoices.bill_id)$$;
COMMENT ON COLUMN qiwi_payin_payments.status IS $$WAITING, COMPLETED (authorised), DECLINED, or MISMATCH (other money than its invoice: never paid; see qiwi_status)$$;
COMMENT ON COLUMN qiwi_payin_payments.amount IS $$The amount authorised, as QIWI reported it (for MISMATCH not the invoice's: see qiwi_payin_invoices.amount)$$;
COMMENT ON COLUMN qiwi_payin_payments.currency IS $$ISO 4217 code of the amounts$$;
COMMENT ON COLUMN qiwi_payin_payments.captured_amount IS $$Money taken so far (only grows); 0 while held$$;
COMMENT ON COLUMN qiwi_payin_payments.refunded_amount IS $$Money returned or released so far, as QIWI last said (only grows)$$;
COMMENT ON COLUMN qiwi_payin_payments.method IS $$Payment method type$$;
COMMENT ON COLUMN qiwi_payin_payments.masked_pan IS $$The card number, masked$$;
COMMENT ON COLUMN qiwi_payin_payments.reason_code IS $$Why it was declined$$;
COMMENT ON COLUMN qiwi_payin_payments.reason_message IS $$QIWI's text for reason_code$$;
COMMENT ON COLUMN qiwi_payin_payments.flags IS $$SALE (one step) or AUTH (two steps)$$;
COMMENT ON COLUMN qiwi_payin_payments.created_at IS $$When the buyer started it$$;
COMMENT ON COLUMN qiwi_payin_payments.status_changed_at IS $$When its status last changed$$;
COMMENT ON COLUMN qiwi_payin_payments.capture_deadline IS $$For an authorised two-step payment: authorisation + the merchant's capture_hours (72 by default), when QIWI captures or releases the hold by itself$$;
COMMENT ON COLUMN qiwi_payin_payments.first_seen_at IS $$When this database first recorded it$$;
COMMENT ON COLUMN qiwi_payin_payments.checked_at IS $$When QIWI last told us about it$$;
COMMENT ON COLUMN qiwi_payin_payments.qiwi_status IS $$For MISMATCH: the status QIWI reported for the other money$$;

COMMENT ON TABLE qiwi_payin_captures IS $$Every Payin capture made or asked about from this database; recorded once, then only confirmed$$;
COMMENT ON COLUMN qiwi_payin_captures.merchant IS $$Whose capture$$;
COMMENT ON COLUMN qiwi_payin_captures.payment_id IS $$The captured payment$$;
COMMENT ON COLUMN qiwi_payin_captures.capture_id IS $$The shop's capture id$$;
COMMENT ON COLUMN qiwi_payin_captures.amount IS $$Money taken$$;
COMMENT ON COLUMN qiwi_payin_captures.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_payin_captures.status IS $$COMPLETED or DECLINED$$;
COMMENT ON COLUMN qiwi_payin_captures.comment IS $$The capture's comment$$;
COMMENT ON COLUMN qiwi_payin_captures.created_at IS $$When QIWI made it$$;
COMMENT ON COLUMN qiwi_payin_captures.status_changed_at IS $$When its status was set$$;
COMMENT ON COLUMN qiwi_payin_captures.first_seen_at IS $$When this database first recorded it$$;
COMMENT ON COLUMN qiwi_payin_captures.checked_at IS $$When QIWI last told us about it$$;

COMMENT ON TABLE qiwi_payin_refunds IS $$Every Payin refund or reversal made or asked about from this database; recorded once, then only confirmed$$;
COMMENT ON COLUMN qiwi_payin_refunds.merchant IS $$Whose refund$$;
COMMENT ON COLUMN qiwi_payin_refunds.payment_id IS $$The refunded payment$$;
COMMENT ON COLUMN qiwi_payin_refunds.refund_id IS $$The shop's refund id$$;
COMMENT ON COLUMN qiwi_payin_refunds.amount IS $$Money returned or released$$;
COMMENT ON COLUMN qiwi_payin_refunds.currency IS $$ISO 4217 code of amount$$;
COMMENT ON COLUMN qiwi_payin_refunds.status IS $$COMPLETED or DECLINED$$;
COMMENT ON COLUMN qiwi_payin_refunds.reversal IS $$It released held money before a capture (QIWI's flag REVERSAL): no money had moved$$;
COMMENT ON COLUMN qiwi_payin_refunds.flags IS $$QIWI's flags$$;
COMMENT ON COLUMN qiwi_payin_refunds.comment IS $$The refund's comment$$;
COMMENT ON COLUMN qiwi_payin_refunds.created_at IS $$When QIWI made it$$;
COMMENT ON COLUMN qiwi_payin_refunds.status_changed_at IS $$When its status was set$$;
COMMENT ON COLUMN qiwi_payin_refunds.first_seen_at IS $$When this database first recorded it$$;
COMMENT ON COLUMN qiwi_payin_refunds.checked_at IS $$When QIWI last told us about it$$;

COMMENT ON TABLE qiwi_payin_events IS $$Every status change of a Payin invoice, payment or payment token and every capture, refund and card check recorded; each is also announced with NOTIFY qiwi_payin_status$$;
COMMENT ON COLUMN qiwi_payin_events.id IS $$Order of the changes$$;
COMMENT ON COLUMN qiwi_payin_events.merchant IS $$Whose object$$;
COMMENT ON COLUMN qiwi_payin_events.object IS $$invoice, payment, capture, refund, token or card_check$$;
COMMENT ON COLUMN qiwi_payin_events.object_id IS $$Its id (bill_id, payment_id, capture_id, refund_id, the token, or a card check's request_uid)$$;
COMMENT ON COLUMN qiwi_payin_events.old_status IS $$Status before; NULL when first seen$$;
COMMENT ON COLUMN qiwi_payin_events.new_status IS $$Status after$$;
COMMENT ON COLUMN qiwi_payin_events.source IS $$What made the change: call (a qiwi_payin_* function), reconciler, or notification$$;
COMMENT ON COLUMN qiwi_payin_events.changed_at IS $$When the change was recorded here$$;
COMMENT ON SEQUENCE qiwi_payin_events_id_seq IS $$Ids of qiwi_payin_events$$;

COMMENT ON FUNCTION qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text) IS $$Create a Payin invoice now and record it (retry-safe: the same bill_id and amount give the same invoice). bill_id: the shop's id; amount: > 0, two decimals at most, sent with two (NULL for a card check); currency: default RUB; expires_at: default now() + 45 days; capture: 'auto' (one step) or 'manual' (hold, then qiwi_payin_capture); comment: at most 256 characters; phone, email, account: the buyer; custom_fields: cf1..cf5, themeCode, contractId, invoice_callback_url; payment_methods: CARD, SBP, QIWI_WALLET; callback_url: where QIWI notifies about its payments; bind_token: ask for a payment token for account; check_card: the buyer only has the card checked (flag CHECK_CARD; no amount, capture 'auto', RUB, card only; recorded with capture 'check'; its request_uid for qiwi_payin_card_check is bill_id). Moves money: not PUBLIC. merchant: whose (a server of the wrapper qiwi with payin_site_id and a payin_api_key)$$;
COMMENT ON FUNCTION qiwi_payin_invoice(text, text) IS $$Ask QIWI for the Payin invoice bill_id with its payments, record them (forward only) and return the invoice. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_payments(text, text) IS $$Ask QIWI for the payments of the Payin invoice bill_id, record and return them. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_payment(text, text) IS $$Ask QIWI for the Payin payment payment_id, record and return it. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_capture(text, text, text, text) IS $$Capture the money held by the two-step payment payment_id under the shop's capture_id, with an optional comment; a lost answer is asked for by capture_id before anything is sent again, so it captures once. Moves money: not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_capture_status(text, text, text) IS $$Ask QIWI for the capture capture_id of payment payment_id and record it. Not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_refund(text, text, numeric, text, text) IS $$Refund amount (in currency, default RUB) of payment payment_id under the shop's refund_id: captured money is returned, held money released (flag REVERSAL). Refused before sending when it exceeds what is left; a lost answer is asked for by refund_id first. Moves money: not PUBLIC. merchant: whose$$;
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

COMMENT ON VIEW qiwi_payin_holds IS $$Money held by authorised two-step payments not captured yet, oldest first, with the capture deadline (authorisation + capture_hours): what the shop must capture or release. Reads the tables with the caller's rights$$;
COMMENT ON COLUMN qiwi_payin_holds.merchant IS $$Whose payment$$;
COMMENT ON COLUMN qiwi_payin_holds.payment_id IS $$The payment$$;
COMMENT ON COLUMN qiwi_payin_holds.bill_id IS $$Its invoice$$;
COMMENT ON COLUMN qiwi_payin_holds.held IS $$Money still held: the amount less reversals (those recorded, or what QIWI reports released, whichever is more)$$;
COMMENT ON COLUMN qiwi_payin_holds.currency IS $$ISO 4217 code of held$$;
COMMENT ON COLUMN qiwi_payin_holds.authorised_at IS $$When the payment was authorised$$;
COMMENT ON COLUMN qiwi_payin_holds.capture_deadline IS $$When QIWI captures or releases it by itself$$;
COMMENT ON COLUMN qiwi_payin_holds.time_left IS $$capture_deadline - now()$$;

COMMENT ON VIEW qiwi_money_by_status IS $$All money by merchant, API (bill, payin), status and currency: bills by status and their refunds; Payin invoices not paid (INVOICE_CREATED, INVOICE_EXPIRED, INVOICE_MISMATCH), payments HELD (what is still held), CAPTURED, WAITING, DECLINED, MISMATCH (QIWI's amount), refunds REFUNDED and reversals RELEASED. Held money is never received. Reads the tables with the caller's rights$$;
COMMENT ON COLUMN qiwi_money_by_status.merchant IS $$The merchant$$;
COMMENT ON COLUMN qiwi_money_by_status.api IS $$bill (Bill Payments) or payin$$;
COMMENT ON COLUMN qiwi_money_by_status.status IS $$The items' status (see the view's comment)$$;
COMMENT ON COLUMN qiwi_money_by_status.currency IS $$ISO 4217 code of the sums$$;
COMMENT ON COLUMN qiwi_money_by_status.items IS $$How many bills, invoices, payments or refunds$$;
COMMENT ON COLUMN qiwi_money_by_status.amount IS $$Their amounts (a captured payment's captured amount)$$;
COMMENT ON COLUMN qiwi_money_by_status.received IS $$What the shop received: PAID bills and captured payments, less refunds (negative); 0 for held, awaited, declined, released or MISMATCH money$$;

COMMENT ON VIEW qiwi_reconciler_health IS $$One row: qiwi_reconciler_status plus how far behind the reconciler is and which items' checks fail, for bills (open_bills ... bill_error) and for Payin invoices (payin_*). Reads qiwi_bills, qiwi_payin_invoices, qiwi_payin_holds and qiwi_reconciler_status with the caller's rights$$;
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
COMMENT ON COLUMN qiwi_reconciler_health.due_bills IS $$Open bills whose next_check_at has passed$$;
COMMENT ON COLUMN qiwi_reconciler_health.lag IS $$now() - the oldest next_check_at among the due bills; 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.failing_bills IS $$Open bills whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.max_failures IS $$Most failed checks in a row of one open bill$$;
COMMENT ON COLUMN qiwi_reconciler_health.bill_error IS $$last_error of the open bill with the most failures in a row$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_error IS $$The reconciler's own last error (no worker slot, 401, ...)$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_error_at IS $$When last_error happened$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_open_invoices IS $$Payin invoices the reconciler follows: CREATED, or PAID with money held (in qiwi_payin_holds)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_due_invoices IS $$Followed Payin invoices whose next_check_at has passed$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_lag IS $$now() - the oldest next_check_at among the due Payin invoices; 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_failing_invoices IS $$Followed Payin invoices whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_max_failures IS $$Most failed checks in a row of one followed Payin invoice$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_invoice_error IS $$last_error of the followed Payin invoice with the most failures in a row$$;
