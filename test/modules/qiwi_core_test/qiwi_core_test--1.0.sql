-- qiwi_core_test: each section is one mechanism of qiwi_kassa's core
\echo Use "CREATE EXTENSION qiwi_core_test" to load this file. \quit

-- ---------- money.c: asking before sending again ----------
CREATE FUNCTION qiwi_core_test_refund_asking(bill_id text, refund_id text, amount numeric)
RETURNS text LANGUAGE C STRICT AS 'MODULE_PATHNAME';
