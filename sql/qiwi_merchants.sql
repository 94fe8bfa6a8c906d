-- Merchants: servers of the wrapper qiwi, validated; calls name them; the
-- default merchant is the qiwi.* settings.  (test/t/009_merchants.pl runs
-- two merchants against two sandboxes.)

-- The validator: known options only, each in its place, valid values,
-- and no value in any message
SELECT try($$CREATE SERVER m_bad FOREIGN DATA WRAPPER qiwi OPTIONS (apiurl 'http://x')$$);
SELECT try($$CREATE SERVER m_bad FOREIGN DATA WRAPPER qiwi OPTIONS (bill_secret_key 'k-on-server')$$);
SELECT try($$CREATE SERVER m_bad FOREIGN DATA WRAPPER qiwi OPTIONS (bill_api_url 'ftp://x')$$);
SELECT try($$CREATE SERVER m_bad FOREIGN DATA WRAPPER qiwi OPTIONS (bill_api_url 'http://api.qiwi.com')$$);
SELECT try($$CREATE SERVER m_bad FOREIGN DATA WRAPPER qiwi OPTIONS (bill_site_id '1|2')$$);
SELECT try($$ALTER FOREIGN DATA WRAPPER qiwi OPTIONS (bill_api_url 'http://x')$$);
CREATE SERVER m_test FOREIGN DATA WRAPPER qiwi
	OPTIONS (bill_api_url 'http://127.0.0.1:1', bill_site_id '555', bill_public_key 'pk-555');
SELECT try($$CREATE USER MAPPING FOR PUBLIC SERVER m_test OPTIONS (bill_site_id '555')$$);
SELECT try($$CREATE USER MAPPING FOR PUBLIC SERVER m_test OPTIONS (bill_secret_key E'k\r\nX-Evil: 1')$$);
SELECT try($$CREATE USER MAPPING FOR PUBLIC SERVER m_test OPTIONS (bill_secret_key '')$$);
-- a key too short to be hidden in the logs, in any key option
SELECT try($$CREATE USER MAPPING FOR PUBLIC SERVER m_test OPTIONS (bill_secret_key 'k')$$);
SELECT try($$CREATE USER MAPPING FOR PUBLIC SERVER m_test OPTIONS (payin_api_key 'seven77')$$);
SELECT try($$CREATE USER MAPPING FOR PUBLIC SERVER m_test OPTIONS (payin_notification_key 'nk')$$);

-- An option under its name before 1.4 is refused: the error says the new
-- name and how to rename it, never the value
CREATE SERVER m_old FOREIGN DATA WRAPPER qiwi OPTIONS (site_id '555');
CREATE SERVER m_old FOREIGN DATA WRAPPER qiwi OPTIONS (bill_site_id '556', capture_hours '24');
CREATE SERVER m_old FOREIGN DATA WRAPPER qiwi OPTIONS (bill_site_id '556');
ALTER SERVER m_old OPTIONS (ADD api_url 'https://127.0.0.1:2');
ALTER SERVER m_old OPTIONS (ADD public_key 'pk-556');
CREATE USER MAPPING FOR PUBLIC SERVER m_old OPTIONS (secret_key 'old-name-key-556');
SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'm_old';
DROP SERVER m_old;

-- A merchant without a key, or unknown, is refused before anything is sent
SELECT sandbox_requests() AS requests_before \gset
SELECT try($$SELECT qiwi_bill_status('mb-1', merchant => 'm_test')$$);
SELECT try($$SELECT qiwi_bill_status('mb-1', merchant => 'nosuch')$$);
-- a mapping for one role is not used: that role could read its key
CREATE USER MAPPING FOR CURRENT_USER SERVER m_test OPTIONS (bill_secret_key 'only-mine');
SELECT try($$SELECT qiwi_bill_status('mb-1', merchant => 'm_test')$$);
SELECT sandbox_requests() - :requests_before AS requests_sent;

-- A merchant's public key makes its payment-form links
SELECT qiwi_payment_form_url('mb-1', 1, merchant => 'm_test') LIKE '%publicKey=pk-555%' AS form_uses_merchant_key;

-- The merchant of the sandbox under another name: its key, its bills
DO $$ BEGIN
	EXECUTE format('CREATE SERVER m_sandbox FOREIGN DATA WRAPPER qiwi OPTIONS (bill_api_url %L, bill_site_id %L)',
	               current_setting('qiwi_test.sandbox_url'), '270305');
	EXECUTE format('CREATE USER MAPPING FOR PUBLIC SERVER m_sandbox OPTIONS (bill_secret_key %L)',
	               current_setting('qiwi.secret_key'));
END $$;
SELECT bill_id, amount, status FROM qiwi_create_bill('mb-2', 12.5, expires_at => now() + interval '1 day', merchant => 'm_sandbox');
SELECT merchant, bill_id, amount, status FROM qiwi_bills WHERE bill_id = 'mb-2';
SELECT merchant, bill_id, new_status, source FROM qiwi_bill_events WHERE bill_id = 'mb-2';
-- the same id under the default merchant is another bill (the sandbox has one QIWI account, so it answers with the same one)
SELECT bill_id, status FROM qiwi_bill_status('mb-2');
SELECT merchant, bill_id FROM qiwi_bills WHERE bill_id = 'mb-2' ORDER BY merchant;
SELECT sandbox('POST', '/sandbox/bills/mb-2/pay') IS NOT NULL AS paid_at_qiwi;
SELECT bill_id, status FROM qiwi_bill_status('mb-2', merchant => 'm_sandbox');
SELECT bill_id, refund_id, status FROM qiwi_refund('mb-2', 'mb-2-r', 1, merchant => 'm_sandbox');
SELECT merchant, bill_id, refund_id, amount FROM qiwi_refunds WHERE bill_id = 'mb-2';
SELECT merchant, status FROM qiwi_bills WHERE bill_id = 'mb-2' ORDER BY merchant;
SELECT try($$SELECT qiwi_refund('mb-2', 'mb-2-r', 1, merchant => 'm_test')$$);

-- A wrong key: QIWI's refusal names the merchant and never shows the key
ALTER USER MAPPING FOR PUBLIC SERVER m_sandbox OPTIONS (SET bill_secret_key 'not-the-key');
SELECT try($$SELECT qiwi_bill_status('mb-2', merchant => 'm_sandbox')$$);

-- Signatures use the merchant's key when no secret is given
SELECT qiwi_sign_notification(n, merchant => 'm_sandbox') = qiwi_sign_notification(n, 'not-the-key') AS signs_with_merchant_key,
       qiwi_sign_notification(n, merchant => 'm_sandbox') <> qiwi_sign_notification(n) AS not_with_default_key,
       qiwi_verify_signature(qiwi_sign_notification(n, 'not-the-key'), n, merchant => 'm_sandbox') AS verifies
  FROM (SELECT '{"bill": {"siteId": "270305", "billId": "mb-s", "amount": {"value": "1.00", "currency": "RUB"}, "status": {"value": "PAID"}}}'::jsonb AS n) s;
SELECT try($$SELECT qiwi_sign_notification('{}', merchant => 'm_test')$$);

-- "default" is the settings' merchant, whatever server takes its name
CREATE SERVER "default" FOREIGN DATA WRAPPER qiwi OPTIONS (bill_api_url 'http://127.0.0.1:1');
SELECT bill_id, status FROM qiwi_bill_status('mb-2', merchant => 'default');

DROP SERVER "default";
DROP SERVER m_test CASCADE;
DROP SERVER m_sandbox CASCADE;
