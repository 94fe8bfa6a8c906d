-- Pull notifications: the signature vectors of qiwi-api.md §3, §8 and §9
-- (negatives included), the Basic alternative's vectors, the XML answer,
-- and the stored-notification table's trigger: genuine, forged, duplicated
-- and out of order, in both authentication modes.

-- ---------- qiwi_pull_verify_notification ----------

-- §8 (onrik/pyqiwi's tests), key qwe123
SELECT qiwi_pull_verify_notification('{"a": "foo", "b": "bar", "comment": "Заказ №101", "some": "param"}',
                                     '7nHZIf/w6DLq+CuvzV2BmhT71xA=', 'qwe123') AS pyqiwi_1;
SELECT qiwi_pull_verify_notification('{"foo": "bar", "commend": "Заказ №102"}',
                                     '4C8pyw0rweDE0gZDYWT3E1B92aQ=', 'qwe123') AS pyqiwi_2;
-- §9: a negative vector for the §8 parameters
SELECT qiwi_pull_verify_notification('{"a": "foo", "b": "bar", "comment": "Заказ №101", "some": "param"}',
                                     'W18ltrPJoSb2N7AEM5Iik02wE10=', 'qwe123') AS pyqiwi_negative;
-- §3: the documents' sample body, every parameter signed (command and error too)
SELECT qiwi_pull_verify_notification('{"command": "bill", "bill_id": "LocalTest17", "status": "paid", "error": "0",
                                       "amount": "0.01", "user": "tel:+78000005122", "prv_name": "Test",
                                       "ccy": "RUB", "comment": "Some Descriptor"}',
                                     'GsXcAe4AW4CLe7YS1StlxvNDe2Y=', 'notifypwd') AS doc_sample;
-- the same without command: not the string QIWI signed
SELECT qiwi_pull_verify_notification('{"bill_id": "LocalTest17", "status": "paid", "error": "0",
                                       "amount": "0.01", "user": "tel:+78000005122", "prv_name": "Test",
                                       "ccy": "RUB", "comment": "Some Descriptor"}',
                                     'GsXcAe4AW4CLe7YS1StlxvNDe2Y=', 'notifypwd') AS without_command;
-- names in byte order (aa before b, though jsonb keeps b first), an empty value kept
SELECT qiwi_pull_verify_notification('{"b": "1", "aa": "2", "Z": ""}', 'beC6o9AEn1rANroDxqj06P/uQDA=', 'qwe123') AS empty_kept;
SELECT qiwi_pull_verify_notification('{"b": "1", "aa": "2", "Z": ""}', 'PHm0D67+tF8n9CeDId9OqQ9qvcM=', 'qwe123') AS empty_dropped;
SELECT qiwi_pull_verify_notification('{"b": "1", "aa": "2"}', 'PHm0D67+tF8n9CeDId9OqQ9qvcM=', 'qwe123') AS byte_order;
-- another key, a hex or truncated signature, a non-string parameter: false
SELECT qiwi_pull_verify_notification('{"foo": "bar", "commend": "Заказ №102"}', '4C8pyw0rweDE0gZDYWT3E1B92aQ=', 'qwe124') AS other_key;
SELECT qiwi_pull_verify_notification('{"foo": "bar"}', 'e0b1c3f4d5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0', 'qwe123') AS hex;
SELECT qiwi_pull_verify_notification('{"foo": "bar", "commend": "Заказ №102"}', '4C8pyw0rweDE0gZDYWT3E1B92aQ', 'qwe123') AS truncated;
SELECT qiwi_pull_verify_notification('{"amount": 7.00}', 'PHm0D67+tF8n9CeDId9OqQ9qvcM=', 'qwe123') AS number_param;
SELECT qiwi_pull_verify_notification(NULL, 'PHm0D67+tF8n9CeDId9OqQ9qvcM=', 'qwe123') AS null_params;
-- no password, and the default merchant has none
SELECT try($$SELECT qiwi_pull_verify_notification('{"foo": "bar"}', '4C8pyw0rweDE0gZDYWT3E1B92aQ=')$$);

-- ---------- qiwi_pull_verify_basic_auth ----------

CREATE SERVER pn_shop FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '9001', pull_api_id '9001');
CREATE USER MAPPING FOR PUBLIC SERVER pn_shop OPTIONS (pull_notification_password 'notify-shop-9001');

