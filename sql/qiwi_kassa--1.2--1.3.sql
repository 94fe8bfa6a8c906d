-- qiwi_kassa 1.2 -> 1.3: the rest of the Payin API (see debian/changelog).
-- Every object added here is also in sql/ext, so an upgraded install
-- equals a fresh 1.3 (test/t/008_upgrade_and_cluster.pl).
\echo Use "ALTER EXTENSION qiwi_kassa UPDATE TO '1.3'" to load this file. \quit

-- the reconciler's tools cover Payin: qiwi_reconcile_now() makes every
-- kind's followed items due (it moves to the core; its privileges stay),
-- and qiwi_reconciler_health gains the Payin invoices' columns at its end
-- (in sql/ext it moves to payin.sql, after the tables it reads).
COMMENT ON FUNCTION qiwi_reconcile_now() IS $$Make every item the reconciler follows due now (WAITING and CREATING bills; CREATED Payin invoices and PAID ones with money held), leaving rows another transaction holds, and wake the reconciler when this transaction commits; returns how many of all kinds. Not PUBLIC$$;
COMMENT ON VIEW qiwi_reconciler_status IS $$Is the reconciler running (pid, database), its rounds, the last round's start, duration and items (bills, Payin invoices) checked, changed and failed, a 401 stop, and its last error$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_checked IS $$Items the last round asked QIWI about: bills and Payin invoices$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_changed IS $$Items (bills, Payin invoices) whose status the last round changed$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_failed IS $$Checks (of bills and Payin invoices) that failed in the last round$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_error IS $$The reconciler's last error (not an item's: see qiwi_bills.last_error, qiwi_payin_invoices.last_error)$$;

-- One row: is the reconciler keeping up, with bills and with Payin
-- invoices?  Here, after every API's tables, since it reads them all.
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
                AND EXISTS (SELECT FROM qiwi_payin_holds h
                             WHERE h.merchant OPERATOR(pg_catalog.=) i.merchant
                               AND h.bill_id OPERATOR(pg_catalog.=) i.bill_id))) p;
COMMENT ON VIEW qiwi_reconciler_health IS $$One row: qiwi_reconciler_status plus how far behind the reconciler is and which items' checks fail, for bills (open_bills ... bill_error) and for Payin invoices (payin_*). Reads qiwi_bills, qiwi_payin_invoices, qiwi_payin_holds and qiwi_reconciler_status with the caller's rights$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_checked IS $$Items the last round asked QIWI about: bills and Payin invoices$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_changed IS $$Items (bills, Payin invoices) whose status the last round changed$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_failed IS $$Checks (of bills and Payin invoices) that failed in the last round$$;
COMMENT ON COLUMN qiwi_reconciler_health.stopped_by_auth IS $$QIWI answered 401 for a merchant's key: that merchant's bills and Payin invoices wait for its options to change (last_error names it); other merchants go on$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_open_invoices IS $$Payin invoices the reconciler follows: CREATED, or PAID with money held (in qiwi_payin_holds)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_due_invoices IS $$Followed Payin invoices whose next_check_at has passed$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_lag IS $$now() - the oldest next_check_at among the due Payin invoices; 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_failing_invoices IS $$Followed Payin invoices whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_max_failures IS $$Most failed checks in a row of one followed Payin invoice$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_invoice_error IS $$last_error of the followed Payin invoice with the most failures in a row$$;
