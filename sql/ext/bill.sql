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
	-- when the reconciler last set next_check_at (see qiwi_reconcile_watermark)
	scheduled_at timestamptz DEFAULT clock_timestamp(),
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
COMMENT ON COLUMN qiwi_bills.checked_at IS $$When QIWI last told us about the bill (a call, the reconciler or a verified notification) or about a refund of it$$;
COMMENT ON COLUMN qiwi_bills.next_check_at IS $$When the reconciler asks QIWI about this WAITING or CREATING bill next (backs off after each WAITING answer or failure; due as soon as expires_at passes)$$;
COMMENT ON COLUMN qiwi_bills.check_count IS $$WAITING answers the reconciler got so far (sets its back-off)$$;
COMMENT ON COLUMN qiwi_bills.scheduled_at IS $$When the reconciler last set next_check_at (a check, or the row's creation; NULL: before 1.4): a qiwi_reconcile_now() after it makes the row due (qiwi_reconcile_watermark), without writing it$$;
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
COMMENT ON FUNCTION qiwi_refund(text, text, numeric, text, text) IS $$Refund amount (in currency, default RUB) of the paid bill bill_id under the shop's refund_id (retry-safe); refused before sending when currency is not the bill's or amount exceeds what is left to refund (a bill qiwi_bills lacks is asked for first). Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_refund_status(text, text, text) IS $$Ask QIWI for the refund refund_id of bill bill_id and record it in qiwi_refunds. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb, text) IS $$Record a bill as CREATING now; the reconciler creates it at QIWI after this transaction commits, so a rollback leaves no bill at QIWI. Arguments as qiwi_create_bill: bill_id, amount, currency, expires_at, comment, phone, email, account, custom_fields. Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_verify_signature(text, jsonb, text, text) IS $$Does signature (X-Api-Signature-SHA256) hold for the notification body under secret (NULL: qiwi.secret_key)? NULL if signature or notification is NULL; never an error. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_sign_notification(jsonb, text, text) IS $$The signature QIWI would send for notification under secret (NULL: qiwi.secret_key); for tests. Forges QIWI's word: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
COMMENT ON FUNCTION qiwi_notification_verify() IS $$Trigger (BEFORE INSERT) for a table with signature, body, verified, applied, error: verifies the signature and applies a verified notification to qiwi_bills. Argument 'mark' (default) stores a bad one marked, 'reject' fails the INSERT (QKSIG). Not PUBLIC$$;
COMMENT ON FUNCTION qiwi_payment_form_url(text, numeric, text, text, text, text, text, jsonb, timestamptz, text, text) IS $$URL of QIWI's form that creates the bill bill_id for amount when the buyer opens it. public_key: NULL means the merchant's (qiwi.public_key, or its server's bill_public_key); phone, email, account, comment, custom_fields as in qiwi_create_bill; lifetime: expiry (cut to the minute); success_url: where the buyer returns. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
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

