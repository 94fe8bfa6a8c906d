-- Idempotent calls are retried after network failures, timeouts, 429 and
-- 5xx, with backoff; a retry never makes a second bill or refund; other 4xx
-- answers are never retried.
SELECT sandbox('DELETE', '/sandbox/faults');
SHOW qiwi.max_retries;
SELECT status FROM qiwi_create_bill('rt-1', 10, expires_at => now() + interval '1 day');

-- 503 twice, then an answer: success after two retries
SELECT sandbox_requests() AS before \gset
SELECT sandbox('POST', '/sandbox/faults', '{"status": 503, "times": 2}');
SELECT status FROM qiwi_bill_status('rt-1');
SELECT sandbox_requests() - :before AS requests;

-- 429 with an empty body, then an answer
SELECT sandbox('POST', '/sandbox/faults', '{"status": 429, "times": 1, "body": ""}');
SELECT status FROM qiwi_bill_status('rt-1');

-- more failures than qiwi.max_retries: the error carries the last status
SELECT sandbox_requests() AS before \gset
SELECT sandbox('POST', '/sandbox/faults', '{"status": 502, "times": 4, "body": "<html>Bad Gateway</html>"}');
SELECT try($$SELECT qiwi_bill_status('rt-1')$$);
SELECT sandbox_requests() - :before AS requests;

-- a timeout is retried too
SET qiwi.timeout = '500ms';
SELECT sandbox('POST', '/sandbox/faults', '{"delay_ms": 1500, "times": 1}');
SELECT status FROM qiwi_bill_status('rt-1');
RESET qiwi.timeout;

-- 4xx is never retried
SELECT sandbox_requests() AS before \gset
SELECT try($$SELECT qiwi_bill_status('rt-missing')$$);
SELECT sandbox('POST', '/sandbox/faults', '{"status": 400, "times": 1}');
SELECT try($$SELECT qiwi_bill_status('rt-1')$$);
SELECT sandbox_requests() - :before AS requests;

-- qiwi.max_retries = 0 turns retries off
SET qiwi.max_retries = 0;
SELECT sandbox('POST', '/sandbox/faults', '{"status": 503, "times": 1}');
SELECT try($$SELECT qiwi_bill_status('rt-1')$$);
RESET qiwi.max_retries;

-- Creating: QIWI makes the bill but the answer is lost (twice: libcurl may
-- resend once on its own); the retry gets the same bill back, and QIWI has one
SELECT (sandbox('GET', '/sandbox/stats')->>'bills')::int AS bills_before \gset
SELECT sandbox('POST', '/sandbox/faults', '{"drop": "after", "times": 2}');
SELECT bill_id, amount, status FROM qiwi_create_bill('rt-2', 12.34, expires_at => now() + interval '1 day');
SELECT (sandbox('GET', '/sandbox/stats')->>'bills')::int - :bills_before AS bills_created;

-- Refunding likewise: one refund
SELECT sandbox('POST', '/sandbox/bills/rt-2/pay')->'status'->>'value' AS paid;
SELECT (sandbox('GET', '/sandbox/stats')->>'refunds')::int AS refunds_before \gset
SELECT sandbox('POST', '/sandbox/faults', '{"drop": "after", "times": 2}');
SELECT refund_id, amount, status FROM qiwi_refund('rt-2', 'rt-r1', 5);
SELECT (sandbox('GET', '/sandbox/stats')->>'refunds')::int - :refunds_before AS refunds_created;
SELECT bill_id, refund_id, amount FROM qiwi_refunds WHERE bill_id = 'rt-2';

-- Cancelling: the answer is lost; the retry hears "not WAITING", looks, finds REJECTED
SELECT status FROM qiwi_create_bill('rt-3', 1, expires_at => now() + interval '1 day');
SELECT sandbox('POST', '/sandbox/faults', '{"drop": "after", "times": 1}');
SELECT bill_id, status FROM qiwi_cancel_bill('rt-3');
SELECT status FROM qiwi_bills WHERE bill_id = 'rt-3';
-- cancelling a paid bill is still an error
SELECT try($$SELECT qiwi_cancel_bill('rt-2')$$);

-- statement_timeout bounds the retries: no wait that it would cut short
SELECT sandbox('POST', '/sandbox/faults', '{"status": 503, "times": 3}');
SET statement_timeout = '150ms';
SELECT regexp_replace(try($$SELECT qiwi_bill_status('rt-1')$$), '\d+ attempts? w(as|ere) made', 'N attempts were made') AS try;
RESET statement_timeout;

-- qiwi.call_deadline bounds one call, all its attempts included: a hung QIWI
-- holds the session for the deadline, not qiwi.max_retries times qiwi.timeout
SHOW qiwi.call_deadline;
SET qiwi.call_deadline = '1s';
SELECT sandbox_requests() AS before \gset
SELECT sandbox('POST', '/sandbox/faults', '{"delay_ms": 8000, "times": 4}');
SELECT clock_timestamp() AS started \gset
SELECT regexp_replace(regexp_replace(try($$SELECT qiwi_bill_status('rt-1')$$), 'within \d+ ms', 'within … ms'),
                      '\d+ attempts? w(as|ere) made', 'N attempts were made') AS try;
SELECT clock_timestamp() - :'started' < interval '4 s' AS within_seconds,
       sandbox_requests() - :before BETWEEN 1 AND 4 AS asked;
RESET qiwi.call_deadline;
SELECT sandbox('DELETE', '/sandbox/faults');
