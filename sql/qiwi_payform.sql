-- Payment links: the form that creates a bill, and options on a payUrl.
SELECT qiwi_payment_form_url('893794793973', 100, 'Fnzr1yTebUiQaBLDnebLMMxL8nc6FF5zfmGQnypc',
                             email => 'm@ya.ru', success_url => 'http://test.ru/');
SELECT qiwi_payment_form_url('order-7', 42.5, 'pk', phone => '79123456789', account => 'acc 1&2',
                             comment => 'Заказ №7: 2 шт.', custom_fields => '{"themeCode": "Yvan-YKaSh", "paySourcesFilter": "qw,card"}');

-- lifetime is written YYYY-MM-DDThhmm, Moscow time
SELECT substring(qiwi_payment_form_url('order-8', 1, 'pk', lifetime => t) FROM 'lifetime=([^&]*)')
         = to_char(t AT TIME ZONE 'Europe/Moscow', 'YYYY-MM-DD"T"HH24MI') AS lifetime_in_form_format
  FROM (SELECT date_trunc('minute', now()) + interval '2 days 5 minutes' AS t) s;

-- The public key comes from qiwi.public_key when not given
SELECT try($$SELECT qiwi_payment_form_url('order-9', 1)$$);
SET qiwi.public_key = 'server-pk';
SELECT qiwi_payment_form_url('order-9', 1);
RESET qiwi.public_key;

-- The same checks as qiwi_create_bill, and nothing is rounded
SELECT try($$SELECT qiwi_payment_form_url('order-9', 1.005, 'pk')$$);
SELECT try($$SELECT qiwi_payment_form_url('order/9', 1, 'pk')$$);
SELECT try($$SELECT qiwi_payment_form_url(NULL, 1, 'pk')$$);
SELECT try($$SELECT qiwi_payment_form_url('order-9', 1, '')$$);
SELECT try($$SELECT qiwi_payment_form_url('order-9', 1, 'pk', lifetime => now() - interval '1 minute')$$);
SELECT try($$SELECT qiwi_payment_form_url('order-9', 1, 'pk', lifetime => now() + interval '46 days')$$);
SELECT try($$SELECT qiwi_payment_form_url('order-9', 1, 'pk', custom_fields => '{"n": 1}')$$);
SELECT try($$SELECT qiwi_payment_form_url('order-9', 1, 'pk', success_url => 'javascript:x')$$);
SELECT try($$SELECT qiwi_payment_form_url('order-9', 1, 'pk', comment => repeat('x', 256))$$);

-- Options added to a payUrl from qiwi_create_bill
SELECT qiwi_pay_url('https://oplata.qiwi.com/form/?invoice_uid=d875277b-6f0f-445d-8a83-f62c7c07be77',
                    pay_source => 'card', allowed_pay_sources => ARRAY['card', 'qw'],
                    success_url => 'https://shop.example/done?order=1');
SELECT qiwi_pay_url('https://oplata.qiwi.com/form?invoiceUid=606a5f75', allowed_pay_sources => '{sovest}');
SELECT qiwi_pay_url('https://oplata.qiwi.com/form?invoiceUid=606a5f75');
SELECT try($$SELECT qiwi_pay_url('https://oplata.qiwi.com/form?invoiceUid=1', pay_source => 'cash')$$);
SELECT try($$SELECT qiwi_pay_url('https://oplata.qiwi.com/form?invoiceUid=1', allowed_pay_sources => '{}')$$);
SELECT try($$SELECT qiwi_pay_url('https://oplata.qiwi.com/form?invoiceUid=1', allowed_pay_sources => ARRAY['qw', NULL])$$);
SELECT try($$SELECT qiwi_pay_url('https://oplata.qiwi.com/form?invoiceUid=1', allowed_pay_sources => ARRAY['qw', 'bitcoin'])$$);
SELECT try($$SELECT qiwi_pay_url('https://oplata.qiwi.com/form?invoiceUid=1', allowed_pay_sources => '{{qw},{card}}')$$);
SELECT try($$SELECT qiwi_pay_url(NULL)$$);
SELECT try($$SELECT qiwi_pay_url('not a url')$$);
SELECT try($$SELECT qiwi_pay_url('https://oplata.qiwi.com/form?invoiceUid=1', lifetime => now() + interval '50 days')$$);
