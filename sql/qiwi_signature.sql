-- Notification signatures: the official SDKs' vectors, and our own cases
-- checked against pgcrypto's HMAC of the signed string written out by hand.
CREATE EXTENSION pgcrypto;
\set key 'test-merchant-secret-for-signature-check'

-- B1 (all four SDKs): amount as number, string, and with decimals
SELECT qiwi_verify_signature('07e0ebb10916d97760c196034105d010607a6c6b7d72bfa1c3451448ac484a3b',
       '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}},"version":"1"}', :'key') AS b1_number,
       qiwi_verify_signature('07e0ebb10916d97760c196034105d010607a6c6b7d72bfa1c3451448ac484a3b',
       '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":"1","currency":"RUB"},"status":{"value":"PAID"}},"version":"1"}', :'key') AS b1_string,
       qiwi_verify_signature('07e0ebb10916d97760c196034105d010607a6c6b7d72bfa1c3451448ac484a3b',
       '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":"1.00","currency":"RUB"},"status":{"value":"PAID"}},"version":"1"}', :'key') AS b1_string_decimals,
       qiwi_verify_signature(upper('07e0ebb10916d97760c196034105d010607a6c6b7d72bfa1c3451448ac484a3b'),
       '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}', :'key') AS b1_upper_hex;
-- B-neg: the signature of the unnormalised string must not match
SELECT qiwi_verify_signature('1536ed36e8e5fb82dc5ee3ca360afc307ddb151c65fe6a63becf201e5cc97b12',
       '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}', :'key') AS b_neg;
-- signing gives B1 back, and B3 for ten roubles
SELECT qiwi_sign_notification('{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}', :'key') AS b1,
       qiwi_sign_notification('{"bill":{"siteId":"siteId","billId":"billId","amount":{"value":10,"currency":"RUB"},"status":{"value":"PAID"}}}', :'key') AS b3;

