-- qiwi_kassa 1.1 -> 1.2: merchants.  A merchant is a server of the new
-- wrapper qiwi; bills, refunds and their events record whose they are
-- ("default" for those made before, with the qiwi.* settings), and bill ids
-- are unique per merchant.  Every function that talks to QIWI takes
-- merchant text DEFAULT NULL; the privileges a shop granted on the old
-- signatures are granted on the new ones.
\echo Use "ALTER EXTENSION qiwi_kassa UPDATE TO '1.2'" to load this file. \quit

CREATE FUNCTION qiwi_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'qiwi_fdw_validator'
LANGUAGE C STRICT;


CREATE FOREIGN DATA WRAPPER qiwi VALIDATOR qiwi_fdw_validator;

COMMENT ON FUNCTION qiwi_fdw_validator(text[], oid) IS $$Validator of the wrapper qiwi: refuses unknown options, keys anywhere but on a user mapping, and invalid values (without showing them)$$;
COMMENT ON FOREIGN DATA WRAPPER qiwi IS $$QIWI merchants: CREATE SERVER name FOREIGN DATA WRAPPER qiwi OPTIONS (site_id, api_url, public_key); CREATE USER MAPPING FOR PUBLIC SERVER name OPTIONS (secret_key). A role uses a merchant with USAGE on its server$$;
COMMENT ON COLUMN qiwi_reconciler_status.stopped_by_auth IS $$QIWI answered 401 for a merchant's key: that merchant's items wait for a configuration reload or a change of its user mapping (last_error names it); other merchants go on$$;

-- ---------- whose bill ----------
ALTER TABLE qiwi_bills ADD COLUMN merchant text NOT NULL DEFAULT 'default';
ALTER TABLE qiwi_bills DROP CONSTRAINT qiwi_bills_pkey,
	ADD CONSTRAINT qiwi_bills_pkey PRIMARY KEY (merchant, bill_id);
ALTER TABLE qiwi_refunds ADD COLUMN merchant text NOT NULL DEFAULT 'default';
ALTER TABLE qiwi_refunds DROP CONSTRAINT qiwi_refunds_pkey,
	ADD CONSTRAINT qiwi_refunds_pkey PRIMARY KEY (merchant, bill_id, refund_id);
ALTER TABLE qiwi_bill_events ADD COLUMN merchant text NOT NULL DEFAULT 'default';

COMMENT ON COLUMN qiwi_bills.merchant IS $$Whose bill: "default" (the qiwi.* settings) or the name of a server of the wrapper qiwi; bill ids are unique per merchant$$;
COMMENT ON COLUMN qiwi_refunds.merchant IS $$Whose refund: the merchant of its bill$$;
COMMENT ON COLUMN qiwi_bill_events.merchant IS $$The merchant of the bill$$;

-- ---------- functions with a merchant ----------
-- The new signatures first, so that the old ones' privileges can be copied.
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

REVOKE ALL ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text, text) FROM PUBLIC;
COMMENT ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text, text) IS $$Create a bill at QIWI now and record it in qiwi_bills (retry-safe: the same bill_id and amount give the same bill). bill_id: the shop's id; amount: > 0, two decimals at most; currency: default RUB; expires_at: default now() + 45 days; comment: shown to the buyer; phone, email, account: the buyer; custom_fields: JSON object of strings; success_url: appended to pay_url. Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
CREATE FUNCTION qiwi_bill_status(bill_id text, merchant text DEFAULT NULL)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_bill_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION qiwi_bill_status(text, text) FROM PUBLIC;
COMMENT ON FUNCTION qiwi_bill_status(text, text) IS $$Ask QIWI for the bill bill_id, record the answer in qiwi_bills (forward only) and return what QIWI said. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
CREATE FUNCTION qiwi_cancel_bill(bill_id text, merchant text DEFAULT NULL)
RETURNS qiwi_bill
AS 'MODULE_PATHNAME', 'qiwi_cancel_bill'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION qiwi_cancel_bill(text, text) FROM PUBLIC;
COMMENT ON FUNCTION qiwi_cancel_bill(text, text) IS $$Cancel the unpaid bill bill_id at QIWI (REJECTED); cancelling it again returns it. Not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
CREATE FUNCTION qiwi_refund(
	bill_id text,
	refund_id text,
	amount numeric,
	currency text DEFAULT 'RUB',
	merchant text DEFAULT NULL)
