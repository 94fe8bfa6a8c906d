-- qiwi_core_test: each section is one mechanism of qiwi_kassa's core
\echo Use "CREATE EXTENSION qiwi_core_test" to load this file. \quit

-- ---------- paging (src/core/paging.c; test/t/019_core_paging.pl) ----------

-- the sandbox's paged list at url, streamed: each item, and the bytes the
-- function's multi-call memory (the pager's included) holds at that row
CREATE FUNCTION qiwi_core_test_pages(url text, OUT item jsonb, OUT memory bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'qiwi_core_test_pages' LANGUAGE C;

-- where qiwi_core_test_sync upserts the items
CREATE TABLE qiwi_core_test_synced (n int PRIMARY KEY, page int NOT NULL);

-- the list upserted page by page as a worker's sync would: the pages and
-- items taken, the pager's memory after page 2 and after the last, and the
-- failure of a page (SQLSTATE: message) or NULL; the consumer raises at
-- raise_at_page and stops after stop_at_page (0: never)
CREATE FUNCTION qiwi_core_test_sync(url text, raise_at_page int DEFAULT 0, stop_at_page int DEFAULT 0,
	OUT pages int, OUT items bigint, OUT memory_second bigint, OUT memory_last bigint,
	OUT failure text)
RETURNS record
AS 'MODULE_PATHNAME', 'qiwi_core_test_sync' LANGUAGE C STRICT;

-- ---------- money.c: asking before sending again ----------
CREATE FUNCTION qiwi_core_test_refund_asking(bill_id text, refund_id text, amount numeric)
RETURNS text LANGUAGE C STRICT AS 'MODULE_PATHNAME';

-- ---------- ratelimit.c: the rate limiter (test/t/018_core_rate_limit.pl) ----------
CREATE FUNCTION qiwi_core_test_rate_pass(name text, account text, requests int, window_ms int)
RETURNS bigint STRICT VOLATILE LANGUAGE C AS 'MODULE_PATHNAME';
CREATE FUNCTION qiwi_core_test_rate_limited_get(url text, name text, account text,
	requests int, window_ms int)
RETURNS text STRICT VOLATILE LANGUAGE C AS 'MODULE_PATHNAME';
CREATE FUNCTION qiwi_core_test_rate_limited_batch(url text, name text, account text,
	requests int, window_ms int, n int, concurrency int)
RETURNS text[] STRICT VOLATILE LANGUAGE C AS 'MODULE_PATHNAME';

-- ---------- notification.c: the trigger shell, with a toy API in trigger_shell.c (test/t/020_core_trigger_shell.pl) ----------

-- What the toy's apply step records, once a notification
CREATE TABLE qiwi_core_test_notified (id text PRIMARY KEY, amount numeric NOT NULL, merchant text NOT NULL);

CREATE FUNCTION qiwi_core_test_notification_verify() RETURNS trigger
AS 'MODULE_PATHNAME', 'qiwi_core_test_notification_verify' LANGUAGE C;
CREATE FUNCTION qiwi_core_test_notification_verify_failing() RETURNS trigger
AS 'MODULE_PATHNAME', 'qiwi_core_test_notification_verify_failing' LANGUAGE C;
CREATE FUNCTION qiwi_core_test_sign_notification(body jsonb, secret text DEFAULT NULL, merchant text DEFAULT NULL)
RETURNS text AS 'MODULE_PATHNAME', 'qiwi_core_test_sign_notification' LANGUAGE C;

-- ---------- the wire (wire.c): a call as an API's WireFormat makes it ----------
-- method: GET, PUT, POST, PATCH, DELETE; path: the sandbox's, after qiwi.api_url;
-- body: a JSON body, or form: name, value, ... pairs for a form body;
-- auth: bearer or basic; errors: json, envelope, wallet, short_block;
-- raise: raise a failure instead of returning it
CREATE FUNCTION qiwi_core_test_wire(method text, path text, body text DEFAULT NULL,
	form text[] DEFAULT NULL, auth text DEFAULT 'bearer', errors text DEFAULT 'json',
	raise boolean DEFAULT false, idempotent boolean DEFAULT true,
	OUT ok boolean, OUT answer text, OUT sqlstate text, OUT message text, OUT detail text,
	OUT retry_safe boolean, OUT blocked_until timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'qiwi_core_test_wire'
LANGUAGE C VOLATILE;

-- ---------- money.c: a lost answer whose ask the rate limiter refuses ----------
CREATE FUNCTION qiwi_core_test_refund_asking_limited(bill_id text, refund_id text, amount numeric,
													 account text)
RETURNS text LANGUAGE C STRICT AS 'MODULE_PATHNAME';
