-- The extension documents itself in the catalog (\dx+, \d+, \df+, \dT+):
-- every member object has a comment, so does every column of its tables,
-- views and composite types, and a function's comment names each of its
-- arguments.  Each query lists what is missing, so it prints no row.
CREATE TEMP VIEW qiwi_members AS
SELECT d.classid, d.objid FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qiwi_kassa');

-- what is checked: every kind of member
SELECT CASE WHEN m.classid = 'pg_class'::regclass
            THEN (SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'S' THEN 'sequence'
                                        ELSE c.relkind::text END
                    FROM pg_class c WHERE c.oid = m.objid)
            ELSE m.classid::regclass::text END AS kind,
       count(*)
  FROM qiwi_members m GROUP BY 1 ORDER BY 1;

-- members without a comment
SELECT pg_describe_object(m.classid, m.objid, 0) AS undocumented
  FROM qiwi_members m
 WHERE coalesce(obj_description(m.objid, m.classid::regclass::text), '') = ''
 ORDER BY 1;

-- columns without a comment (of tables, views and composite types)
CREATE TEMP VIEW qiwi_member_columns AS
SELECT c.oid AS relid, c.relname, a.attnum, a.attname
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'v', 'c')
   AND c.oid IN (SELECT m.objid FROM qiwi_members m WHERE m.classid = 'pg_class'::regclass
                 UNION ALL
                 SELECT t.typrelid FROM qiwi_members m JOIN pg_type t ON t.oid = m.objid
                  WHERE m.classid = 'pg_type'::regclass);
SELECT count(*) > 100 AS columns_checked FROM qiwi_member_columns;
SELECT format('%s.%I', relid::regclass, attname) AS undocumented_column
  FROM qiwi_member_columns
 WHERE coalesce(col_description(relid, attnum), '') = ''
 ORDER BY relname, attnum;

-- function arguments the function's comment does not name
SELECT p.oid::regprocedure AS function, a.name AS argument_not_in_comment
  FROM qiwi_members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid,
       unnest(p.proargnames, p.proargmodes) AS a(name, mode)
 WHERE coalesce(a.mode, 'i') IN ('i', 'b', 'v') AND a.name <> ''
   AND coalesce(obj_description(p.oid, 'pg_proc'), '') !~ ('\m' || a.name || '\M')
 ORDER BY 1, 2;

DROP VIEW qiwi_member_columns, qiwi_members;

-- the extension's comment (\dx) names every API it covers
SELECT api, obj_description(e.oid, 'pg_extension') LIKE '%the ' || api || ' API%' AS named
  FROM pg_extension e, unnest(ARRAY['Bill Payments', 'Payin', 'Pull']) AS api
 WHERE e.extname = 'qiwi_kassa'
 ORDER BY api;
