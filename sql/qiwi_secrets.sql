-- Where the key may be kept.  Not per database, per role or per function:
-- pg_db_role_setting and pg_proc are readable by every role.
SELECT try(format('ALTER DATABASE %I SET qiwi.secret_key = %L', current_database(), 'per-database-key'));
SELECT try($$ALTER ROLE CURRENT_USER SET qiwi.secret_key = 'per-role-key'$$);
SELECT try($$ALTER ROLE ALL SET qiwi.secret_key = 'all-roles-key'$$);
SELECT try(format('ALTER ROLE CURRENT_USER IN DATABASE %I SET "QIWI".secret_key = %L',
                  current_database(), 'per-role-and-database-key'));
SELECT try(format('ALTER ROLE CURRENT_USER IN DATABASE %I SET QIWI.SECRET_KEY = %L',
                  current_database(), 'per-role-and-database-key'));
SELECT try($$CREATE FUNCTION keyed() RETURNS int LANGUAGE sql SET qiwi.secret_key = 'per-function-key' AS 'SELECT 1'$$);
SELECT try(format('ALTER DATABASE %I SET qiwi.secret_key_file = %L', current_database(), '/tmp/key'));
SELECT count(*) AS settings_naming_the_key FROM pg_db_role_setting
 WHERE array_to_string(setconfig, ' ') ILIKE '%secret_key%';

-- A key stored there before this rule existed is not used, and a warning
-- says so at every connection (without the value) until it is removed
SET allow_system_table_mods = on;
WITH stored AS (
	UPDATE pg_db_role_setting SET setconfig = setconfig || '{qiwi.secret_key=stored-before-the-upgrade}'::text[]
	 WHERE setrole = 0 AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
	RETURNING 1)
SELECT count(*) AS stored FROM stored;
RESET allow_system_table_mods;
\c
SELECT current_setting('qiwi.secret_key') = 'stored-before-the-upgrade' AS stored_key_in_effect;
SELECT bill_id, status FROM qiwi_bill_status('sec-0');
SELECT try(format('ALTER DATABASE %I RESET qiwi.secret_key', current_database()));
SELECT count(*) AS settings_naming_the_key FROM pg_db_role_setting
 WHERE array_to_string(setconfig, ' ') ILIKE '%secret_key%';
\c
SELECT 'no warning any more' AS reconnected;

-- ALTER SYSTEM still sets it (in postgresql.auto.conf, readable by the
-- server's OS user only), and the file is checked when it is named
ALTER SYSTEM SET qiwi.secret_key = 'set-by-alter-system';
ALTER SYSTEM RESET qiwi.secret_key;
ALTER SYSTEM SET qiwi.secret_key_file = '/nonexistent/qiwi-key';

-- A key too short to be hidden in the logs (they hide it wherever its text
-- appears: a one-letter key would make "existing" read "e********isting")
-- is refused wherever it is set, and no error shows it
ALTER SYSTEM SET qiwi.secret_key = 'e';
SELECT try($$SET qiwi.secret_key = 'seven77'$$);
SELECT try($$SELECT set_config('qiwi.secret_key', 'x', false)$$);
SELECT length(current_setting('qiwi.secret_key')) >= 8 AS key_in_effect_unchanged;