RETURNS qiwi_refund
AS 'MODULE_PATHNAME', 'qiwi_refund'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION qiwi_refund(text, text, numeric, text, text) FROM PUBLIC;
COMMENT ON FUNCTION qiwi_refund(text, text, numeric, text, text) IS $$Refund amount (in currency, default RUB) of the paid bill bill_id under the shop's refund_id (retry-safe); refused before sending when it exceeds what is left to refund. Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
CREATE FUNCTION qiwi_refund_status(bill_id text, refund_id text, merchant text DEFAULT NULL)
RETURNS qiwi_refund
AS 'MODULE_PATHNAME', 'qiwi_refund_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION qiwi_refund_status(text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION qiwi_refund_status(text, text, text) IS $$Ask QIWI for the refund refund_id of bill bill_id and record it in qiwi_refunds. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
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

REVOKE ALL ON FUNCTION qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb, text) FROM PUBLIC;
COMMENT ON FUNCTION qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb, text) IS $$Record a bill as CREATING now; the reconciler creates it at QIWI after this transaction commits, so a rollback leaves no bill at QIWI. Arguments as qiwi_create_bill: bill_id, amount, currency, expires_at, comment, phone, email, account, custom_fields. Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
CREATE FUNCTION qiwi_verify_signature(signature text, notification jsonb, secret text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'qiwi_verify_signature'
LANGUAGE C STABLE PARALLEL SAFE;


COMMENT ON FUNCTION qiwi_verify_signature(text, jsonb, text, text) IS $$Does signature (X-Api-Signature-SHA256) hold for the notification body under secret (NULL: qiwi.secret_key)? NULL if signature or notification is NULL; never an error. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
CREATE FUNCTION qiwi_sign_notification(notification jsonb, secret text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'qiwi_sign_notification'
LANGUAGE C STABLE PARALLEL SAFE;

REVOKE ALL ON FUNCTION qiwi_sign_notification(jsonb, text, text) FROM PUBLIC;
COMMENT ON FUNCTION qiwi_sign_notification(jsonb, text, text) IS $$The signature QIWI would send for notification under secret (NULL: qiwi.secret_key); for tests. Forges QIWI's word: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
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


COMMENT ON FUNCTION qiwi_payment_form_url(text, numeric, text, text, text, text, text, jsonb, timestamptz, text, text) IS $$URL of QIWI's form that creates the bill bill_id for amount when the buyer opens it. public_key: NULL means qiwi.public_key; phone, email, account, comment, custom_fields as in qiwi_create_bill; lifetime: expiry (cut to the minute); success_url: where the buyer returns. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;

-- The new signature gets exactly the old one's privileges: what a shop
-- granted (to its roles, back to PUBLIC, with grant option) and what it
-- revoked (PUBLIC's EXECUTE on a function that had it by default)
DO $$
DECLARE
	pair record;
	old_oid oid;
	old_acl aclitem[];
	entry record;
BEGIN
	FOR pair IN SELECT * FROM (VALUES
		('qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text)', 'qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text, text)'),
		('qiwi_bill_status(text)', 'qiwi_bill_status(text, text)'),
		('qiwi_cancel_bill(text)', 'qiwi_cancel_bill(text, text)'),
		('qiwi_refund(text, text, numeric, text)', 'qiwi_refund(text, text, numeric, text, text)'),
		('qiwi_refund_status(text, text)', 'qiwi_refund_status(text, text, text)'),
		('qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb)', 'qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb, text)'),
		('qiwi_verify_signature(text, jsonb, text)', 'qiwi_verify_signature(text, jsonb, text, text)'),
		('qiwi_sign_notification(jsonb, text)', 'qiwi_sign_notification(jsonb, text, text)'),
		('qiwi_payment_form_url(text, numeric, text, text, text, text, text, jsonb, timestamptz, text)', 'qiwi_payment_form_url(text, numeric, text, text, text, text, text, jsonb, timestamptz, text, text)')) v(old_sig, new_sig)
	LOOP
		old_oid := pg_catalog.to_regprocedure('@extschema@.' OPERATOR(pg_catalog.||) pair.old_sig);
		SELECT p.proacl INTO old_acl FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) old_oid;
		-- NULL is the default: PUBLIC and the owner may execute, as a new function
		CONTINUE WHEN old_acl IS NULL;
		EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION @extschema@.%s FROM PUBLIC', pair.new_sig);
		FOR entry IN
			SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0::oid THEN 'PUBLIC'
			            ELSE pg_catalog.quote_ident(r.rolname) END AS grantee,
			       a.is_grantable
			  FROM pg_catalog.pg_proc p
			  CROSS JOIN LATERAL pg_catalog.aclexplode(old_acl) a
			  LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
			 WHERE p.oid OPERATOR(pg_catalog.=) old_oid
			   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
			   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		LOOP
			EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION @extschema@.%s TO %s%s', pair.new_sig,
									  entry.grantee, CASE WHEN entry.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
		END LOOP;
	END LOOP;
END
$$;

DROP FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text);
DROP FUNCTION qiwi_bill_status(text);
DROP FUNCTION qiwi_cancel_bill(text);
DROP FUNCTION qiwi_refund(text, text, numeric, text);
DROP FUNCTION qiwi_refund_status(text, text);
DROP FUNCTION qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb);
DROP FUNCTION qiwi_verify_signature(text, jsonb, text);
DROP FUNCTION qiwi_sign_notification(jsonb, text);
DROP FUNCTION qiwi_payment_form_url(text, numeric, text, text, text, text, text, jsonb, timestamptz, text);

