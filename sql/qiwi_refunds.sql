-- Refunds against the sandbox, and their bookkeeping.
SET TIME ZONE 'UTC';
SELECT status FROM qiwi_create_bill('refund-1', 100, expires_at => now() + interval '1 day');

-- Only a paid bill can be refunded
SELECT try($$SELECT qiwi_refund('refund-1', 'r-early', 10)$$);
SELECT sandbox('POST', '/sandbox/bills/refund-1/pay')->'status'->>'value' AS paid;

-- A partial refund, then its status
SELECT bill_id, refund_id, amount, currency, status, created_at IS NOT NULL AS has_created_at
  FROM qiwi_refund('refund-1', 'r-1', 30.25);
SELECT bill_id, refund_id, amount, status FROM qiwi_refund_status('refund-1', 'r-1');

-- The same refund again is idempotent: no second refund
SELECT refund_id, amount, status FROM qiwi_refund('refund-1', 'r-1', 30.25);
SELECT (sandbox('GET', '/sandbox/stats')->>'refunds')::int AS refunds_at_sandbox;

-- The same refund id for another amount is refused
SELECT try($$SELECT qiwi_refund('refund-1', 'r-1', 1)$$);

-- More than what is left is refused before any request when our tables show it
SELECT sandbox_requests() AS before \gset
SELECT try($$SELECT qiwi_refund('refund-1', 'r-2', 69.76)$$);
SELECT sandbox_requests() - :before AS requests_sent;
-- ... and by QIWI when they do not (refund.incorrect.amount)
BEGIN;
DELETE FROM qiwi_refunds WHERE bill_id = 'refund-1';
SELECT try($$SELECT qiwi_refund('refund-1', 'r-2', 69.76)$$);
ROLLBACK;

-- The rest: the refund that completes it is FULL
SELECT refund_id, amount, status FROM qiwi_refund('refund-1', 'r-2', 69.75);
SELECT try($$SELECT qiwi_refund('refund-1', 'r-3', 0.01)$$);

-- A refund in another currency than the bill's is refused before sending
SELECT status FROM qiwi_create_bill('refund-2', 10, expires_at => now() + interval '1 day');
SELECT sandbox('POST', '/sandbox/bills/refund-2/pay')->'status'->>'value' AS paid;
SELECT sandbox_requests() AS before \gset
SELECT try($$SELECT qiwi_refund('refund-2', 'r-1', 1, 'KZT')$$);
SELECT sandbox_requests() - :before AS requests_sent;

-- A bill qiwi_bills does not have is asked for first: QIWI has this one
-- for 5.00 (its creation was rolled back here), so 5.01 is refused with no
-- refund sent, only the bill asked for; 5.00 is asked for, then sent
BEGIN;
SELECT status FROM qiwi_create_bill('refund-3', 5, expires_at => now() + interval '1 day');
ROLLBACK;
SELECT sandbox('POST', '/sandbox/bills/refund-3/pay')->'status'->>'value' AS paid;
SELECT sandbox_requests() AS before \gset
SELECT (sandbox('GET', '/sandbox/stats')->>'refunds')::int AS refunds_before \gset
SELECT try($$SELECT qiwi_refund('refund-3', 'r-1', 5.01)$$);
SELECT sandbox_requests() - :before AS requests_sent,
       (sandbox('GET', '/sandbox/stats')->>'refunds')::int - :refunds_before AS refunds_made;
SELECT try($$SELECT qiwi_refund('refund-3', 'r-1', 5, 'KZT')$$);
SELECT sandbox_requests() AS before \gset
SELECT refund_id, amount, status FROM qiwi_refund('refund-3', 'r-1', 5);
SELECT sandbox_requests() - :before AS requests_sent;
SELECT status, amount FROM qiwi_bills WHERE bill_id = 'refund-3';

-- Unknown bill (asked for: QIWI does not know it either), unknown refund
SELECT sandbox_requests() AS before \gset
SELECT try($$SELECT qiwi_refund('no-such-bill', 'r-1', 1)$$);
SELECT sandbox_requests() - :before AS requests_sent;
SELECT try($$SELECT qiwi_refund_status('refund-1', 'no-such-refund')$$);

-- Bookkeeping: what was refunded, per bill
SELECT bill_id, refund_id, amount, currency, status FROM qiwi_refunds
 WHERE bill_id LIKE 'refund-%' ORDER BY bill_id, refund_id;
SELECT b.bill_id, b.amount, sum(r.amount) AS refunded
  FROM qiwi_bills b JOIN qiwi_refunds r USING (bill_id)
 WHERE b.bill_id LIKE 'refund-%' GROUP BY b.bill_id, b.amount;
