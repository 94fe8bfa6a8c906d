-- Payin's scenarios end to end, each run for two merchants at once: sc_http
-- on the HTTP sandbox and sc_tls on the HTTPS one (verified), each with its
-- own site, keys and sandbox.  The buyer acts through the sandbox's control
-- endpoints and time moves by the sandbox's Payin clock, never by sleeping.
-- Requests are counted on the sandbox that received them.
SELECT set_config('qiwi.ca_file', current_setting('qiwi_test.ca_file'), false) IS NOT NULL AS ca_set;

CREATE TABLE sc_merchant (merchant text PRIMARY KEY, site text, base text);
INSERT INTO sc_merchant VALUES ('sc_http', 'sc-h', current_setting('qiwi_test.sandbox_url')),
                               ('sc_tls', 'sc-t', current_setting('qiwi_test.https_url'));
SELECT merchant, sandbox('POST', '/sandbox/payin/reset', NULL, base)->>'ok' AS reset,
       sandbox('POST', '/sandbox/payin/sites',
               format('{"siteId": "%s", "apiKey": "api-%s", "notificationKey": "notify-%s"}', site, site, site),
               base)->>'holdHours' AS hold_hours
  FROM sc_merchant ORDER BY merchant;
DO $$ DECLARE r record; BEGIN
	FOR r IN SELECT * FROM sc_merchant LOOP
		EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id %L, payin_api_url %L)',
		               r.merchant, r.site, r.base);
		EXECUTE format('CREATE USER MAPPING FOR PUBLIC SERVER %I OPTIONS (payin_api_key %L, payin_notification_key %L)',
		               r.merchant, 'api-' || r.site, 'notify-' || r.site);
	END LOOP;
END $$;

-- A counter of merchant m's sandbox (/sandbox/payin/stats): Payin API requests by default
CREATE FUNCTION sc_stat(m text, what text DEFAULT 'requests') RETURNS int LANGUAGE sql
AS $$ SELECT (sandbox('GET', '/sandbox/payin/stats', NULL, base)->>what)::int FROM sc_merchant WHERE merchant = m $$;

-- Payin API requests of merchant m's sandbox, by method: {"GET": n, "PUT": n}
CREATE FUNCTION sc_methods(m text) RETURNS jsonb LANGUAGE sql
AS $$ SELECT sandbox('GET', '/sandbox/payin/stats', NULL, base)->'byMethod' FROM sc_merchant WHERE merchant = m $$;

-- What requests of each method were served between two sc_methods(): "GET 1, PUT 1"
CREATE FUNCTION sc_delta(before jsonb, after jsonb) RETURNS text LANGUAGE sql
AS $$ SELECT coalesce(string_agg(k || ' ' || ((after->>k)::int - coalesce((before->>k)::int, 0)), ', ' ORDER BY k), 'none')
        FROM jsonb_object_keys(after) k WHERE (after->>k)::int > coalesce((before->>k)::int, 0) $$;

