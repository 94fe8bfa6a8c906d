-- qiwi_kassa 1.2 -> 1.3: the rest of the Payin API (see debian/changelog).
-- Every object added here is also in sql/ext, so an upgraded install
-- equals a fresh 1.3 (test/t/008_upgrade_and_cluster.pl).
\echo Use "ALTER EXTENSION qiwi_kassa UPDATE TO '1.3'" to load this file. \quit

-- tokens and card checks: qiwi_payin_delete_token, qiwi_payin_tokens.deleted_at,
-- qiwi_payin_card_checks, and events of tokens and card checks
ALTER TABLE qiwi_payin_events DROP CONSTRAINT qiwi_payin_events_object_check,
	ADD CONSTRAINT qiwi_payin_events_object_check
	CHECK (object IN ('invoice', 'payment', 'capture', 'refund', 'token', 'card_check'));
ALTER TABLE qiwi_payin_tokens ADD COLUMN deleted_at timestamptz;

CREATE TABLE qiwi_payin_card_checks (
	merchant text NOT NULL,
	request_uid text NOT NULL,
	status text NOT NULL,
	is_valid_card boolean,
	three_ds_status text,
	check_operation_date timestamptz NOT NULL,
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
REVOKE ALL ON FUNCTION qiwi_payin_delete_token(text, text, text) FROM PUBLIC;

COMMENT ON TABLE qiwi_payin_events IS $$Every status change of a Payin invoice, payment or payment token and every capture, refund and card check recorded; each is also announced with NOTIFY qiwi_payin_status$$;
COMMENT ON COLUMN qiwi_payin_events.object IS $$invoice, payment, capture, refund, token or card_check$$;
COMMENT ON COLUMN qiwi_payin_events.object_id IS $$Its id (bill_id, payment_id, capture_id, refund_id, the token, or a card check's request_uid)$$;
COMMENT ON TABLE qiwi_payin_tokens IS $$Payment tokens QIWI bound for buyers' accounts (invoices with account and bind_token), recorded from verified TOKEN and CHECK_CARD notifications; a later invoice for the same account can be paid with one not deleted, without the card. Rows stay when deleted (qiwi_payin_delete_token)$$;
COMMENT ON COLUMN qiwi_payin_tokens.deleted_at IS $$When qiwi_payin_delete_token deleted it (or found QIWI no longer knew it); NULL while it can pay$$;
COMMENT ON TABLE qiwi_payin_card_checks IS $$Card checks QIWI made on its form (invoices flagged CHECK_CARD), recorded once from verified CHECK_CARD notifications; no money moves$$;
COMMENT ON COLUMN qiwi_payin_card_checks.merchant IS $$Whose check$$;
COMMENT ON COLUMN qiwi_payin_card_checks.request_uid IS $$QIWI's id of the check (requestUid)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.status IS $$The check's status as QIWI wrote it (the documents list no values; the sandbox sends SUCCESS or DECLINE)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.is_valid_card IS $$Whether the card can pay (isValidCard)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.three_ds_status IS $$The 3-D Secure outcome (threeDsStatus)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.check_operation_date IS $$When QIWI checked the card (checkOperationDate)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.card_info IS $$What QIWI says of the card: payment system, issuing bank and country (cardInfo)$$;
COMMENT ON COLUMN qiwi_payin_card_checks.created_token IS $$The payment token the check bound (createdToken), also recorded in qiwi_payin_tokens; NULL if none$$;
COMMENT ON COLUMN qiwi_payin_card_checks.first_seen_at IS $$When this database recorded it$$;
COMMENT ON FUNCTION qiwi_payin_delete_token(text, text, text) IS $$Delete the payment token token of the buyer's account at QIWI (DELETE tokens) and record it deleted in qiwi_payin_tokens: true when QIWI deleted it now, false when QIWI no longer knew it for that account (deleted before, or never bound); retry-safe. account: at most 256 characters; token: at most 200. Changes what a buyer can pay with: not PUBLIC. merchant: whose$$;
COMMENT ON FUNCTION qiwi_payin_notification_verify() IS $$Trigger (BEFORE INSERT) for a table with signature, body, site_id, merchant, verified, applied, error: verifies the signature with the payin_notification_key of the merchant whose payin_site_id is site_id (or a TOKEN's merchantSiteUid) and applies a verified PAYMENT, CAPTURE, REFUND, TOKEN or CHECK_CARD to the qiwi_payin_* tables, forward only. Argument 'mark' (default) stores a bad one marked, 'reject' fails the INSERT (QKSIG). Not PUBLIC$$;

-- card checks from SQL: qiwi_payin_create_invoice(..., check_card, merchant)
-- asks for a card check (CHECK_CARD, no amount), recorded with capture
-- 'check' for 0.00; qiwi_payin_card_check asks QIWI for a check; a check
-- may be recorded before the buyer acts (INIT: no checkOperationDate yet)
ALTER TABLE qiwi_payin_invoices DROP CONSTRAINT qiwi_payin_invoices_capture_check,
	DROP CONSTRAINT qiwi_payin_invoices_amount_check,
	ADD CONSTRAINT qiwi_payin_invoices_capture_check CHECK (capture IN ('auto', 'manual', 'check')),
	ADD CONSTRAINT qiwi_payin_invoices_amount_check CHECK (amount OPERATOR(pg_catalog.=) pg_catalog.round(amount, 2)
		AND CASE WHEN capture OPERATOR(pg_catalog.=) 'check' THEN amount OPERATOR(pg_catalog.=) 0::numeric
		    ELSE amount OPERATOR(pg_catalog.>) 0::numeric END);
ALTER TABLE qiwi_payin_card_checks ALTER COLUMN check_operation_date DROP NOT NULL;

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
REVOKE ALL ON FUNCTION qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text) FROM PUBLIC;

-- The new signature gets exactly the old one's privileges (as in
-- qiwi_kassa--1.1--1.2.sql): what a shop granted, to its roles, back to
-- PUBLIC, with grant option; NULL (the default) is PUBLIC's EXECUTE
DO $$
DECLARE
	old_oid oid := pg_catalog.to_regprocedure('@extschema@.qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, text)');
	old_acl aclitem[];
	entry record;
BEGIN
	SELECT p.proacl INTO old_acl FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) old_oid;
	IF old_acl IS NULL THEN
		EXECUTE 'GRANT EXECUTE ON FUNCTION @extschema@.qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text) TO PUBLIC';
		RETURN;
	END IF;
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
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION @extschema@.qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text) TO %s%s',
		                          entry.grantee, CASE WHEN entry.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
