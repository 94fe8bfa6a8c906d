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
('key of 63 bytes',    repeat('k', 63), '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|5.00|b1|23044|PAID'),
('key of 64 bytes',    repeat('k', 64), '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|5.00|b1|23044|PAID'),
('key of 65 bytes',    repeat('k', 65), '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|5.00|b1|23044|PAID'),
('key of 300 bytes',   repeat('к', 150), '{"bill":{"siteId":"23044","billId":"b1","amount":{"value":"5.00","currency":"RUB"},"status":{"value":"PAID"}}}', 'RUB|5.00|b1|23044|PAID'),
('seed 001 sample',    :'key', '{ "bill": { "siteId":"23044", "billId":"1519892138404fhr7i272a2", "amount":{ "value":"100", "currency":"RUB" }, "status":{ "value":"PAID", "datetime":"2018-03-01T11:16:12" }, "customer":{}, "customFields":{}, "creationDateTime":"2018-03-01T11:15:39", "expirationDateTime":"2018-04-01T11:15:39+03:00" }, "version":"1" }', 'RUB|100.00|1519892138404fhr7i272a2|23044|PAID');

SELECT name,
       qiwi_sign_notification(notification, secret)
         = encode(hmac(convert_to(signed_string, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex') AS signs_as_expected,
       qiwi_verify_signature(encode(hmac(convert_to(signed_string, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex'),
                             notification, secret) AS verifies
  FROM signature_cases ORDER BY name;

-- Amounts written every way.  A string with exactly two decimals is signed
-- as sent, whatever its value (applying the notification judges it); other
-- amounts that QIWI's range holds (above 0, at most 999999.99, two decimals
-- at most) are signed with exactly two decimals; the rest cannot be signed,
-- and no signature verifies them.
CREATE TABLE amount_cases (name text, value jsonb, signed_amount text);
INSERT INTO amount_cases VALUES
('string "1"',          '"1"',          '1.00'),
('string "0.5"',        '"0.5"',        '0.50'),
('string "0.05"',       '"0.05"',       '0.05'),
('string "10.50"',      '"10.50"',      '10.50'),
('string "999999"',     '"999999"',     '999999.00'),
('string "999999.99"',  '"999999.99"',  '999999.99'),
('string "1.000"',      '"1.000"',      '1.00'),
('string "1.500"',      '"1.500"',      '1.50'),
('number 0.5',          '0.5',          '0.50'),
('number 1.50',         '1.50',         '1.50'),
('number 999999',       '999999',       '999999.00'),
('number 1e2',          '1e2',          '100.00'),
('number 1.000',        '1.000',        '1.00'),
('number 0.010',        '0.010',        '0.01'),
('string "0"',          '"0"',          NULL),
('string "0.0"',        '"0.0"',        NULL),
('string "0.00"',       '"0.00"',       '0.00'),
('string "-0"',         '"-0"',         NULL),
('string "-1.00"',      '"-1.00"',      NULL),
('string "1000000"',    '"1000000"',    NULL),
('string "1000000.00"', '"1000000.00"', '1000000.00'),
('string of 35 digits ".00"', '"12345678901234567890123456789012345.00"', '12345678901234567890123456789012345.00'),
('string "999999.999"', '"999999.999"', NULL),
('string "1.005"',      '"1.005"',      NULL),
('string "01.00"',      '"01.00"',      NULL),
('string "10."',        '"10."',        NULL),
('string ".5"',         '".5"',         NULL),
('string "+1.00"',      '"+1.00"',      NULL),
('string " 1.00"',      '" 1.00"',      NULL),
('string "1,00"',       '"1,00"',       NULL),
('string "1e2"',        '"1e2"',        NULL),
('string ""',           '""',           NULL),
('string of 40 digits', to_jsonb(repeat('1', 40)), NULL),
('number 0',            '0',            NULL),
('number -0',           '-0',           NULL),
('number 0.00',         '0.00',         NULL),
('number -1',           '-1',           NULL),
('number 1000000',      '1000000',      NULL),
('number 999999.991',   '999999.991',   NULL),
('number 1e-2',         '1e-2',         '0.01'),
('number 1e-3',         '1e-3',         NULL),
('number 1e100',        '1e100',        NULL),
('number 1e-10',        '1e-10',        NULL),
('true',                'true',         NULL),
('an object',           '{"value":1}',  NULL);
SELECT name,
       CASE WHEN signed_amount IS NULL
            THEN try(format('SELECT qiwi_sign_notification(%L, %L)', n, :'key'))
            ELSE (qiwi_sign_notification(n, :'key')
                  = encode(hmac(convert_to('RUB|' || signed_amount || '|b1|23044|PAID', 'UTF8'), :'key', 'sha256'), 'hex'))::text
       END AS signs_as,
       qiwi_verify_signature(encode(hmac(convert_to('RUB|' || coalesce(signed_amount, value #>> '{}') || '|b1|23044|PAID', 'UTF8'),
                                         :'key', 'sha256'), 'hex'), n, :'key') AS verifies
  FROM (SELECT *, jsonb_build_object('bill', jsonb_build_object('siteId', '23044', 'billId', 'b1',
               'amount', jsonb_build_object('value', value, 'currency', 'RUB'), 'status', '{"value":"PAID"}'::jsonb)) AS n
          FROM amount_cases) c
 ORDER BY signed_amount IS NULL, name;
DROP TABLE amount_cases;

-- Several keys in one scan, more than are cached at once: each notification
-- verifies under its own key only
SELECT bool_and(qiwi_verify_signature(qiwi_sign_notification(n, 'key-' || i % 11), n, 'key-' || i % 11)) AS own_key,
       bool_or(qiwi_verify_signature(qiwi_sign_notification(n, 'key-' || i % 11), n, 'key-' || (i + 1) % 11)) AS next_key
  FROM generate_series(1, 200) i,
       LATERAL (SELECT jsonb_build_object('bill', jsonb_build_object('siteId', 's', 'billId', 'b' || i,
                'amount', jsonb_build_object('value', i, 'currency', 'RUB'), 'status', '{"value":"PAID"}'::jsonb)) AS n) t;

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
