-- qiwi_kassa, the reports across every API (1.4): after every API's
-- file, since they read all their tables.

-- All money by merchant, API and status, in one query.  received is money
-- the shop has: PAID bills, captured Payin payments, paid Pull bills, less
-- refunds; held and awaited money is listed with received 0.
CREATE VIEW qiwi_money_by_status WITH (security_invoker = true) AS
SELECT m.merchant, m.api, m.status, m.currency, count(*) AS items,
       sum(m.amount) AS amount, sum(m.received) AS received
  FROM (SELECT b.merchant, 'bill'::text AS api, b.status, b.currency, b.amount,
               CASE WHEN b.status OPERATOR(pg_catalog.=) 'PAID'::text THEN b.amount ELSE 0.00 END AS received
          FROM qiwi_bills b
        UNION ALL
        SELECT r.merchant, 'bill', 'REFUNDED', r.currency, r.amount, OPERATOR(pg_catalog.-) r.amount
          FROM qiwi_refunds r
        UNION ALL
        SELECT i.merchant, 'payin', 'INVOICE_' OPERATOR(pg_catalog.||) i.status, i.currency, i.amount, 0.00
          FROM qiwi_payin_invoices i
         WHERE i.status OPERATOR(pg_catalog.<>) 'PAID'::text
        UNION ALL
        SELECT p.merchant, 'payin',
               CASE WHEN p.status OPERATOR(pg_catalog.<>) 'COMPLETED'::text THEN p.status
                    WHEN p.captured_amount OPERATOR(pg_catalog.>) 0::numeric THEN 'CAPTURED'
                    ELSE 'HELD' END,
               p.currency,
               CASE WHEN p.status OPERATOR(pg_catalog.<>) 'COMPLETED'::text THEN p.amount
                    WHEN p.captured_amount OPERATOR(pg_catalog.>) 0::numeric THEN p.captured_amount
                    ELSE p.amount OPERATOR(pg_catalog.-) rev.released END,
               CASE WHEN p.status OPERATOR(pg_catalog.=) 'COMPLETED'::text THEN p.captured_amount ELSE 0.00 END
          FROM qiwi_payin_payments p,
               LATERAL (SELECT GREATEST(CASE WHEN p.captured_amount OPERATOR(pg_catalog.=) 0::numeric
                                             THEN p.refunded_amount ELSE 0::numeric END,
                                        coalesce(sum(r.amount), 0::numeric)) AS released FROM qiwi_payin_refunds r
                         WHERE r.merchant OPERATOR(pg_catalog.=) p.merchant
                           AND r.payment_id OPERATOR(pg_catalog.=) p.payment_id
                           AND r.reversal AND r.status OPERATOR(pg_catalog.=) 'COMPLETED'::text) rev
         WHERE p.status OPERATOR(pg_catalog.<>) 'COMPLETED'::text
            OR p.captured_amount OPERATOR(pg_catalog.>) 0::numeric
            OR p.amount OPERATOR(pg_catalog.>) rev.released
        UNION ALL
        SELECT r.merchant, 'payin', CASE WHEN r.reversal THEN 'RELEASED' ELSE 'REFUNDED' END,
               r.currency, r.amount,
               CASE WHEN r.reversal THEN 0.00 ELSE OPERATOR(pg_catalog.-) r.amount END
          FROM qiwi_payin_refunds r
         WHERE r.status OPERATOR(pg_catalog.=) 'COMPLETED'::text
        UNION ALL
        SELECT pb.merchant, 'pull', pg_catalog.upper(pb.status), pb.currency, pb.amount,
               CASE WHEN pb.status OPERATOR(pg_catalog.=) 'paid'::text THEN pb.amount ELSE 0.00 END
          FROM qiwi_pull_bills pb
        UNION ALL
        SELECT pr.merchant, 'pull', CASE WHEN pr.status OPERATOR(pg_catalog.=) 'success'::text
                                         THEN 'REFUNDED' ELSE 'REFUNDING' END,
               pr.currency, pr.amount,
               CASE WHEN pr.status OPERATOR(pg_catalog.=) 'success'::text THEN OPERATOR(pg_catalog.-) pr.amount
                    ELSE 0.00 END
          FROM qiwi_pull_refunds pr
         WHERE pr.status OPERATOR(pg_catalog.<>) 'fail'::text
        UNION ALL
        SELECT w.merchant, 'wallet', w.type OPERATOR(pg_catalog.||) '_' OPERATOR(pg_catalog.||) w.status,
               w.currency, w.amount,
               CASE WHEN w.status OPERATOR(pg_catalog.<>) 'SUCCESS'::text THEN 0.00
                    WHEN w.type OPERATOR(pg_catalog.=) 'IN'::text THEN w.amount
                    ELSE OPERATOR(pg_catalog.-) w.amount END
          FROM qiwi_wallet_payments w) m
 GROUP BY m.merchant, m.api, m.status, m.currency;

