-- Privilege escalation through search_path: SQL that the extension runs as
-- its owner (the bookkeeping, the trigger) must never call a function or
-- operator that the caller planted in a schema of its own or in pg_temp.
SELECT status FROM qiwi_create_bill('sp-paid', 50, expires_at => now() + interval '1 day');
SELECT sandbox('POST', '/sandbox/bills/sp-paid/pay') -> 'status' ->> 'value' AS paid;
SELECT status FROM qiwi_create_bill('sp-cancel', 5, expires_at => now() + interval '1 day');
SELECT status FROM qiwi_create_bill('sp-wait', 5, expires_at => now() + interval '1 day');

CREATE ROLE regress_mallory;
CREATE SCHEMA mal AUTHORIZATION regress_mallory;
GRANT USAGE ON SCHEMA public TO regress_mallory;
GRANT INSERT ON qiwi_notifications TO regress_mallory;
GRANT USAGE ON SEQUENCE qiwi_notifications_id_seq TO regress_mallory;
-- the README's grants to a shop's role: every function that calls QIWI
GRANT EXECUTE ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text, text),
	qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb, text),
	qiwi_cancel_bill(text, text), qiwi_refund(text, text, numeric, text, text), qiwi_reconcile_now(),
	qiwi_bill_status(text, text), qiwi_refund_status(text, text, text)
	TO regress_mallory;

SET ROLE regress_mallory;
-- Every trap records who ran it and, run by anyone else, tries to make
-- mallory a superuser
CREATE TABLE mal.hits (fn text, run_by name);
GRANT INSERT ON mal.hits TO PUBLIC;
CREATE FUNCTION mal.trap(fn text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO mal.hits VALUES (fn, current_user);
	IF current_user <> 'regress_mallory' THEN
		EXECUTE 'ALTER ROLE regress_mallory SUPERUSER';
	END IF;
END $$;
CREATE FUNCTION mal.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END$$;
CREATE FUNCTION mal.now() RETURNS timestamptz LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('now'); RETURN pg_catalog.now(); END$$;
CREATE FUNCTION mal.make_interval(secs double precision) RETURNS interval LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('make_interval'); RETURN pg_catalog.make_interval(secs => secs); END$$;
CREATE FUNCTION mal.power(double precision, double precision) RETURNS double precision LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('power'); RETURN pg_catalog.power($1, $2); END$$;
CREATE FUNCTION mal.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('pg_notify'); PERFORM pg_catalog.pg_notify($1, $2); END$$;
CREATE FUNCTION mal.lower(text) RETURNS text LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('lower'); RETURN pg_catalog.lower($1); END$$;
CREATE FUNCTION mal.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('= (text)'); RETURN pg_catalog.texteq($1, $2); END$$;
CREATE OPERATOR mal.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mal.text_eq);
CREATE FUNCTION mal.ts_le(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('<= (timestamptz)'); RETURN pg_catalog.timestamptz_le($1, $2); END$$;
CREATE OPERATOR mal.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = mal.ts_le);
CREATE FUNCTION mal.num_gt(numeric, numeric) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('> (numeric)'); RETURN pg_catalog.numeric_gt($1, $2); END$$;
CREATE OPERATOR mal.> (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = mal.num_gt);
-- and the same in pg_temp, which a session may put first in its path
CREATE FUNCTION pg_temp.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('pg_temp.clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END$$;
CREATE FUNCTION pg_temp.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM mal.trap('pg_temp.= (text)'); RETURN pg_catalog.texteq($1, $2); END$$;
CREATE OPERATOR pg_temp.= (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.text_eq);

-- The traps work: called from mallory's own SQL they fire (as mallory)
SET search_path = mal, pg_catalog, public;
SELECT clock_timestamp() IS NOT NULL AS planted_clock_fires, 'a' = 'a' AS planted_eq_fires;
SELECT fn, run_by FROM mal.hits ORDER BY fn;
TRUNCATE mal.hits;

-- Through every function that talks to QIWI or writes the tables
SELECT status FROM qiwi_bill_status('sp-wait');
SELECT status FROM qiwi_create_bill('sp-new', 7, expires_at => pg_catalog.now() + interval '1 day');
-- (no reconciler serves contrib_regression: the two calls that rely on it
-- are refused before they run any SQL; test/t/015_money_guards.pl runs them
-- with a planted path in the database the reconciler serves)
SELECT try($$SELECT qiwi_create_bill_after_commit('sp-later', 8, expires_at => pg_catalog.now() + interval '1 day')$$, false);
SELECT status FROM qiwi_cancel_bill('sp-cancel');
SELECT status FROM qiwi_refund('sp-paid', 'sp-r1', 1);
SELECT status FROM qiwi_refund_status('sp-paid', 'sp-r1');
SELECT try($$SELECT qiwi_reconcile_now()$$, false);
-- the trigger, with a signed notification (signed by the superuser below)
RESET ROLE;
RESET search_path;
CREATE TABLE sp_signed AS
	SELECT qiwi_sign_notification(n) AS signature, n AS body
	  FROM (SELECT jsonb_build_object('bill', jsonb_build_object(
			'siteId', '270305', 'billId', 'sp-wait',
			'amount', jsonb_build_object('value', '5.00', 'currency', 'RUB'),
			'status', jsonb_build_object('value', 'PAID')), 'version', '1') AS n) s;
GRANT SELECT ON sp_signed TO regress_mallory;
SET ROLE regress_mallory;
SET search_path = mal, pg_catalog, public;
INSERT INTO qiwi_notifications (signature, body) SELECT signature, body FROM sp_signed;
-- pg_temp first in the path
SET search_path = pg_temp, mal, pg_catalog, public;
SELECT status FROM qiwi_bill_status('sp-new');
SELECT status FROM qiwi_refund('sp-paid', 'sp-r2', 1);
DROP OPERATOR pg_temp.= (text, text);
DROP FUNCTION pg_temp.text_eq(text, text), pg_temp.clock_timestamp();
RESET ROLE;
RESET search_path;

-- No trap ran, and mallory is what it was
SELECT DISTINCT fn, run_by FROM mal.hits ORDER BY fn;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_mallory';
SELECT bill_id, status FROM qiwi_bills WHERE bill_id LIKE 'sp-%' ORDER BY 1;
SELECT verified, applied, error FROM qiwi_notifications WHERE bill_id = 'sp-wait';

DROP TABLE sp_signed;
DROP SCHEMA mal CASCADE;
REVOKE ALL ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text, text),
	qiwi_create_bill_after_commit(text, numeric, text, timestamptz, text, text, text, text, jsonb, text),
	qiwi_cancel_bill(text, text), qiwi_refund(text, text, numeric, text, text), qiwi_reconcile_now(),
	qiwi_bill_status(text, text), qiwi_refund_status(text, text, text)
	FROM regress_mallory;
REVOKE ALL ON qiwi_notifications FROM regress_mallory;
REVOKE ALL ON SEQUENCE qiwi_notifications_id_seq FROM regress_mallory;
REVOKE USAGE ON SCHEMA public FROM regress_mallory;
DROP ROLE regress_mallory;
