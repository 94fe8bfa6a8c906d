-- The report views and qiwi_reconcile_orders: what each counts, with the
-- caller's rights only, and under a caller's planted search_path.
SET TIME ZONE 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';

-- Bills in every status, at fixed times, for two merchants (site_id rp-site-*)
INSERT INTO qiwi_bills (bill_id, site_id, amount, currency, status, status_changed_at, created_at,
                        expires_at, checked_at, next_check_at, qiwi_amount, qiwi_currency, qiwi_status)
VALUES ('rp-paid-1', 'rp-site-1', 1499.90, 'RUB', 'PAID', '2026-11-20 10:00+00', '2026-11-20 09:00+00', '2026-12-20 09:00+00', now(), 'infinity', NULL, NULL, NULL),
       ('rp-paid-2', 'rp-site-1', 100.10, 'RUB', 'PAID', '2026-11-20 23:59:59+00', '2026-11-20 09:00+00', '2026-12-20 09:00+00', now(), 'infinity', NULL, NULL, NULL),
       ('rp-paid-3', 'rp-site-1', 50, 'KZT', 'PAID', '2026-11-20 12:00+00', '2026-11-20 09:00+00', '2026-12-20 09:00+00', now(), 'infinity', NULL, NULL, NULL),
       ('rp-paid-4', 'rp-site-1', 10, 'RUB', 'PAID', '2026-11-21 00:00+00', '2026-11-20 09:00+00', '2026-12-20 09:00+00', now(), 'infinity', NULL, NULL, NULL),
       ('rp-site2-paid', 'rp-site-2', 5, 'RUB', 'PAID', '2026-11-20 09:00+00', '2026-11-20 08:00+00', '2026-12-20 09:00+00', now(), 'infinity', NULL, NULL, NULL),
       -- QIWI said PAID for 1.00 of a 1,000.00 bill: never money
       ('rp-mismatch', 'rp-site-1', 1000, 'RUB', 'MISMATCH', '2026-11-20 11:00+00', '2026-11-20 09:00+00', '2026-12-20 09:00+00', now(), 'infinity', 1.00, 'RUB', 'PAID'),
       ('rp-rejected', 'rp-site-1', 33, 'RUB', 'REJECTED', '2026-11-20 11:00+00', '2026-11-20 09:00+00', '2026-12-20 09:00+00', now(), 'infinity', NULL, NULL, NULL),
       ('rp-expired', 'rp-site-1', 44, 'RUB', 'EXPIRED', '2026-11-20 11:00+00', '2026-11-20 09:00+00', '2026-11-20 10:00+00', now(), 'infinity', NULL, NULL, NULL),
       ('rp-failed', NULL, 55, 'RUB', 'CREATE_FAILED', NULL, NULL, '2026-12-20 09:00+00', now(), 'infinity', NULL, NULL, NULL);
-- the merchants are named after their sites here
UPDATE qiwi_bills SET merchant = site_id WHERE bill_id LIKE 'rp-%' AND site_id IS NOT NULL AND merchant = 'default';
INSERT INTO qiwi_refunds (bill_id, refund_id, amount, currency, status, created_at, checked_at)
VALUES ('rp-paid-1', 'r1', 499.90, 'RUB', 'PARTIAL', '2026-11-20 15:00+00', now()),
       ('rp-paid-1', 'r2', 0.10, 'RUB', 'PARTIAL', '2026-11-22 08:00+00', now()),
       ('rp-paid-3', 'r1', 50, 'KZT', 'FULL', '2026-11-21 10:00+00', now());
UPDATE qiwi_refunds SET merchant = 'rp-site-1' WHERE bill_id IN ('rp-paid-1', 'rp-paid-3');

-- ---------- qiwi_money_per_day ----------
-- PAID by the day of status_changed_at, refunds by their day; MISMATCH,
-- REJECTED, EXPIRED and CREATE_FAILED are no money
SELECT * FROM qiwi_money_per_day WHERE merchant LIKE 'rp-%' ORDER BY day, merchant, currency;
-- the day is the session's: 23:59:59 UTC is the next day in Moscow
SET TIME ZONE 'Europe/Moscow';
SELECT day, merchant, currency, paid, paid_bills FROM qiwi_money_per_day
 WHERE merchant = 'rp-site-1' AND currency = 'RUB' AND paid > 0 ORDER BY day;
