-- docs/tutorial.md, run as a test: test/check_tutorial.sh checks that the
-- document's SQL is this file from "-- the tutorial" on, and its output
-- this test's expected output.  First the reader's set-up, as
-- test/demo.sh --keep leaves it: the database qiwi_tutorial, with the
-- sandbox() helper of test/tutorial_setup.sql.
SET client_min_messages = warning;
DROP DATABASE IF EXISTS qiwi_tutorial;
CREATE DATABASE qiwi_tutorial;
\c qiwi_tutorial
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/test/tutorial_setup.sql
-- the tutorial
CREATE EXTENSION qiwi_kassa;
CREATE TABLE orders (id int PRIMARY KEY, bill_id text UNIQUE, amount numeric NOT NULL,
                     cancelled boolean NOT NULL DEFAULT false);
BEGIN;
INSERT INTO orders VALUES (3001, 'order-3001', 1499.90);
SELECT bill_id, amount, status, split_part(pay_url, '?', 1) AS pay_form
  FROM qiwi_create_bill('order-3001', 1499.90, comment => 'Order 3001');
COMMIT;
SELECT bill_id, merchant, amount, status FROM qiwi_bills;
SELECT qiwi_create_bill('order-3002', 10.005);
SELECT sandbox('POST', '/sandbox/bills/order-3001/pay') #>> '{status,value}' AS at_qiwi;
SELECT status FROM qiwi_bills WHERE bill_id = 'order-3001';
SELECT bill_id, status FROM qiwi_bill_status('order-3001');
SELECT bill_id, old_status, new_status, source FROM qiwi_bill_events ORDER BY id;
SELECT refund_id, amount, status FROM qiwi_refund('order-3001', 'order-3001-r1', 500.00);
SELECT refund_id, amount, status FROM qiwi_refund('order-3001', 'order-3001-r2', 1000.00);
INSERT INTO orders VALUES (3002, 'order-3002', 250.00, true);
SELECT status FROM qiwi_create_bill('order-3002', 250.00);
SELECT sandbox('POST', '/sandbox/bills/order-3002/pay') #>> '{status,value}' AS at_qiwi;
SELECT status FROM qiwi_bill_status('order-3002');
INSERT INTO orders VALUES (3003, 'order-3003', 99.00);
SELECT status FROM qiwi_create_bill('order-3003', 99.00);
SELECT status FROM qiwi_cancel_bill('order-3003');
BEGIN;
INSERT INTO orders VALUES (3004, 'order-3004', 75.00);
SELECT bill_id, status FROM qiwi_create_bill_after_commit('order-3004', 75.00);
ROLLBACK;
INSERT INTO qiwi_notifications (signature, body)
VALUES ('3c67f9a691e34e1a9e74e05927f3901186cc838cc81de2a3519c78b9612cf49e',
        '{"bill": {"billId": "order-3005", "siteId": "270305", "status": {"value": "PAID"},
                   "amount": {"value": "75.00", "currency": "RUB"}}, "version": "1"}')
RETURNING verified, applied, error;
SELECT bill_id, paid, refunded, left_to_refund FROM qiwi_refunds_per_bill ORDER BY bill_id;
SELECT merchant, api, status, currency, items, amount, received
  FROM qiwi_money_by_status ORDER BY api, status;
SELECT * FROM qiwi_reconcile_orders('orders', 'bill_id', 'amount', 'cancelled');
SELECT sandbox('POST', '/sandbox/payin/sites',
               '{"siteId": "shop-site", "apiKey": "shop-api-key", "notificationKey": "shop-notification-key"}')
       ->> 'siteId' AS payin_site;
SELECT current_setting('qiwi.api_url') AS sandbox_url \gset
CREATE SERVER shop FOREIGN DATA WRAPPER qiwi
    OPTIONS (payin_site_id 'shop-site', payin_api_url :'sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER shop
    OPTIONS (payin_api_key 'shop-api-key', payin_notification_key 'shop-notification-key');
SELECT bill_id, amount, status
  FROM qiwi_payin_create_invoice('order-3006', 9.50, capture => 'manual', merchant => 'shop');
SELECT sandbox('POST', '/sandbox/payin/sites/shop-site/bills/order-3006/pay',
               '{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123", "holderName": "IVAN PETROV"}')
       #>> '{status,value}' AS payment_at_qiwi;
SELECT bill_id, status FROM qiwi_payin_invoice('order-3006', merchant => 'shop');
SELECT payment_id FROM qiwi_payin_payments WHERE bill_id = 'order-3006' \gset
SELECT status, amount, captured_amount FROM qiwi_payin_payments WHERE bill_id = 'order-3006';
SELECT bill_id, held, currency FROM qiwi_payin_holds;
SELECT amount, status FROM qiwi_payin_capture(:'payment_id', 'order-3006-c1', merchant => 'shop');
SELECT status, amount, captured_amount FROM qiwi_payin_payments WHERE bill_id = 'order-3006';
SELECT merchant, api, status, currency, items, amount, received
  FROM qiwi_money_by_status WHERE api = 'payin';
-- end of the tutorial
\c contrib_regression
SET client_min_messages = warning;
DROP DATABASE qiwi_tutorial;
