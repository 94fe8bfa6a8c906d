-- Hostile answers: numbers that overflow, JSON nested 100,000 deep, amounts
-- QIWI cannot have, timestamps that are not ISO 8601.  Each is an answer
-- the parser does not understand: QKBAD (or, for an error answer, the class
-- of its HTTP status), never an error of PostgreSQL's input routines, and
-- nothing is recorded.  tap/005 sends the same answers to the reconciler.
SET TIME ZONE 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT sandbox('POST', '/sandbox/reset');
-- each answer is served once: no retries, except where a test asks for them
SET qiwi.max_retries = 0;

-- Serve body with status once, as the next API answer; "@nest@" in the body
-- becomes nest "[" then nest "]" (too long for a command line otherwise)
CREATE FUNCTION serve_hostile(status int, body text, nest int DEFAULT 0, times int DEFAULT 1)
RETURNS void LANGUAGE sql AS $$
	SELECT sandbox('POST', '/sandbox/faults',
	               jsonb_build_object('status', status, 'body', body, 'nest', nest, 'times', times)::text)
$$;

-- A PAID answer for a bill (h1 unless said) with amount.value (raw JSON)
-- and the status time
CREATE FUNCTION paid_answer(value text, changed text DEFAULT '2020-01-01T10:00:00+03:00',
                            bill text DEFAULT 'h1')
RETURNS text LANGUAGE sql AS $$
	SELECT format('{"siteId":"270305","billId":%s,"amount":{"currency":"RUB","value":%s},'
	              '"status":{"value":"PAID","changedDateTime":%s}}', to_json(bill), value, to_json(changed))
$$;

-- Numbers that overflow numeric, as amount.value and anywhere else
SELECT serve_hostile(200, paid_answer('1e131072'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('-1e131072'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('1e-131072'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, '{"extra":1e131072,' || substr(paid_answer('"10.00"'), 2));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, '{"amount":{"currency":"RUB","value":"1.00"},"refundId":"r1","status":"FULL","x":[1e131072]}');
SELECT try($$SELECT qiwi_refund_status('h1', 'r1')$$);
-- a decimal string too long to be an amount
SELECT serve_hostile(200, paid_answer(to_json(repeat('9', 5000))::text));
SELECT try($$SELECT qiwi_bill_status('h1')$$);

-- JSON nested 100,000 deep: alone, inside a bill, inside an error answer
SELECT serve_hostile(200, '@nest@', 100000);
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, '{"customFields":@nest@,' || substr(paid_answer('"10.00"'), 2), 100000);
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, '{"amount":{"currency":"RUB","value":"1.00"},"refundId":"r1","status":"FULL","x":@nest@}', 100000);
SELECT try($$SELECT qiwi_refund_status('h1', 'r1')$$);
SELECT serve_hostile(404, '{"errorCode":"api.invoice.not.found","description":@nest@}', 100000);
SELECT try($$SELECT qiwi_bill_status('h1')$$);
-- a 5xx stays a 5xx, and an idempotent call is retried
SELECT serve_hostile(503, '{"errorCode":"internal.error","traceId":@nest@}', 100000);
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SET qiwi.max_retries = 1;
SELECT sandbox_requests() AS before \gset
SELECT serve_hostile(503, '@nest@', 100000, 2);
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT sandbox_requests() - :before AS requests_sent;
SET qiwi.max_retries = 0;
-- 64 levels is the limit; QIWI's objects nest three
SELECT serve_hostile(200, '{"customFields":{"a":' || repeat('[', 62) || repeat(']', 62) || '},' || substr(paid_answer('"10.00"', bill => 'h-ok'), 2));
SELECT status FROM qiwi_bill_status('h-ok');
SELECT serve_hostile(200, '{"customFields":{"a":' || repeat('[', 63) || repeat(']', 63) || '},' || substr(paid_answer('"10.00"'), 2));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
-- brackets inside strings are not nesting
SELECT serve_hostile(200, '{"comment":"' || repeat('[', 1000) || '",' || substr(paid_answer('"10.00"', bill => 'h-ok'), 2));
SELECT status, length(comment) FROM qiwi_bill_status('h-ok');

-- Amounts a bill cannot have (above 0, at most 999999.99), on a PAID answer
SELECT serve_hostile(200, paid_answer('-0.00'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"-0.00"'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('0'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"-5.00"'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('1000000.00'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"999999.991"'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
-- ... nor a refund
SELECT serve_hostile(200, '{"amount":{"currency":"RUB","value":-0.00},"refundId":"r1","status":"FULL"}');
SELECT try($$SELECT qiwi_refund_status('h1', 'r1')$$);
SELECT serve_hostile(200, '{"amount":{"currency":"RUB","value":"0.00"},"refundId":"r1","status":"FULL"}');
SELECT try($$SELECT qiwi_refund_status('h1', 'r1')$$);
-- none of them was recorded
SELECT count(*) AS recorded FROM qiwi_bills WHERE bill_id = 'h1';
SELECT count(*) AS recorded FROM qiwi_refunds WHERE bill_id = 'h1';

-- Timestamps that are not ISO 8601 with digits
SELECT serve_hostile(200, paid_answer('"10.00"', 'now'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', 'tomorrow'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', 'J2451187'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', 'epoch'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', 'infinity'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', '2020-01-01 allballs'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', '10000-01-01T00:00:00+03:00'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', '2020-01-01T00:00:00 XYZ'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', '2020-01-01T00:00:00 Europe/Nowhere'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', '2020-01-01T00:00:00 Europe/Moscow'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, paid_answer('"10.00"', '2020-13-01T00:00:00+03:00'));
SELECT try($$SELECT qiwi_bill_status('h1')$$);
SELECT serve_hostile(200, '{"amount":{"currency":"RUB","value":"1.00"},"refundId":"r1","status":"FULL","dateTime":"2020-01-01T00:00:00 XYZ"}');
SELECT try($$SELECT qiwi_refund_status('h1', 'r1')$$);
SELECT count(*) AS recorded FROM qiwi_bills WHERE bill_id = 'h1';
-- the shapes QIWI writes are still read: offsets Z, +HHMM, +HH:MM, +HH, none
SELECT serve_hostile(200, paid_answer('"10.00"', '2020-01-01T10:00:00Z', 'h-ok'));
SELECT status_changed_at FROM qiwi_bill_status('h-ok');
SELECT serve_hostile(200, paid_answer('"10.00"', '2020-01-01T10:00:00.5+0300', 'h-ok'));
SELECT status_changed_at FROM qiwi_bill_status('h-ok');
SELECT serve_hostile(200, paid_answer('"10.00"', '2020-01-01 10:00+03', 'h-ok'));
SELECT status_changed_at FROM qiwi_bill_status('h-ok');
SELECT serve_hostile(200, paid_answer('"10.00"', '2020-01-01T10:00:00.123456789', 'h-ok'));
SELECT status_changed_at FROM qiwi_bill_status('h-ok');

-- The largest amount there is
SELECT serve_hostile(200, paid_answer('999999.99', bill => 'h-max'));
SELECT bill_id, amount, status FROM qiwi_bill_status('h-max');

-- Error text QIWI writes in Russian is shown (this database is UTF-8 or
-- SQL_ASCII; tap/005 tests a LATIN1 database)
SELECT serve_hostile(400, '{"errorCode":"refund.incorrect.amount","description":"Неверная сумма возврата","traceId":"t1"}');
SELECT try($$SELECT qiwi_bill_status('h1')$$);

-- The backend is fine, and nothing is left to be served
SELECT status FROM qiwi_create_bill('h-after', 10, expires_at => now() + interval '1 day');