-- A control call to merchant m's sandbox, under /sandbox/payin/sites/{its site}/
CREATE FUNCTION sc_control(m text, path text, body jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql
AS $$ SELECT sandbox('POST', format('/sandbox/payin/sites/%s/%s', site, path), body::text, base)
        FROM sc_merchant WHERE merchant = m $$;

-- The buyer pays merchant m's invoice on the form with a test card; the payment id
CREATE FUNCTION sc_pay(m text, bill text, expiry text DEFAULT '12/30', extra jsonb DEFAULT '{}') RETURNS text LANGUAGE sql
AS $$ SELECT sc_control(m, format('bills/%s/pay', bill),
                        jsonb_build_object('pan', '4256000000000003', 'expiry', expiry, 'cvv', '123') || extra)->>'paymentId' $$;

-- Time passes on merchant m's sandbox; its Payin time afterwards
CREATE FUNCTION sc_clock(m text, seconds numeric) RETURNS timestamptz LANGUAGE sql
AS $$ SELECT (sandbox('POST', '/sandbox/payin/clock', format('{"seconds": %s}', seconds), base)->>'now')::timestamptz
        FROM sc_merchant WHERE merchant = m $$;

-- Merchant m's next Payin request about the object key = id meets a fault
CREATE FUNCTION sc_fault(m text, key text, id text, fault jsonb) RETURNS void LANGUAGE sql
AS $$ SELECT sandbox('POST', '/sandbox/faults',
                     (jsonb_build_object('api', 'payin', 'times', 1, key, id) || fault)::text, base)
        FROM sc_merchant WHERE merchant = m $$;

-- try(), with the sandbox's payment ids (one series per sandbox) masked
CREATE FUNCTION sc_try(stmt text) RETURNS text LANGUAGE sql
AS $$ SELECT regexp_replace(try(stmt), 'payment "[0-9]+"', 'payment "…"', 'g') $$;

-- A payment as the extension reads it from QIWI (and records it)
CREATE FUNCTION sc_payment(m text, p text) RETURNS text LANGUAGE sql
AS $$ SELECT format('%s %s captured %s refunded %s %s %s', status, amount, captured_amount, refunded_amount,
                    flags, coalesce(reason_code || ' (' || reason_message || ')', 'no reason'))
        FROM qiwi_payin_payment(p, merchant => m) $$;

-- Every scenario for merchant m, one line per result
CREATE FUNCTION sc_scenarios(m text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
	p text;
	p2 text;
	sent int;
	made int;
	methods jsonb;
	r record;
	answer text;
BEGIN
	-- one step: paid at once; refunds in parts up to the captured amount,
	-- one cent over refused with nothing sent
	PERFORM qiwi_payin_create_invoice('one', 5.00, merchant => m);
	p := sc_pay(m, 'one');
	RETURN NEXT 'one step: invoice ' || (qiwi_payin_invoice('one', merchant => m)).status;
	RETURN NEXT 'one step: payment ' || sc_payment(m, p);
	SELECT * INTO r FROM qiwi_payin_refund(p, 'one-r1', 2, merchant => m);
	RETURN NEXT format('one step: refund %s %s %s %s', r.refund_id, r.amount, r.status, r.flags);
	SELECT * INTO r FROM qiwi_payin_refund(p, 'one-r2', 2.99, merchant => m);
	RETURN NEXT format('one step: refund %s %s %s %s', r.refund_id, r.amount, r.status, r.flags);
	sent := sc_stat(m);
	RETURN NEXT 'one step: 0.02 more: ' || sc_try(format('SELECT qiwi_payin_refund(%L, %L, 0.02, merchant => %L)', p, 'one-r3', m));
	RETURN NEXT 'one step: requests sent for it: ' || sc_stat(m) - sent;
	SELECT * INTO r FROM qiwi_payin_refund(p, 'one-r3', 0.01, merchant => m);
	RETURN NEXT format('one step: refund %s %s %s', r.refund_id, r.amount, r.status);
	RETURN NEXT 'one step: payment ' || sc_payment(m, p);

	-- two steps: held (PAID, nothing captured), captured, refunded to the cent
	PERFORM qiwi_payin_create_invoice('two', 8.00, capture => 'manual', merchant => m);
	p := sc_pay(m, 'two');
	RETURN NEXT 'two steps: invoice ' || (qiwi_payin_invoice('two', merchant => m)).status;
	RETURN NEXT 'two steps: payment ' || sc_payment(m, p);
	SELECT held, capture_deadline - authorised_at AS hold INTO r FROM qiwi_payin_holds WHERE merchant = m AND payment_id = p;
	RETURN NEXT format('two steps: the holds view: %s for %s', r.held, r.hold);
	SELECT * INTO r FROM qiwi_payin_capture(p, 'two-c1', 'shipped', merchant => m);
	RETURN NEXT format('two steps: capture %s %s %s %s', r.capture_id, r.amount, r.status, r.comment);
	RETURN NEXT 'two steps: payment ' || sc_payment(m, p);
	RETURN NEXT 'two steps: holds left: ' || (SELECT count(*) FROM qiwi_payin_holds WHERE merchant = m AND payment_id = p);
	SELECT * INTO r FROM qiwi_payin_refund(p, 'two-r1', 5, merchant => m);
	RETURN NEXT format('two steps: refund %s %s %s %s', r.refund_id, r.amount, r.status, r.flags);
	sent := sc_stat(m);
	RETURN NEXT 'two steps: 3.01 more: ' || sc_try(format('SELECT qiwi_payin_refund(%L, %L, 3.01, merchant => %L)', p, 'two-r2', m));
	RETURN NEXT 'two steps: requests sent for it: ' || sc_stat(m) - sent;
	SELECT * INTO r FROM qiwi_payin_refund(p, 'two-r2', 3, merchant => m);
	RETURN NEXT format('two steps: refund %s %s %s %s', r.refund_id, r.amount, r.status, r.flags);
	-- a second capture: QIWI refuses it, and it is not taken for a capture
	sent := sc_stat(m);
	RETURN NEXT 'two steps: second capture: ' || sc_try(format('SELECT qiwi_payin_capture(%L, %L, merchant => %L)', p, 'two-c2', m));
	RETURN NEXT 'two steps: requests sent for it: ' || sc_stat(m) - sent;
	RETURN NEXT 'two steps: captures recorded: ' || (SELECT string_agg(capture_id || ' ' || amount, ', ') FROM qiwi_payin_captures
	                                                 WHERE merchant = m AND payment_id = p);
	RETURN NEXT 'two steps: captures in the sandbox: ' || sc_stat(m, 'captures');

	-- held, then partly released (REVERSAL), the rest captured and refunded
	PERFORM qiwi_payin_create_invoice('rel', 6.00, capture => 'manual', merchant => m);
	PERFORM sc_pay(m, 'rel');
	-- the shop learns of the payment (and the tables record it)
	SELECT payment_id INTO p FROM qiwi_payin_invoice_payments('rel', merchant => m);
	SELECT * INTO r FROM qiwi_payin_refund(p, 'rel-r1', 2.5, merchant => m);
	RETURN NEXT format('release: refund before the capture %s %s %s %s', r.refund_id, r.amount, r.status, r.flags);
	RETURN NEXT 'release: held now ' || (SELECT held FROM qiwi_payin_holds WHERE merchant = m AND payment_id = p);
	sent := sc_stat(m);
	RETURN NEXT 'release: 3.51 more: ' || sc_try(format('SELECT qiwi_payin_refund(%L, %L, 3.51, merchant => %L)', p, 'rel-r2', m));
	RETURN NEXT 'release: requests sent for it: ' || sc_stat(m) - sent;
	SELECT * INTO r FROM qiwi_payin_capture(p, 'rel-c1', merchant => m);
	RETURN NEXT format('release: the capture takes what is held: %s %s', r.amount, r.status);
	SELECT * INTO r FROM qiwi_payin_refund(p, 'rel-r2', 3.5, merchant => m);
	RETURN NEXT format('release: refund after the capture %s %s %s', r.refund_id, r.amount, r.flags);
	RETURN NEXT 'release: payment ' || sc_payment(m, p);
	PERFORM qiwi_payin_create_invoice('rel-all', 4.00, capture => 'manual', merchant => m);
	p := sc_pay(m, 'rel-all');
	SELECT * INTO r FROM qiwi_payin_refund(p, 'rel-all-r1', 4, merchant => m);
	RETURN NEXT format('release all: %s %s %s', r.amount, r.status, r.flags);
	RETURN NEXT 'release all: holds left: ' || (SELECT count(*) FROM qiwi_payin_holds WHERE merchant = m AND payment_id = p);
	RETURN NEXT 'release all: capture: ' || sc_try(format('SELECT qiwi_payin_capture(%L, %L, merchant => %L)', p, 'rel-all-c1', m));

	-- declined cards: month 02 at once, 04 after 3 s, then 03 pays after 3 s
	PERFORM qiwi_payin_create_invoice('dec', 1.00, merchant => m);
	p := sc_pay(m, 'dec', '02/30');
	RETURN NEXT 'month 02: ' || sc_payment(m, p);
	RETURN NEXT 'month 02: invoice ' || (qiwi_payin_invoice('dec', merchant => m)).status;
	sent := sc_stat(m);
	RETURN NEXT 'month 02: refund: ' || sc_try(format('SELECT qiwi_payin_refund(%L, %L, 1, merchant => %L)', p, 'dec-r1', m));
	RETURN NEXT 'month 02: requests sent for it: ' || sc_stat(m) - sent;
	p := sc_pay(m, 'dec', '04/30', '{"reason": "ACQUIRING_INCORRECT_CVV"}');
	RETURN NEXT 'month 04: ' || sc_payment(m, p);
	PERFORM sc_clock(m, 2);
	RETURN NEXT 'month 04, 2 s later: ' || sc_payment(m, p);
	PERFORM sc_clock(m, 1.1);
	RETURN NEXT 'month 04, 3 s later: ' || sc_payment(m, p);
	RETURN NEXT 'month 04: invoice ' || (qiwi_payin_invoice('dec', merchant => m)).status;
	p := sc_pay(m, 'dec', '03/30');
	RETURN NEXT 'month 03: ' || sc_payment(m, p);
	PERFORM sc_clock(m, 3.1);
	RETURN NEXT 'month 03, 3 s later: ' || sc_payment(m, p);
	RETURN NEXT 'month 03: invoice ' || (qiwi_payin_invoice('dec', merchant => m)).status;
	RETURN NEXT 'declines: the invoice''s payments: ' || (SELECT string_agg(status || coalesce(' ' || reason_code, ''), ', ' ORDER BY payment_id)
	                                                     FROM qiwi_payin_invoice_payments('dec', merchant => m));

	-- 3-D Secure: CVV 849 passes it, a holder name with "3ds" fails it, and
	-- one still open when the invoice expires is declined
	PERFORM qiwi_payin_create_invoice('tds', 2.00, merchant => m);
	p := sc_pay(m, 'tds', '12/30', '{"cvv": "849"}');
	RETURN NEXT '3ds, CVV 849: ' || sc_payment(m, p);
	RETURN NEXT '3ds passed: ' || (sc_control(m, format('payments/%s/3ds', p), '{"result": "pass"}')->'status'->>'value');
	RETURN NEXT '3ds passed: ' || sc_payment(m, p) || ', invoice ' || (qiwi_payin_invoice('tds', merchant => m)).status;
	PERFORM qiwi_payin_create_invoice('tds-2', 2.00, merchant => m);
	p := sc_pay(m, 'tds-2', '12/30', '{"holderName": "Anna 3DS Petrova"}');
	RETURN NEXT '3ds, holder name: ' || sc_payment(m, p);
	PERFORM sc_control(m, format('payments/%s/3ds', p), '{"result": "fail"}');
	RETURN NEXT '3ds failed: ' || sc_payment(m, p) || ', invoice ' || (qiwi_payin_invoice('tds-2', merchant => m)).status;
	PERFORM qiwi_payin_create_invoice('tds-3', 2.00, expires_at => sc_clock(m, 0.001) + interval '1 hour', merchant => m);
	p := sc_pay(m, 'tds-3', '12/30', '{"cvv": "849"}');
	PERFORM qiwi_payin_create_invoice('exp', 1.00, expires_at => sc_clock(m, 0.001) + interval '1 hour', merchant => m);
	PERFORM sc_clock(m, 3601);
	RETURN NEXT '3ds open at the expiry: ' || sc_payment(m, p) || ', invoice ' || (qiwi_payin_invoice('tds-3', merchant => m)).status;
	RETURN NEXT 'expiry: an invoice an hour later: ' || (qiwi_payin_invoice('exp', merchant => m)).status;

	-- the capture deadline: QIWI captures the hold by itself 72 h after it
	PERFORM qiwi_payin_create_invoice('dl', 3.00, capture => 'manual', merchant => m);
	p := sc_pay(m, 'dl');
	PERFORM qiwi_payin_payment(p, merchant => m);
	RETURN NEXT 'deadline: in the holds view: ' || (SELECT count(*) FROM qiwi_payin_holds WHERE merchant = m AND payment_id = p);
	PERFORM sc_clock(m, 72 * 3600 - 60);
	RETURN NEXT 'deadline, a minute before: ' || sc_payment(m, p);
	PERFORM sc_clock(m, 120);
	RETURN NEXT 'deadline, a minute after: ' || sc_payment(m, p);
	RETURN NEXT 'deadline: in the holds view: ' || (SELECT count(*) FROM qiwi_payin_holds WHERE merchant = m AND payment_id = p);
	RETURN NEXT 'deadline: the shop''s capture: ' || sc_try(format('SELECT qiwi_payin_capture(%L, %L, merchant => %L)', p, 'dl-c1', m));

	-- a capture whose answer goes wrong happens once: the extension asks
	-- for it by its id, and sends it again only when QIWI does not know it
	-- (the faults meet the PUT: a capture is asked for by a GET first too)
	FOR r IN SELECT * FROM (VALUES
		(1, 'connection closed before the request', '{"drop": "before"}'),
		(2, 'answer lost', '{"drop": "after"}'),
		(3, 'answer cut in the middle', '{"drop": "mid-answer"}'),
		(4, 'answer garbled', '{"applied": true, "status": 200, "body": "{\"captureId\": [}"}'),
		(5, 'empty 500 after it was done', '{"applied": true, "status": 500, "body": ""}'),
		(6, '500 with a body after it was done', '{"applied": true, "status": 500}'),
		(7, 'empty 500, not done', '{"status": 500, "body": ""}'),
		(8, '500 with a body, not done', '{"status": 500}')) f(i, what, fault)
	LOOP
		PERFORM qiwi_payin_create_invoice('lost-' || r.i, 1.00, capture => 'manual', merchant => m);
		p := sc_pay(m, 'lost-' || r.i);
		PERFORM sc_fault(m, 'payment', p, r.fault::jsonb || '{"method": "PUT"}');
		methods := sc_methods(m);
		made := sc_stat(m, 'captures');
		answer := sc_try(format('SELECT qiwi_payin_capture(%L, %L, merchant => %L)', p, 'lost-c', m));
		RETURN NEXT format('capture, %s: %s; requests served: %s; captures made %s, recorded %s', r.what, answer,
		                   sc_delta(methods, sc_methods(m)), sc_stat(m, 'captures') - made,
		                   (SELECT string_agg(amount || ' ' || status, ', ') FROM qiwi_payin_captures
		                     WHERE merchant = m AND payment_id = p));
	END LOOP;
	-- the same for a refund (of a payment the tables have: the refund is
	-- the first request about it)
	PERFORM qiwi_payin_payment(p, merchant => m);
	PERFORM sc_fault(m, 'payment', p, '{"drop": "after", "method": "PUT"}');
	methods := sc_methods(m);
	made := sc_stat(m, 'refunds');
	answer := sc_try(format('SELECT qiwi_payin_refund(%L, %L, 0.5, merchant => %L)', p, 'lost-r', m));
	RETURN NEXT format('refund, answer lost: %s; requests served: %s; refunds made %s, recorded %s', answer,
	                   sc_delta(methods, sc_methods(m)), sc_stat(m, 'refunds') - made,
	                   (SELECT string_agg(amount || ' ' || status, ', ') FROM qiwi_payin_refunds
	                     WHERE merchant = m AND payment_id = p));
	-- creating an invoice: lost answers and empty 500s are sent again (a PUT
	-- with the shop's billId is the same invoice)
	PERFORM sc_fault(m, 'bill', 'lost-inv', '{"drop": "after"}');
	sent := sc_stat(m);
	made := sc_stat(m, 'invoices');
	answer := (qiwi_payin_create_invoice('lost-inv', 2.00, merchant => m)).status;
	RETURN NEXT format('create, answer lost: %s; requests %s, invoices made %s', answer, sc_stat(m) - sent, sc_stat(m, 'invoices') - made);
	PERFORM sc_fault(m, 'bill', 'lost-inv2', '{"status": 500, "body": ""}');
	sent := sc_stat(m);
	answer := (qiwi_payin_create_invoice('lost-inv2', 2.00, merchant => m)).status;
	RETURN NEXT format('create, empty 500: %s; requests served %s', answer, sc_stat(m) - sent);
	PERFORM sc_fault(m, 'payment', p, '{"status": 500}');
	RETURN NEXT 'read, 500 with a body: ' || sc_payment(m, p);
END $f$;

CREATE TABLE sc_out AS SELECT 'sc_http' AS merchant, n, line FROM sc_scenarios('sc_http') WITH ORDINALITY s(line, n);
INSERT INTO sc_out SELECT 'sc_tls', n, line FROM sc_scenarios('sc_tls') WITH ORDINALITY s(line, n);
SELECT line AS "over HTTP" FROM sc_out WHERE merchant = 'sc_http' ORDER BY n;
-- over HTTPS, the same lines
SELECT count(*) AS lines, count(*) FILTER (WHERE h.line IS DISTINCT FROM t.line) AS different
  FROM (SELECT * FROM sc_out WHERE merchant = 'sc_http') h FULL JOIN (SELECT * FROM sc_out WHERE merchant = 'sc_tls') t USING (n);

-- ---------- two merchants ----------
-- each merchant's objects are its own, on its own sandbox and site
SELECT merchant, count(*) AS invoices, min(site_id) AS site, max(site_id) AS same_site,
       (SELECT sc_stat(merchant, 'invoices')) AS on_its_sandbox
  FROM qiwi_payin_invoices WHERE merchant LIKE 'sc\_%' GROUP BY merchant ORDER BY merchant;
SELECT merchant, count(*) AS payments, sum(captured_amount) AS captured, sum(refunded_amount) AS refunded
  FROM qiwi_payin_payments WHERE merchant LIKE 'sc\_%' GROUP BY merchant ORDER BY merchant;

-- the notifications each sandbox sent, stored as a web tier would with the
-- site from its URL: each verified with its merchant's key
CREATE FUNCTION sc_sent(m text) RETURNS TABLE (n bigint, type text, body jsonb, signature text) LANGUAGE sql
AS $$ SELECT x.n, x.v->>'type', x.v->'body', x.v->>'signature'
        FROM sc_merchant, jsonb_array_elements(sandbox('GET', '/sandbox/payin/notifications', NULL, base)) WITH ORDINALITY x(v, n)
       WHERE merchant = m $$;
INSERT INTO qiwi_payin_notifications (site_id, body, signature)
SELECT site, body, signature FROM sc_merchant, sc_sent(merchant) ORDER BY merchant, n;
SELECT merchant, site_id, type, count(*) AS stored, count(*) FILTER (WHERE verified) AS verified,
       count(*) FILTER (WHERE applied) AS applied,
       string_agg(DISTINCT regexp_replace(error, '"[^"]*"', '"…"', 'g'), '; ') AS errors
  FROM qiwi_payin_notifications WHERE site_id LIKE 'sc-%' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
-- the capture QIWI made at the deadline: its CAPTURE (id, date and amount
-- signed, not the payment it names) records nothing, QIWI's answer does
SELECT merchant, (qiwi_payin_invoice('dl', merchant => merchant)).status FROM sc_merchant ORDER BY merchant;
SELECT merchant, captured_amount FROM qiwi_payin_payments WHERE bill_id = 'dl' AND merchant LIKE 'sc\_%' ORDER BY merchant;
-- a notification of one merchant's sandbox stored under the other's site
INSERT INTO qiwi_payin_notifications (site_id, body, signature)
SELECT 'sc-t', body, signature FROM sc_sent('sc_http') WHERE type = 'CAPTURE' ORDER BY n LIMIT 1
RETURNING merchant, verified, applied, error;

-- ---------- CAPTURE and REFUND notifications: repeated, forged, out of order ----------
CREATE FUNCTION sc_store(body jsonb, signature text) RETURNS TABLE (verified boolean, applied boolean, error text) LANGUAGE sql
AS $$ INSERT INTO qiwi_payin_notifications (site_id, body, signature) VALUES ('sc-h', body, signature)
      RETURNING verified, applied, regexp_replace(error, '"[^"]*"', '"…"', 'g') $$;
-- the real CAPTURE of two-c1 again: a duplicate, nothing changes
SELECT s.* FROM sc_sent('sc_http') x, sc_store(x.body, x.signature) s WHERE x.body->'capture'->>'captureId' = 'two-c1';
-- another amount under the real signature: a forgery
SELECT s.* FROM sc_sent('sc_http') x, sc_store(jsonb_set(x.body, '{capture,amount,value}', '80'), x.signature) s
 WHERE x.body->'capture'->>'captureId' = 'two-c1';
SELECT s.* FROM sc_sent('sc_http') x, sc_store(jsonb_set(x.body, '{refund,amount,value}', '20'), x.signature) s
 WHERE x.body->'refund'->>'refundId' = 'two-r1';
-- a properly signed REFUND that the tables never heard of is recorded
SELECT s.* FROM sc_sent('sc_http') x,
       LATERAL (SELECT jsonb_set(jsonb_set(x.body, '{refund,refundId}', '"elsewhere-r1"'), '{refund,amount,value}', '0.5') AS b) f,
       sc_store(f.b, sign(f.b, 'notify-sc-h')) s
 WHERE x.body->'refund'->>'refundId' = 'one-r1';
SELECT refund_id, amount, status FROM qiwi_payin_refunds WHERE merchant = 'sc_http' AND refund_id = 'elsewhere-r1';
-- a properly signed CAPTURE of a payment the tables do not know yet
SELECT s.* FROM sc_sent('sc_http') x,
       LATERAL (SELECT jsonb_set(jsonb_set(x.body, '{capture,captureId}', '"early-c1"'), '{capture,paymentId}', '"9999999"') AS b) f,
       sc_store(f.b, sign(f.b, 'notify-sc-h')) s
 WHERE x.body->'capture'->>'captureId' = 'two-c1';

-- ---------- bad arguments: nothing reaches either sandbox ----------
SELECT sc_stat('sc_http') AS h, sc_stat('sc_tls') AS t \gset
SELECT try($$SELECT qiwi_payin_capture_status('p', 'c', merchant => 'nosuch')$$);
SELECT try($$SELECT qiwi_payin_capture_status('p', 'c', merchant => '')$$);
SELECT try($$SELECT qiwi_payin_refund_status('p', 'r', merchant => 'nosuch')$$);
SELECT try($$SELECT qiwi_payin_refund('p', 'r', 1, NULL, merchant => 'sc_http')$$);
SELECT try($$SELECT qiwi_payin_refund('p', 'r', 1, 'rub', merchant => 'sc_http')$$);
SELECT try($$SELECT qiwi_payin_refund('p', 'r', -1, merchant => 'sc_tls')$$);
SELECT try($$SELECT qiwi_payin_refund('p', 'r', 'NaN', merchant => 'sc_tls')$$);
SELECT try($$SELECT qiwi_payin_capture('', 'c', merchant => 'sc_tls')$$);
SELECT try($$SELECT qiwi_payin_payment('', merchant => 'sc_tls')$$);
SELECT try($$SELECT qiwi_payin_invoice('', merchant => 'sc_tls')$$);
SELECT try($$SELECT * FROM qiwi_payin_refunds(repeat('p', 201), merchant => 'sc_tls')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v', 1, expires_at => 'infinity', merchant => 'sc_tls')$$);
SELECT sc_stat('sc_http') - :h AS http_requests, sc_stat('sc_tls') - :t AS https_requests;

-- the sandboxes' Payin state and clocks back to the start for later tests
SELECT merchant, sandbox('POST', '/sandbox/payin/reset', NULL, base)->>'ok' AS reset FROM sc_merchant ORDER BY merchant;
RESET qiwi.ca_file;
