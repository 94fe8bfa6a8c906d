-- Duties: qiwi_grant(role, duty) grants exactly what qiwi_duties lists, for
-- each duty; every member of the extension is either in a duty or listed
-- here as in none; a plain role cannot grant itself a duty; bad arguments
-- are refused, naming them.

-- What each duty grants (the table of the documentation)
SELECT duty, privilege, object_type, name, columns FROM qiwi_duties
 ORDER BY duty, object_type, name, privilege;
-- every name resolves to an object of the extension
SELECT duty, name FROM qiwi_duties WHERE object IS NULL;

-- Every member function, table, view and sequence, with the duties that
-- grant it and whether PUBLIC may use it: a new object shows here and
-- needs a decision
CREATE TEMP VIEW g_members AS
SELECT m.classid, m.objid, (pg_identify_object(m.classid, m.objid, 0)).identity AS object,
       coalesce((SELECT proname FROM pg_proc WHERE m.classid = 'pg_proc'::regclass AND oid = m.objid),
                (SELECT relname FROM pg_class WHERE m.classid = 'pg_class'::regclass AND oid = m.objid))::text AS name,
       CASE WHEN m.classid = 'pg_proc'::regclass THEN 'FUNCTION'
            WHEN (SELECT relkind FROM pg_class WHERE oid = m.objid) = 'S' THEN 'SEQUENCE'
            ELSE 'TABLE' END AS object_type
  FROM pg_depend m
 WHERE m.refclassid = 'pg_extension'::regclass AND m.deptype = 'e'
   AND m.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qiwi_kassa')
   AND (m.classid = 'pg_proc'::regclass
        OR (m.classid = 'pg_class'::regclass
            AND (SELECT relkind FROM pg_class WHERE oid = m.objid) IN ('r', 'v', 'S')));
SELECT g.object_type, g.name,
       coalesce((SELECT string_agg(DISTINCT d.duty, ', ') FROM qiwi_duties d WHERE d.object = g.object),
                '(none)') AS duties,
       CASE g.object_type
            WHEN 'FUNCTION' THEN (SELECT coalesce(p.proacl, acldefault('f', p.proowner))::text LIKE '%{=X/%'
                                          OR coalesce(p.proacl, acldefault('f', p.proowner))::text LIKE '%,=X/%'
                                    FROM pg_proc p WHERE p.oid = g.objid)
            ELSE (SELECT coalesce(c.relacl::text, '') ~ '(^|[{,])=' FROM pg_class c WHERE c.oid = g.objid)
       END AS public
  FROM g_members g
 ORDER BY g.object_type, g.name;

-- The privileges a role has on the extension's objects beyond what a role
-- without any grant has (PUBLIC's), as "privilege" or "privilege (columns)"
CREATE ROLE regress_g_none;
CREATE FUNCTION g_privileges(r name) RETURNS TABLE (object text, privilege text) LANGUAGE sql AS $$
WITH held AS (
	SELECT g.object, p.priv, NULL::text AS col
	  FROM g_members g, unnest(ARRAY['EXECUTE']) p(priv)
	 WHERE g.object_type = 'FUNCTION' AND has_function_privilege(r, g.objid, p.priv)
	   AND NOT has_function_privilege('regress_g_none', g.objid, p.priv)
	UNION ALL
	SELECT g.object, p.priv, NULL
	  FROM g_members g, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p(priv)
	 WHERE g.object_type = 'TABLE' AND has_table_privilege(r, g.objid, p.priv)
	   AND NOT has_table_privilege('regress_g_none', g.objid, p.priv)
	UNION ALL
	SELECT g.object, p.priv, a.attname::text
	  FROM g_members g, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) p(priv),
	       pg_attribute a
	 WHERE g.object_type = 'TABLE' AND a.attrelid = g.objid AND a.attnum > 0 AND NOT a.attisdropped
	   AND NOT has_table_privilege(r, g.objid, p.priv)
	   AND has_column_privilege(r, g.objid, a.attnum, p.priv)
	   AND NOT has_column_privilege('regress_g_none', g.objid, a.attnum, p.priv)
	UNION ALL
	SELECT g.object, p.priv, NULL
	  FROM g_members g, unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) p(priv)
	 WHERE g.object_type = 'SEQUENCE' AND has_sequence_privilege(r, g.objid, p.priv)
	   AND NOT has_sequence_privilege('regress_g_none', g.objid, p.priv))
SELECT object, priv || coalesce(' (' || string_agg(col, ', ' ORDER BY col) || ')', '')
  FROM held GROUP BY object, priv