END
$$;

DROP FUNCTION qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, text);

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

COMMENT ON FUNCTION qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text) IS $$Create a Payin invoice now and record it (retry-safe: the same bill_id and amount give the same invoice). bill_id: the shop's id; amount: > 0, two decimals at most, sent with two (NULL for a card check); currency: default RUB; expires_at: default now() + 45 days; capture: 'auto' (one step) or 'manual' (hold, then qiwi_payin_capture); comment: at most 256 characters; phone, email, account: the buyer; custom_fields: cf1..cf5, themeCode, contractId, invoice_callback_url; payment_methods: CARD, SBP, QIWI_WALLET; callback_url: where QIWI notifies about its payments; bind_token: ask for a payment token for account; check_card: the buyer only has the card checked (flag CHECK_CARD; no amount, capture 'auto', RUB, card only; recorded with capture 'check'; its request_uid for qiwi_payin_card_check is bill_id). Moves money: not PUBLIC. merchant: whose (a server of the wrapper qiwi with payin_site_id and a payin_api_key)$$;
COMMENT ON COLUMN qiwi_payin_invoices.capture IS $$auto (one step, SALE), manual (hold, then qiwi_payin_capture) or check (CHECK_CARD: the card is only checked, amount 0.00, no money moves)$$;
COMMENT ON TABLE qiwi_payin_card_checks IS $$Card checks QIWI made on its form (invoices flagged CHECK_CARD), from verified CHECK_CARD notifications and qiwi_payin_card_check, forward only (a final status is never replaced); no money moves$$;
COMMENT ON COLUMN qiwi_payin_card_checks.status IS $$The check's status as QIWI wrote it: INIT (the form waits for the buyer) and WAITING_3DS move on; SUCCESS, ERROR (or any other) are final$$;
COMMENT ON COLUMN qiwi_payin_card_checks.check_operation_date IS $$When QIWI checked the card (checkOperationDate); NULL while the check waits (INIT)$$;
COMMENT ON TYPE qiwi_payin_card_check IS $$A card check as QIWI answered (qiwi_payin_card_check)$$;
COMMENT ON COLUMN qiwi_payin_card_check.request_uid IS $$QIWI's id of the check: the bill_id of its CHECK_CARD invoice$$;
COMMENT ON COLUMN qiwi_payin_card_check.status IS $$INIT, WAITING_3DS, SUCCESS or ERROR, as QIWI wrote it$$;
COMMENT ON COLUMN qiwi_payin_card_check.is_valid_card IS $$Whether the card can pay (isValidCard); NULL until checked$$;
COMMENT ON COLUMN qiwi_payin_card_check.three_ds_status IS $$The 3-D Secure outcome (threeDsStatus)$$;
COMMENT ON COLUMN qiwi_payin_card_check.check_operation_date IS $$When QIWI checked the card; NULL until checked$$;
COMMENT ON COLUMN qiwi_payin_card_check.card_info IS $$What QIWI says of the card (cardInfo)$$;
COMMENT ON COLUMN qiwi_payin_card_check.created_token IS $$The payment token the check bound (createdToken), also recorded in qiwi_payin_tokens$$;
COMMENT ON FUNCTION qiwi_payin_card_check(text, text) IS $$Ask QIWI for the card check request_uid (GET validation/card/requests; for a CHECK_CARD invoice it is its bill_id) and record it, forward only, in qiwi_payin_card_checks (and the token it bound in qiwi_payin_tokens). Shows the buyer's card: not PUBLIC. merchant: whose$$;

