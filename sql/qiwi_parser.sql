-- Parsing QIWI's answers in every documented shape (from shared/fixtures,
-- copied here): each body is served verbatim by the sandbox and read back
-- through the SQL functions.
SET TIME ZONE 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT sandbox('POST', '/sandbox/reset');
-- each canned answer is served once: no retries here (qiwi_retries tests them)
SET qiwi.max_retries = 0;

-- Serve body with status once, as the next API answer
CREATE FUNCTION serve(status int, body text) RETURNS void LANGUAGE sql AS $$
	SELECT sandbox('POST', '/sandbox/faults', jsonb_build_object('status', status, 'body', body)::text)
$$;

-- bill, doc sample: amount as number, creationDateTime without offset (seed 001, create-bill response example)
SELECT serve(200, $body${"siteId":"23044","billId":"893794793973","amount":{"value":100,"currency":"RUB"},"status":{"value":"WAITING","changedDateTime":"2018-03-05T11:27:41+03:00"},"comment":"Text comment","creationDateTime":"2018-03-05T11:27:41","expirationDateTime":"2018-04-13T14:30:00+03:00","payUrl":"https://oplata.qiwi.com/form/?invoice_uid=d875277b-6f0f-445d-8a83-f62c7c07be77"}$body$);
SELECT bill_id, site_id, amount, currency, status, status_changed_at, created_at, expires_at,
       comment, customer, custom_fields FROM qiwi_bill_status('893794793973');
-- bill, real response: amount as a 2-decimal string, millisecond timestamps (QIWI-API/bill-payments-node-js-sdk README, createBill result)
SELECT serve(200, $body${"siteId":"270305","billId":"cc961e8d-d4d6-4f02-b737-2297e51fb48e","amount":{"currency":"RUB","value":"200.34"},"status":{"value":"WAITING","changedDateTime":"2018-07-12T10:28:38.855+03:00"},"comment":"test","creationDateTime":"2018-07-12T10:28:38.855+03:00","expirationDateTime":"2018-08-26T10:28:38.855+03:00","payUrl":"https://oplata.qiwi.com/form/?invoice_uid=bb773791-9bd9-42c1-b8fc-3358cd108422&successUrl=http%3A%2F%2Ftest.ru%2F"}$body$);
SELECT bill_id, site_id, amount, currency, status, status_changed_at, created_at, expires_at,
       comment, customer, custom_fields FROM qiwi_bill_status('cc961e8d-d4d6-4f02-b737-2297e51fb48e');
-- (seed 001's two samples share a bill id but not an amount: forget the first,
-- or the second is a MISMATCH, as qiwi_mismatch tests)
DELETE FROM qiwi_bills WHERE bill_id = '893794793973';
-- bill, cancelled, with customer and customFields, 3-digit fraction (seed 001, reject response example)
SELECT serve(200, $body${"siteId":"23044","billId":"893794793973","amount":{"value":2.42,"currency":"RUB"},"status":{"value":"REJECTED","changedDateTime":"2018-02-28T11:43:23.386+03:00"},"customer":{"email":"test@qiwi.com","phone":"79191234567","account":"user_account"},"customFields":{"city":"Moscow"},"comment":"Text comment","creationDateTime":"2018-02-28T11:43:23.612+03:00","expirationDateTime":"2018-04-14T11:43:23+03:00","payUrl":"https://oplata.qiwi.com/form/?invoice_uid=6848dd49-e260-4343-b258-62199cffe8c1"}$body$);
SELECT bill_id, site_id, amount, currency, status, status_changed_at, created_at, expires_at,
       comment, customer, custom_fields FROM qiwi_bill_status('893794793973');
