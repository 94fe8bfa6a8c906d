-- Every class of failure becomes an ERROR with a stable SQLSTATE.  (Retries
-- are off here, so that each fault is seen once; qiwi_retries tests them.)
SET qiwi.max_retries = 0;
SELECT sandbox('DELETE', '/sandbox/faults');
SELECT status FROM qiwi_create_bill('err-1', 10, expires_at => now() + interval '1 day');

-- No key configured: nothing is sent
SELECT sandbox_requests() AS before \gset
SET qiwi.secret_key = '';
SELECT try($$SELECT qiwi_bill_status('err-1')$$);
SELECT sandbox_requests() - :before AS requests_sent;

-- A wrong key: authentication error (QK401), and the key is in no message
SET qiwi.secret_key = 'wrong-key-do-not-print';
SELECT try($$SELECT qiwi_bill_status('err-1')$$);
SELECT try($$SELECT qiwi_bill_status('err-1')$$) LIKE '%wrong-key%' AS key_in_message;
RESET qiwi.secret_key;

-- Rate limit (QK429) and server errors (QK500), with and without QIWI's JSON
SELECT sandbox('POST', '/sandbox/faults', '{"status": 429, "body": ""}');
SELECT try($$SELECT qiwi_bill_status('err-1')$$);
SELECT sandbox('POST', '/sandbox/faults', '{"status": 503, "body": "{\"serviceName\":\"invoicing-api\",\"errorCode\":\"internal.invoicing.core.error\",\"description\":\"Temporary failure\",\"traceId\":\"abc1\"}"}');
SELECT try($$SELECT qiwi_bill_status('err-1')$$);
SELECT sandbox('POST', '/sandbox/faults', '{"status": 500}');
SELECT try($$SELECT qiwi_bill_status('err-1')$$);

-- The connection dropped before any answer: network error (QKNET).  libcurl
-- itself retries once when a kept-alive connection turns out dead, so the
-- sandbox drops two in a row.
SELECT sandbox('POST', '/sandbox/faults', '{"drop": "before", "times": 2}');
SELECT try($$SELECT qiwi_bill_status('err-1')$$);
-- ... and in the middle of the answer
SELECT sandbox('POST', '/sandbox/faults', '{"drop": "mid-answer"}');
SELECT try($$SELECT qiwi_bill_status('err-1')$$, false);

-- Creating a bill whose answer is lost: QIWI has it; the same call again
-- returns it, and there is still exactly one bill
SELECT sandbox('POST', '/sandbox/faults', '{"drop": "after", "times": 2}');
SELECT (sandbox('GET', '/sandbox/stats')->>'bills')::int AS bills_before \gset
SELECT try($$SELECT qiwi_create_bill('err-lost-answer', 12.34, expires_at => now() + interval '1 day')$$);
SELECT count(*) AS recorded_after_failure FROM qiwi_bills WHERE bill_id = 'err-lost-answer';
SELECT sandbox('DELETE', '/sandbox/faults');
SELECT bill_id, amount, status FROM qiwi_create_bill('err-lost-answer', 12.34, expires_at => now() + interval '1 day');
SELECT (sandbox('GET', '/sandbox/stats')->>'bills')::int - :bills_before AS bills_created;
SELECT bill_id, amount, status FROM qiwi_bills WHERE bill_id = 'err-lost-answer';

-- An answer larger than the cap is refused (QKBAD), and the next call works
SELECT sandbox('POST', '/sandbox/faults', '{"huge": 300000}');
SELECT try($$SELECT qiwi_bill_status('err-1')$$);
SELECT status FROM qiwi_bill_status('err-1');

-- Nobody listening: network error, quickly
SELECT set_config('qiwi.api_url', current_setting('qiwi_test.unused_url'), false) IS NOT NULL AS pointed_elsewhere;
SELECT try($$SELECT qiwi_bill_status('err-1')$$, false);
-- nothing reached QIWI, and the hint says so, for a call that creates too
DO $$
DECLARE
	hint text;
BEGIN
	PERFORM qiwi_create_bill('err-nc', 1, expires_at => now() + interval '1 day');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
	RAISE NOTICE 'hint: %', hint;
END $$;
RESET qiwi.api_url;

-- A slow QIWI: timeout error naming the phase (QKTMO)
SET qiwi.timeout = 300;
SELECT sandbox('POST', '/sandbox/latency', '{"ms": 1000}');
SELECT try($$SELECT qiwi_bill_status('err-1')$$);
RESET qiwi.timeout;

-- statement_timeout ends a hung request with PostgreSQL's own error, long
-- before the HTTP timeout (qiwi.timeout is 5 s here, the sandbox waits 1 s
-- per answer, the statement may take 0.2 s)
SET statement_timeout = '200ms';
SELECT qiwi_bill_status('err-1');
RESET statement_timeout;
SELECT sandbox('POST', '/sandbox/latency', '{"ms": 0}');
-- the backend is still usable
SELECT status FROM qiwi_bill_status('err-1');