$$;
-- what qiwi_duties says a duty grants, in the same form
CREATE FUNCTION g_listed(duty_name text) RETURNS TABLE (object text, privilege text) LANGUAGE sql AS $$
SELECT d.object, d.privilege || coalesce(' (' || (SELECT string_agg(c, ', ' ORDER BY c) FROM unnest(d.columns) c) || ')', '')
  FROM qiwi_duties d WHERE d.duty = duty_name
$$;
SELECT count(*) AS privileges_of_a_role_without_grants FROM g_privileges('regress_g_none');

-- ---------- each duty: exactly what it lists ----------
CREATE ROLE regress_g_read;
CREATE ROLE regress_g_pay;
CREATE ROLE regress_g_refund;
CREATE ROLE regress_g_monitor;
CREATE ROLE regress_g_notify;
SELECT count(*) AS privileges_before FROM g_privileges('regress_g_read');
SELECT qiwi_grant('regress_g_read', 'read') AS read,
       qiwi_grant('regress_g_pay', 'pay') AS pay,
       qiwi_grant('regress_g_refund', 'refund') AS refund,
       qiwi_grant('regress_g_monitor', 'monitor') AS monitor,
       qiwi_grant('regress_g_notify', 'notify') AS notify;
-- what each role may do beyond PUBLIC, and any difference with the list
-- (none: it may do exactly what its duty lists, and nothing else)
SELECT d.duty, g.object_type, g.name, p.privilege
  FROM unnest(ARRAY['read', 'pay', 'refund', 'monitor', 'notify']) d(duty),
       g_privileges('regress_g_' || d.duty) p JOIN g_members g USING (object)
 ORDER BY 1, 2, 3, 4;
SELECT d.duty, x.*
  FROM unnest(ARRAY['read', 'pay', 'refund', 'monitor', 'notify']) d(duty),
       LATERAL ((SELECT 'held, not listed' AS problem, * FROM g_privileges('regress_g_' || d.duty)
                 EXCEPT SELECT 'held, not listed', * FROM g_listed(d.duty))
                UNION ALL
                (SELECT 'listed, not held', * FROM g_listed(d.duty)
                 EXCEPT SELECT 'listed, not held', * FROM g_privileges('regress_g_' || d.duty))) x;

-- Idempotent: again, the same count and the same ACLs
CREATE TEMP TABLE g_acls AS
SELECT md5(string_agg(coalesce(c.relacl::text, '') || coalesce(a.attacl::text, ''), '|' ORDER BY c.oid, a.attnum)) AS rels,
       (SELECT md5(string_agg(coalesce(p.proacl::text, ''), '|' ORDER BY p.oid)) FROM pg_proc p
         WHERE p.oid IN (SELECT objid FROM g_members)) AS procs
  FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE c.oid IN (SELECT objid FROM g_members);
SELECT qiwi_grant('regress_g_read', 'read') AS read, qiwi_grant('regress_g_monitor', 'monitor') AS monitor,
       qiwi_grant('regress_g_pay', 'pay') AS pay;
SELECT (SELECT md5(string_agg(coalesce(c.relacl::text, '') || coalesce(a.attacl::text, ''), '|' ORDER BY c.oid, a.attnum))
          FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
         WHERE c.oid IN (SELECT objid FROM g_members)) = rels AS same_table_acls,
       (SELECT md5(string_agg(coalesce(p.proacl::text, ''), '|' ORDER BY p.oid)) FROM pg_proc p
         WHERE p.oid IN (SELECT objid FROM g_members)) = procs AS same_function_acls
  FROM g_acls;

-- ---------- what the roles can and cannot do, by doing it ----------
-- (an unknown merchant fails after the privilege check, before anything is sent)
SELECT sandbox_requests() AS requests_before \gset
SET ROLE regress_g_read;
SELECT try('SELECT count(*) FROM qiwi_bills') AS read_bills,
       try('SELECT count(*) FROM qiwi_money_by_status') AS read_report,
       try('SELECT count(*) FROM qiwi_payin_tokens') AS read_tokens,
       try($$SELECT qiwi_bill_status('g-1', merchant => 'regress_g_nowhere')$$, false) AS read_status_call;
SET ROLE regress_g_pay;
SELECT try($$SELECT qiwi_create_bill('g-1', 10, merchant => 'regress_g_nowhere')$$, false) AS pay_create,
       try($$SELECT qiwi_payin_invoice('g-1', merchant => 'regress_g_nowhere')$$, false) AS pay_status_call,
       try($$SELECT qiwi_refund('g-1', 'r-1', 1, merchant => 'regress_g_nowhere')$$, false) AS pay_refund,
       try('SELECT count(*) FROM qiwi_bills') AS pay_reads_bills;