-- §9 (onrik/pyqiwi): 123:qwe123 accepted, 111:222 refused (passwords this
-- short are no merchant option: merchants' keys have at least 8 bytes)
SELECT qiwi_pull_verify_basic_auth('Basic MTIzOnF3ZTEyMw==', '123', 'qwe123') AS pyqiwi_good;
SELECT qiwi_pull_verify_basic_auth('basic MTIzOnF3ZTEyMw==', '123', 'qwe123') AS scheme_any_case;
SELECT qiwi_pull_verify_basic_auth('Basic MTExOjIyMg==', '123', 'qwe123') AS pyqiwi_bad;
-- the docs' example decodes to 2042:test and a newline: refused; without it, accepted
SELECT qiwi_pull_verify_basic_auth('Basic MjA0Mjp0ZXN0Cg==', '2042', 'test') AS doc_example;
SELECT qiwi_pull_verify_basic_auth('Basic MjA0Mjp0ZXN0', '2042', 'test') AS doc_without_newline;
SELECT qiwi_pull_verify_basic_auth(E'Basic MjA0Mjp0ZXN0\n', '2042', 'test') AS header_with_newline;
SELECT qiwi_pull_verify_basic_auth('Basic  MjA0Mjp0ZXN0', '2042', 'test') AS two_spaces;
SELECT qiwi_pull_verify_basic_auth('Bearer MjA0Mjp0ZXN0', '2042', 'test') AS bearer;
-- another project's credentials; the merchant's own
SELECT qiwi_pull_verify_basic_auth('Basic MTIzOnF3ZTEyMw==', merchant => 'pn_shop') AS other_project;
SELECT qiwi_pull_verify_basic_auth('Basic OTAwMTpub3RpZnktc2hvcC05MDAx', merchant => 'pn_shop') AS merchant_own;
SELECT try($$SELECT qiwi_pull_verify_basic_auth('Basic MTIzOnF3ZTEyMw==')$$);

-- ---------- the answer ----------

SELECT qiwi_pull_notification_answer() AS ok, qiwi_pull_notification_answer(151) AS bad_signature,
       qiwi_pull_notification_answer(300) AS temporary;
SELECT try($$SELECT qiwi_pull_notification_answer(42)$$);

-- ---------- stored notifications, verified and applied forward only ----------

-- genuine, signed: bill n-1 recorded paid
INSERT INTO qiwi_pull_notifications (prv_id, credential, body) VALUES
	('9001', 'qxkiijgt7o5JqQiAvS+IFfhnaDA=',
	 '{"bill_id": "n-1", "status": "paid", "error": "0", "amount": "7.00", "user": "tel:+79161234567",
	   "prv_name": "Shop", "ccy": "RUB", "comment": "Note 1", "command": "bill"}');
-- the same again: verified, not applied twice
INSERT INTO qiwi_pull_notifications (prv_id, credential, body) VALUES
	('9001', 'qxkiijgt7o5JqQiAvS+IFfhnaDA=',
	 '{"bill_id": "n-1", "status": "paid", "error": "0", "amount": "7.00", "user": "tel:+79161234567",
	   "prv_name": "Shop", "ccy": "RUB", "comment": "Note 1", "command": "bill"}');
-- out of order (waiting after paid), with Basic authorization: verified, not applied
INSERT INTO qiwi_pull_notifications (prv_id, credential, body) VALUES
	('9001', 'Basic OTAwMTpub3RpZnktc2hvcC05MDAx',
	 '{"bill_id": "n-1", "status": "waiting", "error": "0", "amount": "7.00", "user": "tel:+79161234567",
	   "prv_name": "Shop", "ccy": "RUB", "comment": "Note 1", "command": "bill"}');
-- forged: a changed amount, wrong Basic credentials, an unknown project, no credential
INSERT INTO qiwi_pull_notifications (prv_id, credential, body) VALUES
	('9001', 'qxkiijgt7o5JqQiAvS+IFfhnaDA=',
	 '{"bill_id": "n-2", "status": "paid", "error": "0", "amount": "700.00", "user": "tel:+79161234567",
	   "prv_name": "Shop", "ccy": "RUB", "comment": "Note 1", "command": "bill"}'),
	('9001', 'Basic MTIzOnF3ZTEyMw==',
	 '{"bill_id": "n-3", "status": "paid", "error": "0", "amount": "7.00", "ccy": "RUB", "command": "bill"}'),
	('9999', 'Basic OTAwMTpub3RpZnktc2hvcC05MDAx',
	 '{"bill_id": "n-4", "status": "paid", "error": "0", "amount": "7.00", "ccy": "RUB", "command": "bill"}'),
	('9001', NULL, '{"bill_id": "n-5", "status": "paid", "amount": "7.00", "ccy": "RUB"}');
-- genuine with Basic authorization: a waiting bill, then its expiry
INSERT INTO qiwi_pull_notifications (prv_id, credential, body) VALUES
	('9001', 'Basic OTAwMTpub3RpZnktc2hvcC05MDAx',
	 '{"bill_id": "n-6", "status": "waiting", "error": "0", "amount": "1.50", "ccy": "RUB", "command": "bill"}'),
	('9001', 'Basic OTAwMTpub3RpZnktc2hvcC05MDAx',
	 '{"bill_id": "n-6", "status": "expired", "error": "0", "amount": "1.50", "ccy": "RUB", "command": "bill"}');
SELECT id, prv_id, merchant, verified, applied, error, body->>'bill_id' AS bill_id, body->>'status' AS status
  FROM qiwi_pull_notifications ORDER BY id;
-- 'reject' fails the INSERT of a forgery
CREATE TABLE pull_strict (LIKE qiwi_pull_notifications INCLUDING DEFAULTS);
CREATE TRIGGER strict BEFORE INSERT ON pull_strict FOR EACH ROW EXECUTE FUNCTION qiwi_pull_notification_verify('reject');
SELECT try($$INSERT INTO pull_strict (prv_id, credential, body) VALUES ('9001', 'Basic MTIzOnF3ZTEyMw==', '{"bill_id": "n-7", "status": "paid", "amount": "1.00", "ccy": "RUB"}')$$);
DROP TABLE pull_strict;
SELECT merchant, bill_id, amount, currency, status FROM qiwi_pull_bills WHERE merchant = 'pn_shop' ORDER BY bill_id;
SELECT object_id, old_status, new_status, source FROM qiwi_pull_events WHERE merchant = 'pn_shop' ORDER BY id;
-- the password never shows
SELECT count(*) AS password_shown FROM qiwi_pull_notifications WHERE error LIKE '%notify-shop%';
