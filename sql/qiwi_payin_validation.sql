-- Bad input for every argument of every Payin function: an error that
-- names the argument, and nothing reaches the sandbox.  (The merchant
-- pay_a comes from qiwi_payin.)
SELECT payin_requests() AS before \gset

-- qiwi_payin_create_invoice
SELECT try($$SELECT qiwi_payin_create_invoice(NULL, 1, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('', 1, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice(repeat('x', 201), 1, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 0, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', -1, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1.005, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 'NaN', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1000000, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, 'rub', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, expires_at => now() - interval '1 minute', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, expires_at => now() + interval '46 days', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, expires_at => NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, capture => 'later', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, capture => NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, comment => repeat('c', 257), merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, comment => '', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, phone => 'call me', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, email => 'nobody', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, account => repeat('a', 257), merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, custom_fields => '[1]', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, custom_fields => '{"cf9": "x"}', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, custom_fields => '{"cf1": 1}', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, payment_methods => '{}', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, payment_methods => '{CARD,CASH}', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, payment_methods => '{CARD,NULL}', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, callback_url => 'not a url', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, callback_url => 'https://shop.example/cb',
                                              custom_fields => '{"invoice_callback_url": "https://x.example"}', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, bind_token => true, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, bind_token => NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, merchant => '')$$);
SELECT try($$SELECT qiwi_payin_create_invoice('v-1', 1, merchant => 'nosuch')$$);

-- the reading functions
SELECT try($$SELECT qiwi_payin_invoice(NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_invoice(repeat('x', 201), merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_invoice('inv-1', merchant => 'nosuch')$$);
SELECT try($$SELECT * FROM qiwi_payin_payments('', merchant => 'pay_a')$$);
SELECT try($$SELECT * FROM qiwi_payin_payments('inv-1', merchant => '')$$);
SELECT try($$SELECT qiwi_payin_payment(NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_payment('p', merchant => 'nosuch')$$);
SELECT try($$SELECT qiwi_payin_capture_status(NULL, 'c', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_capture_status('p', '', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_refund_status('p', NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_refund_status(repeat('p', 201), 'r', merchant => 'pay_a')$$);
SELECT try($$SELECT * FROM qiwi_payin_refunds(NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT * FROM qiwi_payin_refunds('p', merchant => 'nosuch')$$);

-- capture and refund
SELECT try($$SELECT qiwi_payin_capture(NULL, 'c', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_capture('p', NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_capture('p', repeat('c', 201), merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_capture('p', 'c', repeat('x', 257), merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_capture('p', 'c', merchant => 'nosuch')$$);
SELECT try($$SELECT qiwi_payin_refund(NULL, 'r', 1, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_refund('p', '', 1, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_refund('p', 'r', NULL, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_refund('p', 'r', 0.001, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_refund('p', 'r', 0, merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_refund('p', 'r', 1, 'RUBX', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_refund('p', 'r', 1, merchant => 'nosuch')$$);

SELECT payin_requests() - :before AS requests_sent;

-- amounts are sent with exactly two decimals, never rounded: 1, 1.5 and
-- 1.50 are the same invoice (the sandbox refuses any other writing).  The
-- same invoice again needs the same expiry: the default, now() + 45 days,
-- differs in the next transaction, and QIWI refuses a changed invoice (409)
SELECT amount FROM qiwi_payin_create_invoice('v-2', 1, merchant => 'pay_a');
SELECT amount FROM qiwi_payin_create_invoice('v-3', 1.5, expires_at => date_trunc('day', now()) + interval '30 days', merchant => 'pay_a');
SELECT amount FROM qiwi_payin_create_invoice('v-3', 1.50, expires_at => date_trunc('day', now()) + interval '30 days', merchant => 'pay_a');
SELECT bill_id, amount FROM qiwi_payin_invoices WHERE bill_id IN ('v-2', 'v-3') ORDER BY 1;
-- a method list, a callback URL and a token request reach QIWI as asked
SELECT flags, custom_fields, customer FROM qiwi_payin_create_invoice('v-4', 2, payment_methods => '{CARD,SBP}',
       callback_url => 'https://shop.example/cb', account => 'buyer-9', bind_token => true, merchant => 'pay_a');
