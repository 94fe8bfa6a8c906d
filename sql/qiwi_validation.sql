-- Every bad input gives a clear error naming the argument, and nothing is
-- sent to QIWI: the sandbox's request counter does not move.
SELECT sandbox_requests() AS before \gset

-- bill_id
SELECT try($$SELECT qiwi_create_bill(NULL, 10)$$);
SELECT try($$SELECT qiwi_create_bill('', 10)$$);
SELECT try($$SELECT qiwi_create_bill(repeat('a', 201), 10)$$);
SELECT try($$SELECT qiwi_create_bill(repeat('a', 200), 10, expires_at => now() - interval '1 day')$$);
SELECT try($$SELECT qiwi_create_bill('order/1', 10)$$);
SELECT try($$SELECT qiwi_create_bill('order?x=1', 10)$$);
SELECT try($$SELECT qiwi_create_bill('../reject', 10)$$);
SELECT try($$SELECT qiwi_create_bill('.hidden', 10)$$);
SELECT try($$SELECT qiwi_create_bill('заказ-1', 10)$$);
SELECT try($$SELECT qiwi_create_bill(E'a\nb', 10)$$);
SELECT try($$SELECT qiwi_create_bill('x''; DROP TABLE qiwi_bills; --', 10)$$);
SELECT try($$SELECT qiwi_create_bill('a b', 10)$$);
SELECT try($$SELECT qiwi_bill_status(NULL)$$);
SELECT try($$SELECT qiwi_bill_status('a%2Fb')$$);
SELECT try($$SELECT qiwi_cancel_bill('')$$);
SELECT try($$SELECT qiwi_refund_status('b', NULL)$$);
SELECT try($$SELECT qiwi_refund_status('b', repeat('r', 201))$$);

-- amount
SELECT try($$SELECT qiwi_create_bill('v1', NULL)$$);
SELECT try($$SELECT qiwi_create_bill('v1', 0)$$);
SELECT try($$SELECT qiwi_create_bill('v1', -1)$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10.001)$$);
SELECT try($$SELECT qiwi_create_bill('v1', 0.001)$$);
SELECT try($$SELECT qiwi_create_bill('v1', 'NaN')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 'Infinity')$$);
SELECT try($$SELECT qiwi_create_bill('v1', '-Infinity')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 1000000)$$);
SELECT try($$SELECT qiwi_create_bill('v1', 999999.991)$$);
SELECT try($$SELECT qiwi_refund('v1', 'r1', 0.005)$$);
SELECT try($$SELECT qiwi_refund('v1', 'r1', NULL)$$);

-- currency
SELECT try($$SELECT qiwi_create_bill('v1', 10, NULL)$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, 'rub')$$);
-- a code Bill Payments does not take is refused here, not sent
SELECT try($$SELECT qiwi_create_bill('v1', 10, 'USD')$$);
SELECT try($$SELECT qiwi_refund('v1', 'r1', 1, 'EUR')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, 'RUBL')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, 'R1B')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, '')$$);
SELECT try($$SELECT qiwi_refund('v1', 'r1', 1, 'US')$$);

-- expires_at
SELECT try($$SELECT qiwi_create_bill('v1', 10, expires_at => NULL)$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, expires_at => now() - interval '1 second')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, expires_at => '1970-01-01')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, expires_at => now() + interval '46 days')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, expires_at => 'infinity')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, expires_at => '-infinity')$$);

-- comment
SELECT try($$SELECT qiwi_create_bill('v1', 10, comment => '')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, comment => repeat('ж', 256))$$);

-- phone, email, account
SELECT try($$SELECT qiwi_create_bill('v1', 10, phone => '+79123456789')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, phone => '7912')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, phone => '7912345678901234')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, phone => '')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, email => 'nobody')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, email => 'a@b@c')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, email => '@example.com')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, email => 'a b@example.com')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, email => repeat('a', 250) || '@example.com')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, account => repeat('a', 256))$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, account => E'acc\t1')$$);

-- custom_fields
SELECT try($$SELECT qiwi_create_bill('v1', 10, custom_fields => '[1]')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, custom_fields => '"text"')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, custom_fields => '{"n": 1}')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, custom_fields => '{"nested": {"a": "b"}}')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, custom_fields => '{"": "empty key"}')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, custom_fields => jsonb_build_object('k', repeat('v', 256)))$$);

-- success_url
SELECT try($$SELECT qiwi_create_bill('v1', 10, success_url => 'not a url')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, success_url => 'ftp://shop.example/done')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, success_url => 'javascript:alert(1)')$$);
SELECT try($$SELECT qiwi_create_bill('v1', 10, success_url => '')$$);

-- Nothing of the above reached QIWI
SELECT sandbox_requests() - :before AS requests_sent;
