-- The unchanged-row probe of a bill's answer (read through the primary key,
-- compared in place): it sees what earlier calls of the same statement
-- wrote, and an answer that differs from the row in an amount's scale only,
-- or a row with a failed check to clear, is written.
SET TIME ZONE 'UTC';
SELECT sandbox('POST', '/sandbox/reset');
SELECT status FROM qiwi_create_bill('p-1', 10, expires_at => now() + interval '1 day');
SELECT status FROM qiwi_create_bill('p-2', 10, expires_at => now() + interval '1 day');
SELECT status FROM qiwi_create_bill('p-3', 10, expires_at => now() + interval '1 day');

-- two answers with a new comment in one statement: the first writes it,
-- the second finds the row as the first left it and writes nothing
SELECT sandbox('POST', '/sandbox/faults', jsonb_build_object('status', 200, 'times', 2, 'bill', 'p-1', 'body',
  '{"siteId":"270305","billId":"p-1","amount":{"currency":"RUB","value":"10.00"},"status":{"value":"WAITING"},"comment":"changed"}')::text);
BEGIN;
SELECT n_tup_upd AS upd0 FROM pg_stat_xact_user_tables WHERE relname = 'qiwi_bills' \gset
SELECT s.comment FROM generate_series(1, 2) i, qiwi_bill_status('p-' || (i * 0 + 1)) s;
SELECT n_tup_upd - :upd0 AS rows_written FROM pg_stat_xact_user_tables WHERE relname = 'qiwi_bills';
COMMIT;

-- the same amount at another scale is not the same row: it is written
UPDATE qiwi_bills SET amount = 10.0 WHERE bill_id = 'p-2';
CREATE TEMP TABLE p_before AS SELECT xmin::text AS x FROM qiwi_bills WHERE bill_id = 'p-2';
BEGIN;
SELECT status, amount FROM qiwi_bill_status('p-2');
SELECT b.xmin::text <> p.x AS row_rewritten, b.amount::text
  FROM qiwi_bills b, p_before p WHERE b.bill_id = 'p-2';
COMMIT;

-- a failed check on record is cleared by the next answer, at once (the
-- failures and the error are checked apart)
UPDATE qiwi_bills SET failures = 2 WHERE bill_id = 'p-3';
BEGIN;
SELECT status FROM qiwi_bill_status('p-3');
SELECT failures, last_error FROM qiwi_bills WHERE bill_id = 'p-3';
COMMIT;
UPDATE qiwi_bills SET last_error = 'timed out' WHERE bill_id = 'p-3';
BEGIN;
SELECT status FROM qiwi_bill_status('p-3');
SELECT failures, last_error FROM qiwi_bills WHERE bill_id = 'p-3';
COMMIT;

DROP TABLE p_before;
