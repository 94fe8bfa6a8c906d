-- The database of docs/tutorial.md before its first statement: a helper
-- with which SQL plays the buyer, through the sandbox's control endpoints
-- (the sandbox is the QIWI that qiwi.api_url names).  test/demo.sh --keep
-- runs this file in the database qiwi_tutorial it leaves for the reader;
-- the regression test qiwi_tutorial runs it the same way.
CREATE SCHEMA sandbox;
CREATE TABLE sandbox.answer (line text);

-- A string quoted for the shell
CREATE FUNCTION sandbox.shell_quote(s text) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT '''' || replace(s, '''', '''\''''') || '''' $$;

-- Call a control endpoint of the sandbox (METHOD PATH [JSON body]) with
-- curl and return its JSON answer
CREATE FUNCTION sandbox(method text, path text, body jsonb DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	cmd text := 'curl -s -X ' || sandbox.shell_quote(method) || ' ' ||
	            sandbox.shell_quote(current_setting('qiwi.api_url') || path);
BEGIN
	IF body IS NOT NULL THEN
		cmd := cmd || ' -H ''Content-Type: application/json'' --data-binary ' || sandbox.shell_quote(body::text);
	END IF;
	DELETE FROM sandbox.answer;
	EXECUTE format('COPY sandbox.answer FROM PROGRAM %L WITH (FORMAT csv, QUOTE %L, DELIMITER %L)',
	               cmd, E'\x01', E'\x02');
	RETURN (SELECT string_agg(line, E'\n') FROM sandbox.answer)::jsonb;
END $$;