SET TIME ZONE 'UTC';
-- the totals agree with the bills and refunds themselves
SELECT (SELECT sum(paid) FROM qiwi_money_per_day WHERE merchant LIKE 'rp-%' AND currency = 'RUB') AS rub_paid,
       (SELECT sum(amount) FROM qiwi_bills WHERE site_id LIKE 'rp-%' AND currency = 'RUB' AND status = 'PAID') AS rub_paid_bills,
       (SELECT sum(refunded) FROM qiwi_money_per_day WHERE merchant LIKE 'rp-%') AS refunded,
       (SELECT sum(amount) FROM qiwi_refunds WHERE bill_id LIKE 'rp-%') AS refunds;

-- ---------- qiwi_refunds_per_bill ----------
SELECT * FROM qiwi_refunds_per_bill WHERE bill_id LIKE 'rp-%' ORDER BY bill_id;

-- left_to_refund is what qiwi_refund accepts, against the sandbox
SELECT status FROM qiwi_create_bill('rp-sb-1', 100, expires_at => now() + interval '1 day');
SELECT sandbox('POST', '/sandbox/bills/rp-sb-1/pay') -> 'status' ->> 'value' AS paid_at_sandbox;
SELECT status FROM qiwi_bill_status('rp-sb-1');
SELECT status FROM qiwi_refund('rp-sb-1', 'rp-r1', 30);
SELECT paid, refunded, left_to_refund, refunds FROM qiwi_refunds_per_bill WHERE bill_id = 'rp-sb-1';
SELECT try($$SELECT qiwi_refund('rp-sb-1', 'rp-r2', 70.01)$$);
SELECT status FROM qiwi_refund('rp-sb-1', 'rp-r2', 70);
SELECT paid, refunded, left_to_refund, refunds FROM qiwi_refunds_per_bill WHERE bill_id = 'rp-sb-1';

-- ---------- qiwi_open_bills ----------
-- (one transaction: now() is fixed, so ages are exact)
BEGIN;
INSERT INTO qiwi_bills (bill_id, site_id, amount, currency, status, created_at, expires_at,
                        first_seen_at, checked_at, next_check_at)
VALUES ('rp-open-waiting', 'rp-site-1', 12.50, 'RUB', 'WAITING', now() - interval '2 hours',
        now() + interval '1 day', now() - interval '2 hours', now(), now() + interval '1 hour'),
       ('rp-open-creating', NULL, 7, 'RUB', 'CREATING', NULL,
        now() + interval '3 days', now() - interval '5 minutes', now(), now() + interval '1 hour'),
       ('rp-open-overdue', 'rp-site-1', 8, 'RUB', 'WAITING', now() - interval '2 days',
        now() - interval '1 minute', now() - interval '2 days', now(), now() + interval '1 hour');
-- the merchants are named after their sites here
UPDATE qiwi_bills SET merchant = site_id WHERE bill_id LIKE 'rp-%' AND site_id IS NOT NULL AND merchant = 'default';
SELECT bill_id, merchant, amount, currency, status, created_at = now() - age AS created_at_is_age,
       age, time_left, failures
  FROM qiwi_open_bills WHERE bill_id LIKE 'rp-%' ORDER BY bill_id;
COMMIT;

-- ---------- qiwi_bills_changed_today ----------
BEGIN;
INSERT INTO qiwi_bills (bill_id, site_id, amount, currency, status, status_changed_at, checked_at,
                        next_check_at, qiwi_amount, qiwi_currency, qiwi_status)
VALUES ('rp-today-now', 'rp-site-1', 1, 'RUB', 'PAID', now(), now(), 'infinity', NULL, NULL, NULL),
       ('rp-today-midnight', 'rp-site-1', 2, 'RUB', 'EXPIRED', current_date, now(), 'infinity', NULL, NULL, NULL),
       ('rp-today-mismatch', 'rp-site-1', 3, 'RUB', 'MISMATCH', now(), now(), 'infinity', 0.03, 'RUB', 'PAID'),
       ('rp-yesterday', 'rp-site-1', 4, 'RUB', 'PAID', current_date - interval '1 second', now(), 'infinity', NULL, NULL, NULL),
       ('rp-tomorrow', 'rp-site-1', 5, 'RUB', 'PAID', current_date + 1, now(), 'infinity', NULL, NULL, NULL);