-- Our cases: the notification, and the string QIWI signs for it
CREATE TABLE signature_cases (name text, secret text, notification jsonb, signed_string text);
INSERT INTO signature_cases VALUES
('number 10.5',        :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":10.5,"currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|10.50|b1|23044|PAID'),
('string "10.5"',      :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"10.5","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|10.50|b1|23044|PAID'),
('number 100',         :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":100,"currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|100.00|b1|23044|PAID'),
('string "100"',       :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"100","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|100.00|b1|23044|PAID'),
('number 100.00',      :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":100.00,"currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|100.00|b1|23044|PAID'),
('number 1.5e2',       :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":1.5e2,"currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|150.00|b1|23044|PAID'),
('one kopeck',         :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"0.01","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|0.01|b1|23044|PAID'),
('the maximum',        :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":999999.99,"currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|999999.99|b1|23044|PAID'),
('non-ASCII billId',   :'key', '{"bill":{"siteId":"23044","billId":"заказ-№1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|5.00|заказ-№1|23044|PAID'),
('status REJECTED',    :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"REJECTED"}}}', 'RUB|5.00|b1|23044|REJECTED'),
('status EXPIRED',     :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"EXPIRED"}}}', 'RUB|5.00|b1|23044|EXPIRED'),
('status WAITING',     :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"WAITING"}}}', 'RUB|5.00|b1|23044|WAITING'),
('siteId as a number', :'key', '{"bill":{"siteId":23044,"billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|5.00|b1|23044|PAID'),
('currency KZT',       :'key', '{"bill":{"siteId":"9hh4jb-00","billId":"b1","amount":{"value":"5.00","currency":"KZT"},"status":{"value":"PAID"}}}', 'KZT|5.00|b1|9hh4jb-00|PAID'),
('non-ASCII secret',   'секрет-ключ', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|5.00|b1|23044|PAID'),
('unknown fields',     :'key', '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"PAID","changedDateTime":"2021-01-18T15:25:18+03"},"customer":{},"customFields":{"x":"y"},"recipientPhoneNumber":"7900"},"version":"1"}', 'RUB|5.00|b1|23044|PAID'),
('seed 001 sample',    :'key', '{ "bill": { "siteId":"23044", "billId":"1519892138404fhr7i272a2", "amount":{ "value":"100", "currency":"RUB" }, "status":{ "value":"PAID", "datetime":"2018-03-01T11:16:12" }, "customer":{}, "customFields":{}, "creationDateTime":"2018-03-01T11:15:39", "expirationDateTime":"2018-04-01T11:15:39+03:00" }, "version":"1" }', 'RUB|100.00|1519892138404fhr7i272a2|23044|PAID');

SELECT name,
       qiwi_sign_notification(notification, secret)
         = encode(hmac(convert_to(signed_string, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex') AS signs_as_expected,
       qiwi_verify_signature(encode(hmac(convert_to(signed_string, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex'),
                             notification, secret) AS verifies
  FROM signature_cases ORDER BY name;

-- Broken or tampered notifications are false, never an error
\set sig '07e0ebb10916d97760c196034105d010607a6c6b7d72bfa1c3451448ac484a3b'
SELECT name, qiwi_verify_signature(:'sig', notification::jsonb, :'key') AS verified
  FROM (VALUES
    ('the original',      '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('tampered amount',   '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":100,"currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('tampered bill',     '{"bill":{"siteId":"test","billId":"test_bill2","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('tampered status',   '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"REJECTED"}}}'),
    ('tampered currency', '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"KZT"},"status":{"value":"PAID"}}}'),
    ('no amount',         '{"bill":{"siteId":"test","billId":"test_bill","status":{"value":"PAID"}}}'),
    ('no currency',       '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1},"status":{"value":"PAID"}}}'),
    ('no billId',         '{"bill":{"siteId":"test","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('no siteId',         '{"bill":{"billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('no status',         '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"}}}'),
    ('no status value',   '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{}}}'),
    ('status not object', '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":"PAID"}}'),
    ('amount "abc"',      '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":"abc","currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('amount "1e999999"', '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":"1e999999","currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('amount 1.005',      '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1.005,"currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('amount null',       '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":null,"currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('billId a number',   '{"bill":{"siteId":"test","billId":7,"amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}'),
    ('no bill',           '{"version":"1"}'),
    ('bill not object',   '{"bill":"test_bill"}'),
    ('an array',          '[1, 2]')
  ) AS t(name, notification) ORDER BY name;
SELECT qiwi_verify_signature(left(:'sig', 63), '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}', :'key') AS short_signature,
       qiwi_verify_signature(:'sig' || '0', '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}', :'key') AS long_signature,
       qiwi_verify_signature('', '{"bill":{}}', :'key') AS empty_signature,
       qiwi_verify_signature(:'sig', '{"bill":{"siteId":"test","billId":"test_bill","amount":{"value":1,"currency":"RUB"},"status":{"value":"PAID"}}}', 'another key') AS wrong_key;
-- NULL in, NULL out
SELECT qiwi_verify_signature(NULL, '{}', :'key') IS NULL AS null_signature,
       qiwi_verify_signature(:'sig', NULL, :'key') IS NULL AS null_notification;
-- signing needs every signed field
SELECT try($$SELECT qiwi_sign_notification('{"bill":{"billId":"b"}}', 'k')$$);
SELECT try($$SELECT qiwi_sign_notification(NULL, 'k')$$);
SELECT try($$SELECT qiwi_sign_notification('{"bill":{}}', '')$$);

-- A NULL secret means qiwi.secret_key
SELECT qiwi_verify_signature(qiwi_sign_notification(n), n) AS with_server_key,
       qiwi_verify_signature(qiwi_sign_notification(n), n, :'key') AS with_another_key
  FROM (SELECT '{"bill":{"siteId":"s","billId":"b","amount":{"value":"3.00","currency":"RUB"},"status":{"value":"PAID"}}}'::jsonb AS n) t;
DROP TABLE signature_cases;
