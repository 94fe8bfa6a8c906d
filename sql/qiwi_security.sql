-- Secret hygiene and privileges: who may read the key, who may move money.
SELECT status FROM qiwi_create_bill('sec-0', 1, expires_at => now() + interval '1 day');
CREATE ROLE regress_qiwi_clerk;
GRANT USAGE ON SCHEMA public TO regress_qiwi_clerk;

-- By default: read-only calls are public, money-moving ones are not
SELECT p.proname,
       has_function_privilege('regress_qiwi_clerk', p.oid, 'EXECUTE') AS clerk_may_call
  FROM pg_proc p WHERE p.proname LIKE 'qiwi\_%' ORDER BY 1;
SELECT c.relname, has_table_privilege('regress_qiwi_clerk', c.oid, 'SELECT') AS clerk_may_read
  FROM pg_class c WHERE c.relname IN ('qiwi_bills', 'qiwi_refunds') ORDER BY 1;

-- a reading call shows the buyer's details: it needs a grant too
SET ROLE regress_qiwi_clerk;
SELECT try($$SELECT qiwi_bill_status('sec-0')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION qiwi_bill_status(text, text) TO regress_qiwi_clerk;

SET ROLE regress_qiwi_clerk;
-- The key cannot be read by any route
SELECT try($$SHOW qiwi.secret_key$$);
SELECT try($$SELECT current_setting('qiwi.secret_key')$$);
SELECT count(*) AS visible_in_pg_settings FROM pg_settings WHERE name = 'qiwi.secret_key';
SELECT try($$SELECT * FROM pg_file_settings$$);
-- ... nor changed, nor can the requests be pointed elsewhere
SELECT try($$SET qiwi.secret_key = 'mine'$$);
SELECT try($$SET qiwi.api_url = 'http://attacker.example'$$);
SELECT try($$SET qiwi.ca_file = '/tmp/attacker-ca.pem'$$);
SELECT try($$SELECT set_config('qiwi.api_url', 'http://attacker.example', false)$$);
-- The timeouts are the caller's own business
SET qiwi.timeout = '2s';
RESET qiwi.timeout;

-- A read-only call works with the key it cannot see, and is recorded even
-- though the role cannot write the table itself
SELECT bill_id, status FROM qiwi_bill_status('sec-0');
SELECT try($$SELECT * FROM qiwi_bills$$);
SELECT try($$INSERT INTO qiwi_bills (bill_id, amount, currency, status, checked_at) VALUES ('forged', 1, 'RUB', 'PAID', now())$$);
-- Money does not move without a grant
SELECT try($$SELECT qiwi_create_bill('sec-1', 10)$$);
SELECT try($$SELECT qiwi_refund('sec-0', 'sec-r1', 1)$$);
SELECT try($$SELECT qiwi_cancel_bill('sec-0')$$);
RESET ROLE;

-- The owner grants it
GRANT EXECUTE ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text, text)
	TO regress_qiwi_clerk;
SET ROLE regress_qiwi_clerk;
SELECT bill_id, amount, status FROM qiwi_create_bill('sec-1', 10, expires_at => now() + interval '1 day');
RESET ROLE;
SELECT bill_id, status FROM qiwi_bills WHERE bill_id IN ('sec-0', 'sec-1') ORDER BY 1;

-- The key is in no query text that pg_stat_activity shows
SELECT count(*) AS sessions_showing_key FROM pg_stat_activity
 WHERE strpos(query, current_setting('qiwi.secret_key')) > 0;

REVOKE ALL ON FUNCTION qiwi_create_bill(text, numeric, text, timestamptz, text, text, text, text, jsonb, text, text)
	FROM regress_qiwi_clerk;
REVOKE ALL ON FUNCTION qiwi_bill_status(text, text) FROM regress_qiwi_clerk;
REVOKE USAGE ON SCHEMA public FROM regress_qiwi_clerk;
DROP ROLE regress_qiwi_clerk;