-- the merchants are named after their sites here
UPDATE qiwi_bills SET merchant = site_id WHERE bill_id LIKE 'rp-%' AND site_id IS NOT NULL AND merchant = 'default';
SELECT bill_id, merchant, amount, status, qiwi_status, qiwi_amount, qiwi_currency
  FROM qiwi_bills_changed_today WHERE bill_id ~ '^rp-(today|yesterday|tomorrow)' ORDER BY bill_id;
ROLLBACK;

-- ---------- qiwi_reconciler_health ----------
-- (in a transaction that hides the other tests' open bills)
BEGIN;
DELETE FROM qiwi_bills WHERE status IN ('WAITING', 'CREATING');
SELECT open_bills, due_bills, lag, failing_bills, max_failures, bill_error FROM qiwi_reconciler_health;
INSERT INTO qiwi_bills (bill_id, amount, currency, status, checked_at, next_check_at, failures, last_error)
VALUES ('rp-h-1', 1, 'RUB', 'WAITING', now(), now() - interval '5 minutes', 3, 'QKNET: connection refused'),
       ('rp-h-2', 1, 'RUB', 'WAITING', now(), now() - interval '1 minute', 1, 'QK500: HTTP 503'),
       ('rp-h-3', 1, 'RUB', 'CREATING', now(), now() + interval '1 hour', 0, NULL),
       ('rp-h-4', 1, 'RUB', 'PAID', now(), now() - interval '1 day', 7, 'not open: not counted');
-- the merchants are named after their sites here
UPDATE qiwi_bills SET merchant = site_id WHERE bill_id LIKE 'rp-%' AND site_id IS NOT NULL AND merchant = 'default';
SELECT open_bills, due_bills, lag, failing_bills, max_failures, bill_error FROM qiwi_reconciler_health;
-- the Payin invoices the reconciler follows: CREATED, and PAID with money held
DELETE FROM qiwi_payin_invoices WHERE status IN ('CREATED', 'PAID');
SELECT payin_open_invoices, payin_due_invoices, payin_lag, payin_failing_invoices, payin_max_failures,
       payin_invoice_error FROM qiwi_reconciler_health;
INSERT INTO qiwi_payin_invoices (merchant, bill_id, amount, currency, status, capture, checked_at, next_check_at,
                                 failures, last_error)
VALUES ('rp', 'rp-i-1', 1, 'RUB', 'CREATED', 'auto', now(), now() - interval '3 minutes', 2, 'QK500: HTTP 503'),
       ('rp', 'rp-i-2', 2, 'RUB', 'PAID', 'manual', now(), now() - interval '1 minute', 0, NULL),
       ('rp', 'rp-i-3', 3, 'RUB', 'CREATED', 'auto', now(), now() + interval '1 hour', 1, 'QKNET: timeout'),
       ('rp', 'rp-i-4', 4, 'RUB', 'PAID', 'manual', now(), now() - interval '1 day', 5, 'captured: not followed'),
       ('rp', 'rp-i-5', 5, 'RUB', 'EXPIRED', 'auto', now(), now() - interval '1 day', 4, 'final: not followed');
INSERT INTO qiwi_payin_payments (merchant, payment_id, bill_id, status, amount, currency, captured_amount,
                                 capture_deadline, checked_at)
VALUES ('rp', 'rp-p-2', 'rp-i-2', 'COMPLETED', 2, 'RUB', 0, now() + interval '3 days', now()),
       ('rp', 'rp-p-4', 'rp-i-4', 'COMPLETED', 4, 'RUB', 4, now() + interval '3 days', now());
SELECT payin_open_invoices, payin_due_invoices, payin_lag, payin_failing_invoices, payin_max_failures,
       payin_invoice_error FROM qiwi_reconciler_health;
-- the bills' columns count no invoice
SELECT open_bills, due_bills, lag, failing_bills FROM qiwi_reconciler_health;
-- and the reconciler's own status, one row
SELECT count(*) AS rows, bool_and(h.rounds = s.rounds AND h.running = s.running) AS same_as_status
  FROM qiwi_reconciler_health h, qiwi_reconciler_status s;
-- qiwi_reconcile_now is refused here: no reconciler serves contrib_regression
-- (qiwi.database names another database), so nothing it made due would be
-- checked.  test/t/015_money_guards.pl makes these same items due in the
-- database the reconciler serves.
SELECT try($$SELECT qiwi_reconcile_now()$$);
ROLLBACK;

-- ---------- qiwi_reconcile_orders ----------
-- the shop's orders, in a table and columns whose names need quoting
CREATE TABLE "rp Orders" (id serial, "Bill ""Id""" text, total numeric(12,2), "Cancelled?" boolean);
INSERT INTO "rp Orders" ("Bill ""Id""", total, "Cancelled?")
VALUES ('rp-paid-1', 1499.9, false),		-- agrees (the same number)
       ('rp-paid-3', 60, false),			-- other amount
       ('rp-paid-4', 10, true),				-- paid but cancelled
       ('rp-mismatch', 1000, false),		-- QIWI reported other money
       ('rp-rejected', 33, false),			-- its bill was not paid
       ('rp-expired', 44, true),			-- not paid, and cancelled: agrees
       ('rp-failed', 55, NULL),				-- never created at QIWI
       ('rp-nobill', 12, false),			-- no such bill
       ('rp-nobill-cancelled', 13, true),	-- no such bill, cancelled: agrees
       (NULL, 14, false),					-- not paid through QIWI
       ('rp-site2-paid', 5, false),			-- two orders for one bill
       ('rp-site2-paid', 5, false),
       ('rp-open-waiting', 12.50, false);	-- still open: not final
-- (rp-paid-2 and rp-sb-1 are PAID and have no order)
SELECT * FROM qiwi_reconcile_orders('"rp Orders"', 'Bill "Id"', 'total', 'Cancelled?')
 WHERE bill_id LIKE 'rp-%';
-- without a cancelled column every order counts as live
SELECT * FROM qiwi_reconcile_orders('"rp Orders"', 'Bill "Id"', 'total')
 WHERE bill_id LIKE 'rp-%';

-- bad arguments: named, and no name is ever SQL
SELECT try($$SELECT * FROM qiwi_reconcile_orders(NULL, 'Bill "Id"', 'total')$$);
SELECT try($$SELECT * FROM qiwi_reconcile_orders('"rp Orders"', NULL, 'total')$$);
SELECT try($$SELECT * FROM qiwi_reconcile_orders('"rp Orders"', 'Bill "Id"', NULL)$$);
SELECT try($$SELECT * FROM qiwi_reconcile_orders('rp_no_such_table', 'id', 'total')$$);
SELECT try($$SELECT * FROM qiwi_reconcile_orders('"rp Orders"', 'total) FROM pg_authid --', 'total')$$);
SELECT try($$SELECT * FROM qiwi_reconcile_orders('"rp Orders"', 'Bill "Id"', 'total', 'Bill "Id"')$$);
SELECT p.prosecdef AS security_definer, p.proconfig
  FROM pg_proc p WHERE p.proname = 'qiwi_reconcile_orders';

-- ---------- with the caller's rights only ----------
SELECT c.relname, c.relacl, c.reloptions
  FROM pg_class c WHERE c.relname IN ('qiwi_money_per_day', 'qiwi_open_bills', 'qiwi_bills_changed_today',
                                      'qiwi_refunds_per_bill', 'qiwi_reconciler_health')
 ORDER BY 1;
CREATE ROLE regress_rp_reader;
GRANT USAGE ON SCHEMA public TO regress_rp_reader;
SET ROLE regress_rp_reader;
-- nothing is PUBLIC
SELECT try($$SELECT count(*) FROM qiwi_money_per_day$$);
SELECT try($$SELECT * FROM qiwi_reconcile_orders('"rp Orders"', 'Bill "Id"', 'total')$$);
RESET ROLE;
-- a grant on the views alone shows no money: the tables decide
GRANT SELECT ON qiwi_money_per_day, qiwi_open_bills, qiwi_bills_changed_today, qiwi_refunds_per_bill,
	qiwi_reconciler_health, qiwi_reconciler_status TO regress_rp_reader;
SET ROLE regress_rp_reader;
SELECT try($$SELECT count(*) FROM qiwi_money_per_day$$);
SELECT try($$SELECT count(*) FROM qiwi_open_bills$$);
SELECT try($$SELECT count(*) FROM qiwi_bills_changed_today$$);
SELECT try($$SELECT count(*) FROM qiwi_refunds_per_bill$$);
SELECT try($$SELECT count(*) FROM qiwi_reconciler_health$$);
RESET ROLE;
GRANT SELECT ON qiwi_bills TO regress_rp_reader;
SET ROLE regress_rp_reader;
SELECT try($$SELECT count(*) FROM qiwi_open_bills$$);
SELECT try($$SELECT count(*) FROM qiwi_money_per_day$$);
SELECT try($$SELECT * FROM qiwi_reconcile_orders('"rp Orders"', 'Bill "Id"', 'total')$$);
RESET ROLE;
GRANT SELECT ON qiwi_refunds, "rp Orders" TO regress_rp_reader;
SET ROLE regress_rp_reader;
SELECT paid, refunded FROM qiwi_money_per_day WHERE merchant = 'rp-site-2';
SELECT count(*) AS problems FROM qiwi_reconcile_orders('"rp Orders"', 'Bill "Id"', 'total') WHERE bill_id LIKE 'rp-%';
RESET ROLE;

-- ---------- a caller's planted functions and operators never run ----------
CREATE SCHEMA rp_mal;
CREATE TABLE rp_mal.hits (fn text);
CREATE FUNCTION rp_mal.trap(fn text) RETURNS void LANGUAGE sql AS $$ INSERT INTO rp_mal.hits VALUES (fn) $$;
CREATE FUNCTION rp_mal.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM rp_mal.trap('= (text)'); RETURN pg_catalog.texteq($1, $2); END$$;
CREATE OPERATOR rp_mal.= (LEFTARG = text, RIGHTARG = text, FUNCTION = rp_mal.text_eq);
CREATE FUNCTION rp_mal.num_eq(numeric, numeric) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM rp_mal.trap('= (numeric)'); RETURN pg_catalog.numeric_eq($1, $2); END$$;
CREATE OPERATOR rp_mal.= (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = rp_mal.num_eq);
CREATE FUNCTION rp_mal.now() RETURNS timestamptz LANGUAGE plpgsql AS
$$BEGIN PERFORM rp_mal.trap('now'); RETURN pg_catalog.now(); END$$;
CREATE FUNCTION rp_mal.format(text, text) RETURNS text LANGUAGE plpgsql AS
$$BEGIN PERFORM rp_mal.trap('format'); RETURN pg_catalog.format($1, $2); END$$;
SET search_path = rp_mal, pg_catalog, public;
-- the traps work in the caller's own SQL
SELECT 'a' = 'a' AS text_eq, 1.0 = 1 AS num_eq, now() IS NOT NULL AS now, format('%s', 'x') AS format;
SELECT fn FROM rp_mal.hits ORDER BY fn;
TRUNCATE rp_mal.hits;
-- but not in the function or the views
SELECT count(*) AS problems FROM qiwi_reconcile_orders('"rp Orders"', 'Bill "Id"', 'total', 'Cancelled?') WHERE bill_id LIKE 'rp-%';
SELECT count(*) >= 0 AS read FROM qiwi_money_per_day, qiwi_open_bills, qiwi_bills_changed_today,
	qiwi_refunds_per_bill, qiwi_reconciler_health;
RESET search_path;
SELECT count(*) AS trap_hits FROM rp_mal.hits;

DROP SCHEMA rp_mal CASCADE;
REVOKE ALL ON qiwi_money_per_day, qiwi_open_bills, qiwi_bills_changed_today, qiwi_refunds_per_bill,
	qiwi_reconciler_health, qiwi_reconciler_status, qiwi_bills, qiwi_refunds, "rp Orders" FROM regress_rp_reader;
REVOKE USAGE ON SCHEMA public FROM regress_rp_reader;
DROP ROLE regress_rp_reader;
DROP TABLE "rp Orders";
