-- qiwi_kassa 1.0 -> 1.1
\echo Use "ALTER EXTENSION qiwi_kassa UPDATE TO '1.1'" to load this file. \quit

-- A bill QIWI reports for another amount or currency than the shop's is
-- MISMATCH, never PAID; what QIWI said is kept beside the shop's amount.
ALTER TABLE qiwi_bills
	ADD COLUMN qiwi_amount numeric,
	ADD COLUMN qiwi_currency text,
	ADD COLUMN qiwi_status text,
	DROP CONSTRAINT qiwi_bills_status_check,
	ADD CONSTRAINT qiwi_bills_status_check CHECK (status IN ('WAITING', 'PAID', 'REJECTED', 'EXPIRED', 'CREATING', 'CREATE_FAILED', 'MISMATCH'));

-- The trigger applies QIWI's word to qiwi_bills as the owner: only roles the
-- owner grants it to may put it on a table of theirs.
REVOKE ALL ON FUNCTION qiwi_notification_verify() FROM PUBLIC;

-- Both read the clock (an expiry must lie ahead)
ALTER FUNCTION qiwi_payment_form_url(text, numeric, text, text, text, text, text, jsonb, timestamptz, text) VOLATILE;
ALTER FUNCTION qiwi_pay_url(text, text, text[], text, timestamptz) VOLATILE;
