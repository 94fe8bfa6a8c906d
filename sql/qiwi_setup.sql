-- Set-up shared by the qiwi_* regression tests: the extension and helpers.
CREATE EXTENSION qiwi_kassa;

-- The GUCs exist with their documented defaults
SELECT name, setting, unit, context FROM pg_settings
 WHERE name IN ('qiwi.timeout', 'qiwi.connect_timeout', 'qiwi.ca_file')
 ORDER BY name;
SELECT current_setting('qiwi.api_url') LIKE 'http://127.0.0.1:%' AS api_url_points_at_sandbox;

-- Quote a string for the shell
CREATE FUNCTION shell_quote(s text) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT '''' || replace(s, '''', '''\''''') || '''' $$;

CREATE UNLOGGED TABLE sandbox_output (line text);

-- Call a control endpoint of the sandbox (through curl) and return its JSON
CREATE FUNCTION sandbox(method text, path text, body text DEFAULT NULL,
                        base text DEFAULT current_setting('qiwi_test.sandbox_url'))
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	cmd text;
	result text;
BEGIN
	cmd := format('curl -s --cacert %s -X %s %s',
	              shell_quote(current_setting('qiwi_test.ca_file')), method, shell_quote(base || path));
	IF body IS NOT NULL THEN
		cmd := cmd || ' -H ''Content-Type: application/json'' --data-binary ' || shell_quote(body);
	END IF;
	TRUNCATE sandbox_output;
	EXECUTE format('COPY sandbox_output FROM PROGRAM %L WITH (FORMAT csv, QUOTE %L, DELIMITER %L)',
	               cmd, E'\x01', E'\x02');
	SELECT string_agg(line, E'\n') INTO result FROM sandbox_output;
	RETURN result::jsonb;
END $$;

-- Number of API requests the sandbox has received so far
CREATE FUNCTION sandbox_requests() RETURNS int LANGUAGE sql
AS $$ SELECT (sandbox('GET', '/sandbox/stats')->>'requests')::int $$;

-- Run a statement; return 'ok' or "SQLSTATE: message | detail" of its error
CREATE FUNCTION try(stmt text, with_detail boolean DEFAULT true) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
	msg text;
	detail text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
	IF with_detail AND detail <> '' THEN
		-- the sandbox makes a new traceId per error
		msg := msg || ' | ' || regexp_replace(detail, 'traceId "[0-9a-f]+"', 'traceId "…"');
	END IF;
	RETURN state || ': ' || msg;
END $$;

SELECT sandbox('POST', '/sandbox/reset');
SELECT sandbox_requests() AS requests_at_start;
