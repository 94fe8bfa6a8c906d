-- What recording an answer writes: an answer that repeats a bill's row
-- rewrites nothing during the transaction; its checked_at is written once,
-- when the transaction commits, and not if the call is rolled back.
SET TIME ZONE 'UTC';
SELECT sandbox('POST', '/sandbox/reset');
SELECT status FROM qiwi_create_bill('w-1', 10, expires_at => now() + interval '1 day');
CREATE TEMP TABLE w_before AS
SELECT xmin::text AS x, checked_at FROM qiwi_bills WHERE bill_id = 'w-1';

-- the same answer twice: the row version stays the one written before
BEGIN;
SELECT status, amount FROM qiwi_bill_status('w-1');
SELECT status, amount FROM qiwi_bill_status('w-1');
SELECT b.xmin::text = w.x AS row_not_rewritten, b.checked_at = w.checked_at AS checked_at_not_yet
  FROM qiwi_bills b, w_before w WHERE b.bill_id = 'w-1';
COMMIT;
-- committed: checked_at is the time of the last answer, in one new row version
SELECT b.xmin::text <> w.x AS written_at_commit, b.checked_at > w.checked_at AS checked_later,
       b.status, b.amount, b.failures, b.last_error
  FROM qiwi_bills b, w_before w WHERE b.bill_id = 'w-1';

-- a call rolled back with its savepoint leaves checked_at as it was
TRUNCATE w_before;
INSERT INTO w_before SELECT xmin::text, checked_at FROM qiwi_bills WHERE bill_id = 'w-1';
BEGIN;
SAVEPOINT s;
SELECT status FROM qiwi_bill_status('w-1');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT b.xmin::text = w.x AS row_not_rewritten, b.checked_at = w.checked_at AS checked_at_kept
  FROM qiwi_bills b, w_before w WHERE b.bill_id = 'w-1';

-- an answer with the same status and money but other details is written at once
SELECT sandbox('POST', '/sandbox/faults', jsonb_build_object('status', 200, 'body',
  '{"siteId":"270305","billId":"w-1","amount":{"currency":"RUB","value":"10.00"},"status":{"value":"WAITING"},"comment":"changed"}')::text);
BEGIN;
SELECT status, comment FROM qiwi_bill_status('w-1');
SELECT b.xmin::text <> w.x AS row_rewritten, b.comment, b.checked_at > w.checked_at AS checked_now
  FROM qiwi_bills b, w_before w WHERE b.bill_id = 'w-1';
COMMIT;

DROP TABLE w_before;
