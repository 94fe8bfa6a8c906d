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