SET ROLE regress_g_refund;
SELECT try($$SELECT qiwi_refund('g-1', 'r-1', 1, merchant => 'regress_g_nowhere')$$, false) AS refund_refund,
       try($$SELECT qiwi_payin_capture('p-1', 'c-1', merchant => 'regress_g_nowhere')$$, false) AS refund_capture,
       try($$SELECT qiwi_create_bill('g-1', 10, merchant => 'regress_g_nowhere')$$, false) AS refund_create;
SET ROLE regress_g_monitor;
SELECT try('SELECT * FROM qiwi_reconciler_health') AS monitor_health,
       try('SELECT count(*) FROM qiwi_open_bills') AS monitor_open_bills,
       try('SELECT count(*) FROM qiwi_payin_holds') AS monitor_holds,
       try('SELECT count(*) FILTER (WHERE verified IS NOT TRUE) FROM qiwi_notifications') AS monitor_notifications;
SELECT try('SELECT customer FROM qiwi_bills') AS monitor_customer,
       try('SELECT body FROM qiwi_notifications') AS monitor_bodies,
       try('SELECT * FROM qiwi_refunds_per_bill') AS monitor_other_report;
SET ROLE regress_g_notify;
SELECT try($$INSERT INTO qiwi_notifications (signature, body) VALUES ('00', '{"bill": {"billId": "g-n"}}')$$) AS notify_insert,
       try('SELECT count(*) FROM qiwi_notifications') AS notify_reads;
RESET ROLE;
SELECT verified, error IS NOT NULL AS has_error FROM qiwi_notifications WHERE bill_id = 'g-n';
SELECT sandbox_requests() - :requests_before AS requests_sent;

-- ---------- a plain role cannot grant itself a duty ----------
CREATE ROLE regress_g_mallory;
SET ROLE regress_g_mallory;
SELECT qiwi_grant('regress_g_mallory', 'pay');
RESET ROLE;
-- even if EXECUTE on qiwi_grant were granted by mistake: it grants as the caller
GRANT EXECUTE ON FUNCTION qiwi_grant(regrole, text) TO regress_g_mallory;
SET ROLE regress_g_mallory;
\set VERBOSITY terse
-- (its detail names the extension's owner, whose name depends on the installation)
SELECT qiwi_grant('regress_g_mallory', 'pay');
\set VERBOSITY default
-- nor through a role holding a duty (privileges without grant option)
SET ROLE regress_g_read;
SELECT try($$GRANT SELECT ON qiwi_bills TO regress_g_mallory$$) AS regrant;
RESET ROLE;
-- all it holds is the EXECUTE given by mistake
SELECT g.name, p.privilege FROM g_privileges('regress_g_mallory') p JOIN g_members g USING (object);

-- ---------- bad arguments ----------
SELECT qiwi_grant('regress_g_read', 'admin');
SELECT qiwi_grant('regress_g_read', 'READ');
SELECT qiwi_grant('regress_g_read', NULL);
SELECT qiwi_grant(NULL, 'read');
SELECT qiwi_grant('-', 'read');
SELECT qiwi_grant('regress_g_nobody', 'read');
-- a name that would be quoted is quoted
CREATE ROLE "regress_g Odd""name";
SELECT qiwi_grant('"regress_g Odd""name"', 'notify');
SELECT g.name, p.privilege FROM g_privileges('regress_g Odd"name') p JOIN g_members g USING (object)
 ORDER BY 1, 2;

-- An object of the same name elsewhere is never granted
CREATE SCHEMA regress_g_plant;
CREATE FUNCTION regress_g_plant.qiwi_create_bill(text) RETURNS text LANGUAGE sql AS $$ SELECT $1 $$;
REVOKE ALL ON FUNCTION regress_g_plant.qiwi_create_bill(text) FROM PUBLIC;
SELECT qiwi_grant('regress_g_pay', 'pay') AS pay;
SELECT has_function_privilege('regress_g_pay', 'regress_g_plant.qiwi_create_bill(text)', 'EXECUTE') AS planted_granted;
DROP SCHEMA regress_g_plant CASCADE;

-- A name the installation lacks is refused, before anything is granted
BEGIN;
ALTER EXTENSION qiwi_kassa DROP FUNCTION qiwi_payin_card_check(text, text);
SELECT duty, name FROM qiwi_duties WHERE object IS NULL;
SELECT qiwi_grant('regress_g_none', 'pay');
ROLLBACK;
SELECT count(*) AS none_privileges FROM g_privileges('regress_g_none');

DROP OWNED BY regress_g_read, regress_g_pay, regress_g_refund, regress_g_monitor, regress_g_notify,
	regress_g_mallory, "regress_g Odd""name";
DROP ROLE regress_g_read, regress_g_pay, regress_g_refund, regress_g_monitor, regress_g_notify,
	regress_g_mallory, regress_g_none, "regress_g Odd""name";
DROP FUNCTION g_privileges(name), g_listed(text);
DROP VIEW g_members;
