-- qiwi_core_test: each section is one mechanism of qiwi_kassa's core
\echo Use "CREATE EXTENSION qiwi_core_test" to load this file. \quit

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