-- bill with an unknown extra top-level field and a 2-digit fraction (must be ignored, not rejected) (shape reported in QIWI-API/bill-payments-java-sdk issues #27 and #28 (2022))
SELECT serve(200, $body${"siteId":"270305","billId":"b-2022","amount":{"currency":"RUB","value":"10.00"},"status":{"value":"PAID","changedDateTime":"2022-07-13T17:50:29.43+03:00"},"customer":{},"customFields":{"CHECKOUT_REFERER":"https://shop.example/"},"comment":null,"creationDateTime":"2022-07-13T17:40:01.1+03:00","expirationDateTime":"2022-08-27T17:40:01+03:00","payUrl":"https://oplata.qiwi.com/form/?invoice_uid=0b1c","recipientPhoneNumber":"79000000000"}$body$);
SELECT bill_id, site_id, amount, currency, status, status_changed_at, created_at, expires_at,
       comment, customer, custom_fields FROM qiwi_bill_status('b-2022');
-- refund, real response key dateTime (QIWI-API/bill-payments-node-js-sdk README, refund result)
SELECT serve(200, $body${"amount":{"currency":"RUB","value":"0.01"},"dateTime":"2018-07-12T10:34:02.191+03:00","refundId":"1531380841742","status":"PARTIAL"}$body$);
SELECT * FROM qiwi_refund_status('fixture-bill', '1531380841742');
-- refund, doc sample key datetime with an hour-only offset (seed 001, refund response example)
SELECT serve(200, $body${"amount":{"value":50.50,"currency":"RUB"},"datetime":"2018-03-01T16:06:57+03","refundId":"1","status":"PARTIAL"}$body$);
SELECT * FROM qiwi_refund_status('fixture-bill', '1');
-- error: bad key (seed 001 error example)
SELECT serve(401, $body${"serviceName":"invoicing-api","errorCode":"auth.unauthorized","description":"Неверные аутентификационные данные","userMessage":"","datetime":"2018-04-09T18:31:42+03:00","traceId":"48485a395dfsdf34v124"}$body$);
SELECT try($$SELECT qiwi_bill_status('fixture-bill')$$);
-- error: bad key with an empty body (QIWI-API/bill-payments-java-sdk negative test (401, unparseable body))
SELECT serve(401, $body$$body$);
SELECT try($$SELECT qiwi_bill_status('fixture-bill')$$);
-- error: unknown bill (QIWI-API/bill-payments-node-js-sdk test suite)
SELECT serve(404, $body${"serviceName":"invoicing-api","errorCode":"api.invoice.not.found","description":"Invoice not found","userMessage":"Invoice not found","dateTime":"2021-01-18T14:34:40.865+03:00","traceId":"b3d41cafa0c6d088"}$body$);
SELECT try($$SELECT qiwi_bill_status('fixture-bill')$$);
-- error: refund amount (seed 001 refund error example)
SELECT serve(400, $body${"serviceName":"invoicing","errorCode":"refund.incorrect.amount","description":"Неверная сумма возврата","userMessage":"Неверная сумма возврата","datetime":"2005-08-09T18:31:42+03:00","traceId":""}$body$);
SELECT try($$SELECT qiwi_bill_status('fixture-bill')$$);
-- error: validation (QIWI-API/bill-payments-docs 2017 error list; status 400 since 2019)
SELECT serve(400, $body${"serviceName":"invoicing-api","errorCode":"validation.error","description":"Validation error","userMessage":"Validation error","dateTime":"2019-08-20T12:00:00+03:00","traceId":"0f1e2d"}$body$);
SELECT try($$SELECT qiwi_bill_status('fixture-bill')$$);
-- error: method no longer supported (QIWI-API/bill-payments-php-sdk issue #31 (2022-09))
SELECT serve(405, $body${"serviceName":"payin-invoicing-api","errorCode":"api.method-no-longer-supported","description":"Method no longer supported","userMessage":"Method no longer supported","dateTime":"2022-09-01T10:00:00+03:00","traceId":"a1b2"}$body$);
SELECT try($$SELECT qiwi_bill_status('fixture-bill')$$);
-- error: server, plain-text body (any gateway in front of an API)
SELECT serve(502, $body$<html><body>Bad Gateway</body></html>$body$);
SELECT try($$SELECT qiwi_bill_status('fixture-bill')$$);
-- notification, seed sample (status.datetime, amount as string without decimals) (seed 001, notification example)
-- notification, SDK vector (tests of all four official SDKs)

-- Amounts are exact: the fixture amounts come back with two decimals
SELECT bill_id, amount, scale(amount) FROM qiwi_bills
 WHERE bill_id IN ('893794793973', 'cc961e8d-d4d6-4f02-b737-2297e51fb48e', 'b-2022') ORDER BY bill_id;

-- Broken answers are malformed-response errors (QKBAD), never guesses
SELECT serve(200, 'not json');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '[1, 2]');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"billId":"b1","amount":{"value":"10.00","currency":"RUB"}}');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"billId":"b1","amount":{"value":"ten","currency":"RUB"},"status":{"value":"WAITING"}}');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"billId":"b1","amount":{"value":true,"currency":"RUB"},"status":{"value":"WAITING"}}');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"billId":"b1","amount":{"value":1.005,"currency":"RUB"},"status":{"value":"WAITING"}}');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"billId":"b1","amount":{"value":"10.00","currency":"RUB"},"status":{"value":"HALF_PAID"}}');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"billId":"other","amount":{"value":"10.00","currency":"RUB"},"status":{"value":"PAID"}}');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"billId":"b1","amount":{"value":"10.00","currency":"RUB"},"status":{"value":"PAID","changedDateTime":"yesterday-ish"}}');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"billId":"b1","amount":{"value":"10.00","currency":"RUB"},"status":"PAID"}');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"billId":"b1","amount":{"value":"10.00","currency":"RUB"},"status":{"value":"PAID"},"customer":"someone"}');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
SELECT serve(200, '{"amount":{"value":"1.00","currency":"RUB"},"refundId":"r9","status":"DONE"}');
SELECT try($$SELECT qiwi_refund_status('b1', 'r9')$$);
-- an unexpected status code with no body at all
SELECT serve(302, '');
SELECT try($$SELECT qiwi_bill_status('b1')$$);
-- none of the broken answers was recorded
SELECT count(*) AS recorded FROM qiwi_bills WHERE bill_id IN ('b1', 'other');
