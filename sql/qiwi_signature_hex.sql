-- A hex signature is compared eight digits at a time: every ASCII byte in
-- place of each digit of a valid signature verifies exactly when it is that
-- digit in either case (bytes 0x10-0x19 differ from '0'-'9' only in 0x20).
\set n '{"bill":{"siteId":"s","billId":"b","amount":{"value":"3.00","currency":"RUB"},"status":{"value":"PAID"}}}'
CREATE TEMP TABLE hex_tries AS
SELECT p, c, substr(s, p, 1) AS digit, overlay(s PLACING chr(c) FROM p FOR 1) AS given
  FROM (SELECT qiwi_sign_notification(:'n', 'hex-key') AS s) sig,
       generate_series(1, 64) p, generate_series(1, 127) c;
SELECT count(*) AS tries,
       count(*) FILTER (WHERE qiwi_verify_signature(given, :'n', 'hex-key')) AS verified,
       count(*) FILTER (WHERE chr(c) IN (digit, upper(digit))) AS digit_in_either_case,
       count(*) FILTER (WHERE qiwi_verify_signature(given, :'n', 'hex-key')
                              <> (chr(c) IN (digit, upper(digit)))) AS wrong
  FROM hex_tries;
-- the same signature under another key, and with a two-byte character
SELECT qiwi_verify_signature(given, :'n', 'another key') AS another_key,
       qiwi_verify_signature(overlay(given PLACING 'я' FROM 64 FOR 1), :'n', 'hex-key') AS two_bytes
  FROM hex_tries WHERE p = 1 AND chr(c) = digit;
