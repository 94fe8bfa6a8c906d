-- A transaction that cannot write must not move money at QIWI: the answer
-- could not be recorded.  Reading calls still answer, and say so.
SELECT status FROM qiwi_create_bill('ro-1', 20, expires_at => now() + interval '1 day');
SELECT sandbox('POST', '/sandbox/bills/ro-1/pay') -> 'status' ->> 'value' AS paid;
SELECT status FROM qiwi_bill_status('ro-1');
SELECT status FROM qiwi_create_bill('ro-2', 20, expires_at => now() + interval '1 day');
CREATE TABLE ro_requests AS SELECT sandbox_requests() AS before;

BEGIN READ ONLY;
SELECT try($$SELECT qiwi_refund('ro-1', 'ro-r1', 5)$$);
SELECT try($$SELECT qiwi_create_bill('ro-3', 5, expires_at => now() + interval '1 day')$$);
SELECT try($$SELECT qiwi_cancel_bill('ro-2')$$);
SELECT try($$SELECT qiwi_create_bill_after_commit('ro-4', 5, expires_at => now() + interval '1 day')$$);
COMMIT;
SET default_transaction_read_only = on;
SELECT try($$SELECT qiwi_refund('ro-1', 'ro-r1', 5)$$);
RESET default_transaction_read_only;
-- nothing reached QIWI
SELECT sandbox_requests() - before AS requests_sent FROM ro_requests;
SELECT count(*) AS refunds_at_qiwi FROM qiwi_refunds WHERE bill_id = 'ro-1';

-- Reading calls answer, with a warning that they could not record
SELECT sandbox('POST', '/sandbox/bills/ro-2/reject') -> 'status' ->> 'value' AS rejected_at_qiwi;
BEGIN READ ONLY;
SELECT bill_id, status FROM qiwi_bill_status('ro-2');
COMMIT;
SELECT status AS recorded FROM qiwi_bills WHERE bill_id = 'ro-2';
-- the same call in a writable transaction records it
SELECT bill_id, status FROM qiwi_bill_status('ro-2');
SELECT status AS recorded FROM qiwi_bills WHERE bill_id = 'ro-2';

-- and the refund refused above goes through once the transaction can write
SELECT status FROM qiwi_refund('ro-1', 'ro-r1', 5);
DELETE FROM qiwi_refunds WHERE refund_id = 'ro-r1';
BEGIN READ ONLY;
SELECT refund_id, amount, status FROM qiwi_refund_status('ro-1', 'ro-r1');
COMMIT;
SELECT count(*) AS recorded FROM qiwi_refunds WHERE refund_id = 'ro-r1';
DROP TABLE ro_requests;
