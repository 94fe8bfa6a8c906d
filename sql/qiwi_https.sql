-- HTTPS: verification is always on; qiwi.ca_file adds a private CA.
-- The sandbox's certificate is for "localhost" only, from a throwaway CA.
CREATE FUNCTION https_requests() RETURNS int LANGUAGE sql AS $$
	SELECT (sandbox('GET', '/sandbox/stats', NULL, current_setting('qiwi_test.https_url'))->>'requests')::int
$$;
SELECT https_requests() AS before \gset
SELECT set_config('qiwi.api_url', current_setting('qiwi_test.https_url'), false) LIKE 'https://localhost:%' AS https;

-- The system trust store does not know the CA: TLS error, nothing sent
SELECT try($$SELECT qiwi_create_bill('tls-1', 10, expires_at => now() + interval '1 day')$$);
-- A CA file that does not exist
SET qiwi.ca_file = '/nonexistent/ca.pem';
SELECT try($$SELECT qiwi_create_bill('tls-1', 10, expires_at => now() + interval '1 day')$$);
SELECT https_requests() - :before AS requests_sent_without_trust;

-- With the private CA, the whole life cycle works over HTTPS
SELECT set_config('qiwi.ca_file', current_setting('qiwi_test.ca_file'), false) IS NOT NULL AS ca_set;
SELECT bill_id, amount, status FROM qiwi_create_bill('tls-1', 10, expires_at => now() + interval '1 day');
SELECT sandbox('POST', '/sandbox/bills/tls-1/pay', NULL, current_setting('qiwi_test.https_url'))->'status'->>'value' AS paid;
SELECT status FROM qiwi_bill_status('tls-1');
SELECT refund_id, amount, status FROM qiwi_refund('tls-1', 'r-1', 10);
SELECT status FROM qiwi_refund_status('tls-1', 'r-1');
SELECT bill_id, status FROM qiwi_create_bill('tls-2', 5, expires_at => now() + interval '1 day');
SELECT status FROM qiwi_cancel_bill('tls-2');

-- The right CA but the wrong host name: the certificate names localhost,
-- the URL says 127.0.0.1
SELECT https_requests() AS before \gset
SELECT set_config('qiwi.api_url', current_setting('qiwi_test.https_wrong_host_url'), false) LIKE 'https://127.0.0.1:%' AS wrong_host;
SELECT try($$SELECT qiwi_bill_status('tls-1')$$);
SELECT https_requests() - :before AS requests_sent_to_wrong_host;

RESET qiwi.api_url;
RESET qiwi.ca_file;