-- One row: is the reconciler keeping up, with bills, with Payin invoices
-- and with Pull bills and refunds?
CREATE VIEW qiwi_reconciler_health WITH (security_invoker = true) AS
SELECT s.running, s.pid, s.rounds, s.last_round_start, s.last_round_duration,
       s.last_round_checked, s.last_round_changed, s.last_round_failed, s.stopped_by_auth,
       b.open_bills, b.due_bills, coalesce(now() - b.oldest_due_at, interval '0') AS lag,
       b.failing_bills, b.max_failures, b.bill_error,
       s.last_error, s.last_error_at,
       p.payin_open_invoices, p.payin_due_invoices,
       coalesce(now() OPERATOR(pg_catalog.-) p.oldest_due_at, interval '0') AS payin_lag,
       p.payin_failing_invoices, p.payin_max_failures, p.payin_invoice_error,
       pl.pull_open_items, pl.pull_due_items,
       coalesce(now() OPERATOR(pg_catalog.-) pl.oldest_due_at, interval '0') AS pull_lag,
       pl.pull_failing_items, pl.pull_max_failures, pl.pull_error,
       ws.wallet_merchants, ws.wallet_lag, ws.wallet_blocked, ws.wallet_failing, ws.wallet_error
  FROM qiwi_reconciler_status s,
       (SELECT count(*) AS open_bills,
               count(*) FILTER (WHERE q.due_at <= now()) AS due_bills,
               min(q.due_at) FILTER (WHERE q.due_at <= now()) AS oldest_due_at,
               count(*) FILTER (WHERE q.failures > 0) AS failing_bills,
               coalesce(max(q.failures), 0) AS max_failures,
               (array_agg(q.last_error ORDER BY q.failures DESC, q.next_check_at)
                    FILTER (WHERE q.failures > 0))[1] AS bill_error
          -- due: by its schedule, or made due by qiwi_reconcile_now (the
          -- watermark, as the reconciler's claims read it)
          FROM (SELECT o.next_check_at, o.failures, o.last_error, CASE WHEN coalesce(o.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(o.next_check_at, w.due_before, now()) ELSE o.next_check_at END AS due_at
                  FROM qiwi_bills o LEFT JOIN qiwi_reconcile_watermark w ON true
                 WHERE o.status IN ('WAITING', 'CREATING')) q) b,
       -- the invoices the reconciler follows (payin_store.c's PAYIN_FOLLOWED)
       (SELECT count(*) AS payin_open_invoices,
               count(*) FILTER (WHERE CASE WHEN coalesce(i.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(i.next_check_at, w.due_before, now()) ELSE i.next_check_at END OPERATOR(pg_catalog.<=) now()) AS payin_due_invoices,
               min(CASE WHEN coalesce(i.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(i.next_check_at, w.due_before, now()) ELSE i.next_check_at END) FILTER (WHERE CASE WHEN coalesce(i.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(i.next_check_at, w.due_before, now()) ELSE i.next_check_at END OPERATOR(pg_catalog.<=) now()) AS oldest_due_at,
               count(*) FILTER (WHERE i.failures OPERATOR(pg_catalog.>) 0) AS payin_failing_invoices,
               coalesce(max(i.failures), 0) AS payin_max_failures,
               (array_agg(i.last_error ORDER BY i.failures DESC, i.next_check_at)
                    FILTER (WHERE i.failures OPERATOR(pg_catalog.>) 0))[1] AS payin_invoice_error
          FROM qiwi_payin_invoices i LEFT JOIN qiwi_reconcile_watermark w ON true
         WHERE i.status OPERATOR(pg_catalog.=) 'CREATED'::text
            OR (i.status OPERATOR(pg_catalog.=) 'PAID'::text
                AND (i.notified_at IS NOT NULL
                     OR EXISTS (SELECT FROM qiwi_payin_holds h
                                 WHERE h.merchant OPERATOR(pg_catalog.=) i.merchant
                                   AND h.bill_id OPERATOR(pg_catalog.=) i.bill_id)))) p,
       -- the Pull bills and refunds the reconciler follows: waiting, processing
       (SELECT count(*) AS pull_open_items,
               count(*) FILTER (WHERE CASE WHEN coalesce(o.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(o.next_check_at, w.due_before, now()) ELSE o.next_check_at END OPERATOR(pg_catalog.<=) now()) AS pull_due_items,
               min(CASE WHEN coalesce(o.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(o.next_check_at, w.due_before, now()) ELSE o.next_check_at END) FILTER (WHERE CASE WHEN coalesce(o.scheduled_at, '-infinity'::timestamptz) OPERATOR(pg_catalog.<) w.due_before THEN least(o.next_check_at, w.due_before, now()) ELSE o.next_check_at END OPERATOR(pg_catalog.<=) now()) AS oldest_due_at,
               count(*) FILTER (WHERE o.failures OPERATOR(pg_catalog.>) 0) AS pull_failing_items,
               coalesce(max(o.failures), 0) AS pull_max_failures,
               (array_agg(o.last_error ORDER BY o.failures DESC, o.next_check_at)
                    FILTER (WHERE o.failures OPERATOR(pg_catalog.>) 0))[1] AS pull_error
          FROM (SELECT b.next_check_at, b.scheduled_at, b.failures, b.last_error FROM qiwi_pull_bills b
                 WHERE b.status OPERATOR(pg_catalog.=) 'waiting'::text
                UNION ALL
                SELECT r.next_check_at, r.scheduled_at, r.failures, r.last_error FROM qiwi_pull_refunds r
                 WHERE r.status OPERATOR(pg_catalog.=) 'processing'::text) o
               LEFT JOIN qiwi_reconcile_watermark w ON true) pl,
       -- the merchants whose wallet history the worker keeps (wallet_sync.c)
       (SELECT count(*) AS wallet_merchants,
               coalesce(now() OPERATOR(pg_catalog.-) min(y.synced_until), interval '0') AS wallet_lag,
               count(*) FILTER (WHERE y.blocked_until OPERATOR(pg_catalog.>) now()) AS wallet_blocked,
               count(*) FILTER (WHERE y.last_error IS NOT NULL) AS wallet_failing,
               (array_agg(y.last_error ORDER BY y.last_error_at DESC)
                    FILTER (WHERE y.last_error IS NOT NULL))[1] AS wallet_error
          FROM qiwi_wallet_sync y) ws;

COMMENT ON VIEW qiwi_money_by_status IS $$All money by merchant, API (bill, payin, pull, wallet), status and currency: bills by status and their refunds; Payin invoices not paid (INVOICE_CREATED, INVOICE_EXPIRED, INVOICE_MISMATCH), payments HELD (what is still held), CAPTURED, WAITING, DECLINED, MISMATCH (QIWI's amount), refunds REFUNDED and reversals RELEASED; Pull bills by status (WAITING, PAID, REJECTED, UNPAID, EXPIRED) and their refunds REFUNDED or REFUNDING (processing); wallet payments by type and status (IN_SUCCESS, OUT_WAITING, QIWI_CARD_ERROR, ...). Held money is never received. Reads the tables with the caller's rights$$;
COMMENT ON COLUMN qiwi_money_by_status.merchant IS $$The merchant$$;
COMMENT ON COLUMN qiwi_money_by_status.api IS $$bill (Bill Payments), payin, pull or wallet$$;
COMMENT ON COLUMN qiwi_money_by_status.status IS $$The items' status (see the view's comment)$$;
COMMENT ON COLUMN qiwi_money_by_status.currency IS $$ISO 4217 code of the sums$$;
COMMENT ON COLUMN qiwi_money_by_status.items IS $$How many bills, invoices, payments or refunds$$;
COMMENT ON COLUMN qiwi_money_by_status.amount IS $$Their amounts (a captured payment's captured amount)$$;
COMMENT ON COLUMN qiwi_money_by_status.received IS $$What the shop received: PAID bills, captured payments, paid Pull bills and wallet payments IN_SUCCESS, less refunds and what the wallet paid out (OUT_SUCCESS, QIWI_CARD_SUCCESS: negative); 0 for held, awaited, declined, released, failed or MISMATCH money$$;
COMMENT ON VIEW qiwi_reconciler_health IS $$One row: qiwi_reconciler_status plus how far behind the reconciler is and which items' checks fail, for bills (open_bills ... bill_error), for Payin invoices (payin_*), for Pull bills and refunds (pull_*) and for the wallet histories it keeps (wallet_*). Reads qiwi_bills, qiwi_payin_invoices, qiwi_payin_holds, qiwi_pull_bills, qiwi_pull_refunds, qiwi_reconcile_watermark, qiwi_wallet_sync and qiwi_reconciler_status with the caller's rights$$;
COMMENT ON COLUMN qiwi_reconciler_health.running IS $$A reconciler process is running$$;
COMMENT ON COLUMN qiwi_reconciler_health.pid IS $$Its process id$$;
COMMENT ON COLUMN qiwi_reconciler_health.rounds IS $$Rounds completed since the server started (a counter)$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_start IS $$When the last round started$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_duration IS $$How long the last round took$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_checked IS $$Items the last round asked QIWI about: bills and Payin invoices$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_changed IS $$Items (bills, Payin invoices) whose status the last round changed$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_round_failed IS $$Checks (of bills and Payin invoices) that failed in the last round$$;
COMMENT ON COLUMN qiwi_reconciler_health.stopped_by_auth IS $$QIWI answered 401 for a merchant's key: that merchant's bills and Payin invoices wait for its options to change (last_error names it); other merchants go on$$;
COMMENT ON COLUMN qiwi_reconciler_health.open_bills IS $$WAITING and CREATING bills$$;
COMMENT ON COLUMN qiwi_reconciler_health.due_bills IS $$Open bills due: next_check_at has passed, or qiwi_reconcile_now() made them due since their last check (scheduled_at before the watermark)$$;
COMMENT ON COLUMN qiwi_reconciler_health.lag IS $$now() - the oldest due time among the due bills (next_check_at, or when qiwi_reconcile_now() made it due if earlier); 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.failing_bills IS $$Open bills whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.max_failures IS $$Most failed checks in a row of one open bill$$;
COMMENT ON COLUMN qiwi_reconciler_health.bill_error IS $$last_error of the open bill with the most failures in a row$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_error IS $$The reconciler's own last error (no worker slot, 401, ...)$$;
COMMENT ON COLUMN qiwi_reconciler_health.last_error_at IS $$When last_error happened$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_open_invoices IS $$Payin invoices the reconciler follows: CREATED, or PAID with money held (in qiwi_payin_holds)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_due_invoices IS $$Followed Payin invoices due: next_check_at has passed, or qiwi_reconcile_now() made them due since their last check$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_lag IS $$now() - the oldest due time among the due Payin invoices (as lag); 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_failing_invoices IS $$Followed Payin invoices whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_max_failures IS $$Most failed checks in a row of one followed Payin invoice$$;
COMMENT ON COLUMN qiwi_reconciler_health.payin_invoice_error IS $$last_error of the followed Payin invoice with the most failures in a row$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_open_items IS $$Pull bills waiting and Pull refunds processing: what the reconciler follows$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_due_items IS $$Followed Pull bills and refunds due: next_check_at has passed, or qiwi_reconcile_now() made them due since their last check$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_lag IS $$now() - the oldest due time among the due Pull items (as lag); 0 when none is due$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_failing_items IS $$Followed Pull bills and refunds whose last check failed (failures > 0)$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_max_failures IS $$Most failed checks in a row of one followed Pull item$$;
COMMENT ON COLUMN qiwi_reconciler_health.pull_error IS $$last_error of the followed Pull item with the most failures in a row$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_merchants IS $$Merchants whose wallet history the worker keeps in qiwi_wallet_payments (rows of qiwi_wallet_sync)$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_lag IS $$now() - the oldest synced_until of qiwi_wallet_sync: how old the least current wallet history is; 0 when none was read whole yet$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_blocked IS $$Merchants whose wallet QIWI blocked (423) for now: their sync waits for the block to end$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_failing IS $$Merchants whose last wallet history read failed, or left a payment unrecorded$$;
COMMENT ON COLUMN qiwi_reconciler_health.wallet_error IS $$The latest of their errors$$;

-- ---------- a reporting copy ----------
-- The publication a reporting copy subscribes to: every table the reports
-- read, of every API (not the notification tables: no report reads them,
-- and a Payin TOKEN notification carries a buyer's payment token, like
-- qiwi_payin_tokens and qiwi_payin_card_checks, which stay out too).  Run
-- as the caller, who must own the tables (the extension's owner, or a
-- superuser) and may create in the database, as CREATE PUBLICATION asks.
CREATE FUNCTION qiwi_create_publication(name text DEFAULT 'qiwi_kassa_reports')
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	statement text;
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s', name,
	                         pg_catalog.string_agg(pg_catalog.format('%I.%I', s.nspname, t.tab), ', ' ORDER BY t.ord))
	  INTO statement
	  FROM pg_catalog.pg_extension e
	  JOIN pg_catalog.pg_namespace s ON s.oid OPERATOR(pg_catalog.=) e.extnamespace,
	       pg_catalog.unnest(ARRAY['qiwi_bills', 'qiwi_refunds', 'qiwi_bill_events',
	                               'qiwi_payin_invoices', 'qiwi_payin_payments', 'qiwi_payin_captures',
	                               'qiwi_payin_refunds', 'qiwi_payin_events',
	                               'qiwi_pull_bills', 'qiwi_pull_refunds', 'qiwi_pull_events',
	                               'qiwi_wallet_payments', 'qiwi_wallet_transfers',
	                               'qiwi_wallet_transfer_events', 'qiwi_wallet_sync',
	                               'qiwi_reconcile_watermark']) WITH ORDINALITY AS t(tab, ord)
	 WHERE e.extname OPERATOR(pg_catalog.=) 'qiwi_kassa'
	 GROUP BY s.nspname;
	EXECUTE statement;
	RETURN statement;
END
$fn$;
REVOKE ALL ON FUNCTION qiwi_create_publication(text) FROM PUBLIC;
COMMENT ON FUNCTION qiwi_create_publication(text) IS $$Create the publication (named name) of every table the reports read, for a reporting copy that subscribes to it with logical replication: qiwi_bills, qiwi_refunds, qiwi_bill_events, qiwi_payin_invoices, qiwi_payin_payments, qiwi_payin_captures, qiwi_payin_refunds, qiwi_payin_events, qiwi_pull_bills, qiwi_pull_refunds, qiwi_pull_events, qiwi_wallet_payments, qiwi_wallet_transfers, qiwi_wallet_transfer_events, qiwi_wallet_sync, qiwi_reconcile_watermark (which the health view reads; not the notification tables, tokens and card checks); returns the statement it ran. Runs with the caller's rights: the tables' owner or a superuser. Not PUBLIC$$;
