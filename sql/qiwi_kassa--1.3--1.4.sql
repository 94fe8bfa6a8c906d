-- qiwi_kassa 1.3 -> 1.4: money safety, second pass (see CHANGELOG).
-- Every object added here is also in sql/ext, so an upgraded install
-- equals a fresh 1.4 (test/t/008_upgrade_and_cluster.pl).
\echo Use "ALTER EXTENSION qiwi_kassa UPDATE TO '1.4'" to load this file. \quit

-- A Payin PAYMENT, CAPTURE or REFUND notification, whose signature covers
-- only its id, date and amount, no longer records money: it marks its
-- invoice notified and due, and QIWI's answer decides
ALTER TABLE qiwi_payin_invoices ADD COLUMN notified_at timestamptz;
COMMENT ON COLUMN qiwi_payin_invoices.notified_at IS $$When a verified PAYMENT, CAPTURE or REFUND notification about this invoice arrived that QIWI's answer has not confirmed yet (notified, unconfirmed: the invoice is due for a check at once); NULL once QIWI answered. Such a notification never changes the money recorded: QIWI signs only its id, date and amount$$;
COMMENT ON COLUMN qiwi_payin_invoices.next_check_at IS $$When the reconciler asks QIWI about this invoice next, while it is CREATED, one of its payments holds money or a notification about it is unconfirmed (backs off after each unchanged answer or failure; due as soon as expires_at or a capture deadline passes)$$;

-- the reconciler follows a PAID invoice while a notification about it is unconfirmed
CREATE OR REPLACE VIEW qiwi_reconciler_health WITH (security_invoker = true) AS
SELECT s.running, s.pid, s.rounds, s.last_round_start, s.last_round_duration,
       s.last_round_checked, s.last_round_changed, s.last_round_failed, s.stopped_by_auth,
       b.open_bills, b.due_bills, coalesce(now() - b.oldest_due_at, interval '0') AS lag,
       b.failing_bills, b.max_failures, b.bill_error,
       s.last_error, s.last_error_at,
       p.payin_open_invoices, p.payin_due_invoices,
       coalesce(now() OPERATOR(pg_catalog.-) p.oldest_due_at, interval '0') AS payin_lag,
       p.payin_failing_invoices, p.payin_max_failures, p.payin_invoice_error
  FROM qiwi_reconciler_status s,
       (SELECT count(*) AS open_bills,
               count(*) FILTER (WHERE q.next_check_at <= now()) AS due_bills,
               min(q.next_check_at) FILTER (WHERE q.next_check_at <= now()) AS oldest_due_at,
               count(*) FILTER (WHERE q.failures > 0) AS failing_bills,
               coalesce(max(q.failures), 0) AS max_failures,
               (array_agg(q.last_error ORDER BY q.failures DESC, q.next_check_at)
                    FILTER (WHERE q.failures > 0))[1] AS bill_error
          FROM qiwi_bills q
         WHERE q.status IN ('WAITING', 'CREATING')) b,
       -- the invoices the reconciler follows (payin_store.c's PAYIN_FOLLOWED)
       (SELECT count(*) AS payin_open_invoices,
               count(*) FILTER (WHERE i.next_check_at OPERATOR(pg_catalog.<=) now()) AS payin_due_invoices,
               min(i.next_check_at) FILTER (WHERE i.next_check_at OPERATOR(pg_catalog.<=) now()) AS oldest_due_at,
               count(*) FILTER (WHERE i.failures OPERATOR(pg_catalog.>) 0) AS payin_failing_invoices,
               coalesce(max(i.failures), 0) AS payin_max_failures,
               (array_agg(i.last_error ORDER BY i.failures DESC, i.next_check_at)
                    FILTER (WHERE i.failures OPERATOR(pg_catalog.>) 0))[1] AS payin_invoice_error
          FROM qiwi_payin_invoices i
         WHERE i.status OPERATOR(pg_catalog.=) 'CREATED'::text
            OR (i.status OPERATOR(pg_catalog.=) 'PAID'::text
                AND (i.notified_at IS NOT NULL
                     OR EXISTS (SELECT FROM qiwi_payin_holds h
                                 WHERE h.merchant OPERATOR(pg_catalog.=) i.merchant
                                   AND h.bill_id OPERATOR(pg_catalog.=) i.bill_id)))) p;

-- The extension's comment names both APIs it covers (CREATE EXTENSION takes
-- it from qiwi_kassa.control; an update does not)
COMMENT ON EXTENSION qiwi_kassa IS 'QIWI payments in SQL: the Bill Payments API (bills, refunds, payment links) and the Payin API (invoices, holds, captures, refunds, tokens, card checks)';