-- ---------- reports: by merchant ----------
CREATE OR REPLACE VIEW qiwi_money_per_day WITH (security_invoker = true) AS
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

COMMENT ON COLUMN qiwi_money_per_day.merchant IS $$The merchant: "default" (the qiwi.* settings) or a server of the wrapper qiwi$$;
CREATE OR REPLACE VIEW qiwi_open_bills WITH (security_invoker = true) AS
SELECT b.bill_id, b.merchant, b.amount, b.currency, b.status,
       coalesce(b.created_at, b.first_seen_at) AS created_at,
       now() - coalesce(b.created_at, b.first_seen_at) AS age,
       b.expires_at, b.expires_at - now() AS time_left,
       b.next_check_at, b.failures, b.last_error
  FROM qiwi_bills b
 WHERE b.status IN ('WAITING', 'CREATING');

COMMENT ON COLUMN qiwi_open_bills.merchant IS $$The merchant: "default" (the qiwi.* settings) or a server of the wrapper qiwi$$;
CREATE OR REPLACE VIEW qiwi_bills_changed_today WITH (security_invoker = true) AS
SELECT b.bill_id, b.merchant, b.amount, b.currency, b.status, b.status_changed_at,
       b.qiwi_status, b.qiwi_amount, b.qiwi_currency
  FROM qiwi_bills b
 WHERE b.status_changed_at >= current_date AND b.status_changed_at < current_date + 1;

COMMENT ON COLUMN qiwi_bills_changed_today.merchant IS $$The merchant: "default" (the qiwi.* settings) or a server of the wrapper qiwi$$;
CREATE OR REPLACE VIEW qiwi_refunds_per_bill WITH (security_invoker = true) AS
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

COMMENT ON COLUMN qiwi_refunds_per_bill.merchant IS $$The merchant: "default" (the qiwi.* settings) or a server of the wrapper qiwi$$;
