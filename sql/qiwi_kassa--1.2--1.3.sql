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