-- the reconciler's tools cover Payin: qiwi_reconcile_now() makes every
-- kind's followed items due (it moves to the core; its privileges stay),
-- and qiwi_reconciler_health gains the Payin invoices' columns at its end
-- (in sql/ext it moves to payin.sql, after the tables it reads).
COMMENT ON FUNCTION qiwi_reconcile_now() IS $$Make every item the reconciler follows due now (WAITING and CREATING bills; CREATED Payin invoices and PAID ones with money held), leaving rows another transaction holds, and wake the reconciler when this transaction commits; returns how many of all kinds. Not PUBLIC$$;
COMMENT ON VIEW qiwi_reconciler_status IS $$Is the reconciler running (pid, database), its rounds, the last round's start, duration and items (bills, Payin invoices) checked, changed and failed, a 401 stop, and its last error$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_checked IS $$Items the last round asked QIWI about: bills and Payin invoices$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_changed IS $$Items (bills, Payin invoices) whose status the last round changed$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_failed IS $$Checks (of bills and Payin invoices) that failed in the last round$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_error IS $$The reconciler's last error (not an item's: see qiwi_bills.last_error, qiwi_payin_invoices.last_error)$$;

-- One row: is the reconciler keeping up, with bills and with Payin
-- invoices?  Here, after every API's tables, since it reads them all.
CREATE OR REPLACE VIEW qiwi_reconciler_health WITH (security_invoker = true) AS
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
COMMENT ON VIEW qiwi_reconciler_health IS $$One row: qiwi_reconciler_status plus how far behind the reconciler is and which items' checks fail, for bills (open_bills ... bill_error) and for Payin invoices (payin_*). Reads qiwi_bills, qiwi_payin_invoices, qiwi_payin_holds and qiwi_reconciler_status with the caller's rights$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_checked IS $$Items the last round asked QIWI about: bills and Payin invoices$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_changed IS $$Items (bills, Payin invoices) whose status the last round changed$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_failed IS $$Checks (of bills and Payin invoices) that failed in the last round$$;
COMMENT ON COLUMN qiwi_reconciler_health.stopped_by_auth IS $$QIWI answered 401 for a merchant's key: that merchant's bills and Payin invoices wait for its options to change (last_error names it); other merchants go on$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_open_invoices IS $$Payin invoices the reconciler follows: CREATED, or PAID with money held (in qiwi_payin_holds)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_due_invoices IS $$Followed Payin invoices whose next_check_at has passed$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_lag IS $$now() - the oldest next_check_at among the due Payin invoices; 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_failing_invoices IS $$Followed Payin invoices whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_max_failures IS $$Most failed checks in a row of one followed Payin invoice$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_invoice_error IS $$last_error of the followed Payin invoice with the most failures in a row$$;
