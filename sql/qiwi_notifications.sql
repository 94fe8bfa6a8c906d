-- Stored notifications: the trigger verifies each one and applies it to
-- qiwi_bills, only ever moving a bill forward; it is idempotent.
SET TIME ZONE 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT status FROM qiwi_create_bill('ntf-1', 250, expires_at => now() + interval '1 day');

-- A notification as QIWI sends it (signed with the server's key)
CREATE FUNCTION notification(bill_id text, status text, amount text DEFAULT '250.00')
RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('bill', jsonb_build_object(
		'siteId', '270305', 'billId', bill_id,
		'amount', jsonb_build_object('value', amount, 'currency', 'RUB'),
		'status', jsonb_build_object('value', status, 'changedDateTime', '2026-11-22T10:00:00.000+03:00'),
		'customer', '{}'::jsonb, 'customFields', '{}'::jsonb,
		'creationDateTime', '2026-11-22T09:00:00.000+03:00',
		'expirationDateTime', '2026-12-22T09:00:00.000+03:00'), 'version', '1')
$$;
-- Store it as a web tier would: signature header and body
CREATE FUNCTION receive(signature text, body jsonb)
RETURNS TABLE (verified boolean, applied boolean, error text) LANGUAGE sql AS $$
	INSERT INTO qiwi_notifications (signature, body) VALUES (signature, body)
	RETURNING verified, applied, error
$$;

-- PAID for a WAITING bill: verified and applied in the same transaction
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-1', 'PAID')), notification('ntf-1', 'PAID'));
-- (changedDateTime is not signed: the time it was applied is recorded instead)
SELECT bill_id, status, status_changed_at > now() - interval '5 minutes' AS changed_when_applied FROM qiwi_bills WHERE bill_id = 'ntf-1';

-- QIWI repeats it (it retries for 24 hours, even after a 200): nothing changes
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-1', 'PAID')), notification('ntf-1', 'PAID'));
-- A late WAITING, or another final status, never moves a final bill
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-1', 'WAITING')), notification('ntf-1', 'WAITING'));
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-1', 'REJECTED')), notification('ntf-1', 'REJECTED'));
SELECT status FROM qiwi_bills WHERE bill_id = 'ntf-1';

-- Forged and tampered notifications are stored, marked, and change nothing
SELECT status FROM qiwi_create_bill('ntf-2', 10, expires_at => now() + interval '1 day');
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-2', 'PAID', '10.00'), 'not the key'),
                      notification('ntf-2', 'PAID', '10.00'));
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-2', 'PAID', '10.00')),
                      notification('ntf-2', 'PAID', '0.10'));
SELECT * FROM receive(NULL, notification('ntf-2', 'PAID', '10.00'));
SELECT * FROM receive('abc', NULL);
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-2', 'PAID', '10.00')),
                      notification('ntf-2', 'PAID', '10.00') #- '{bill,siteId}');
SELECT status FROM qiwi_bills WHERE bill_id = 'ntf-2';

-- A correctly signed notification of a bill this database never saw: recorded
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-elsewhere', 'PAID', '7.00')),
                      notification('ntf-elsewhere', 'PAID', '7.00'));
SELECT bill_id, amount, status FROM qiwi_bills WHERE bill_id = 'ntf-elsewhere';

-- Signed but impossible to apply (an unknown status): verified, not applied
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-2', 'HALF_PAID', '10.00')),
                      notification('ntf-2', 'HALF_PAID', '10.00'));

-- Out of order for a WAITING bill: a later REJECTED after an earlier PAID
SELECT status FROM qiwi_create_bill('ntf-3', 10, expires_at => now() + interval '1 day');
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-3', 'PAID', '10.00')), notification('ntf-3', 'PAID', '10.00'));
SELECT * FROM receive(qiwi_sign_notification(notification('ntf-3', 'EXPIRED', '10.00')), notification('ntf-3', 'EXPIRED', '10.00'));
SELECT status FROM qiwi_bills WHERE bill_id = 'ntf-3';

-- The seed's own sample body, signed by QIWI's rule, is accepted
SELECT r.* FROM (SELECT
 '{ "bill": { "siteId":"23044", "billId":"1519892138404fhr7i272a2", "amount":{ "value":"100", "currency":"RUB" }, "status":{ "value":"PAID", "datetime":"2018-03-01T11:16:12" }, "customer":{}, "customFields":{}, "creationDateTime":"2018-03-01T11:15:39", "expirationDateTime":"2018-04-01T11:15:39+03:00" }, "version":"1" }'::jsonb AS b) s,
 receive(qiwi_sign_notification(s.b), s.b) r;
SELECT bill_id, amount, status, status_changed_at FROM qiwi_bills WHERE bill_id = '1519892138404fhr7i272a2';

-- The stored log: every notification, with the decision and the reason
SELECT bill_id, status, verified, applied, error FROM qiwi_notifications ORDER BY id;

-- A table of the user's own, with the 'reject' mode: bad ones fail the INSERT
CREATE TABLE shop_inbox (id serial, signature text, body jsonb, verified boolean, applied boolean, error text);
CREATE TRIGGER verify BEFORE INSERT ON shop_inbox
	FOR EACH ROW EXECUTE FUNCTION qiwi_notification_verify('reject');
SELECT status FROM qiwi_create_bill('ntf-4', 10, expires_at => now() + interval '1 day');
SELECT try($$INSERT INTO shop_inbox (signature, body) VALUES ('00', notification('ntf-4', 'PAID', '10.00'))$$);
SELECT count(*) AS stored FROM shop_inbox;
INSERT INTO shop_inbox (signature, body)
	VALUES (qiwi_sign_notification(notification('ntf-4', 'PAID', '10.00')), notification('ntf-4', 'PAID', '10.00'))
	RETURNING verified, applied, error;
SELECT status FROM qiwi_bills WHERE bill_id = 'ntf-4';

-- Misuse of the trigger is an error
CREATE TABLE bad_inbox (id serial, signature text, body text, verified boolean, applied boolean, error text);
CREATE TRIGGER verify BEFORE INSERT ON bad_inbox FOR EACH ROW EXECUTE FUNCTION qiwi_notification_verify();
SELECT try($$INSERT INTO bad_inbox (signature, body) VALUES ('x', '{}')$$);
DROP TRIGGER verify ON shop_inbox;
CREATE TRIGGER verify_args BEFORE INSERT ON shop_inbox FOR EACH ROW EXECUTE FUNCTION qiwi_notification_verify('drop');
SELECT try($$INSERT INTO shop_inbox (signature, body) VALUES ('x', '{}')$$);
DROP TRIGGER verify_args ON shop_inbox;
CREATE TRIGGER verify_after AFTER INSERT ON shop_inbox FOR EACH ROW EXECUTE FUNCTION qiwi_notification_verify();
SELECT try($$INSERT INTO shop_inbox (signature, body) VALUES (qiwi_sign_notification(notification('ntf-4', 'PAID', '10.00')), notification('ntf-4', 'PAID', '10.00'))$$);
DROP TABLE shop_inbox, bad_inbox;
