-- Payin notification signatures: the digest's vectors (qiwi-api.md §2 and
-- §8), with their negative cases, and each type's documented fields.

-- §8's vector (key skey): the amount is signed as 2.00, whatever its JSON
SELECT qiwi_payin_verify_signature('0572c2153b1b57b1eddb9124ca6b8868e57eb3dce29220417922f18e7788285c',
       '{"type": "PAYMENT", "version": "1", "payment": {"paymentId": "4226144", "createdDateTime": "2019-10-02T18:10:12+03:00",
         "amount": {"value": 2, "currency": "RUB"}}}', 'skey') AS number_2;
SELECT qiwi_payin_verify_signature('0572C2153B1B57B1EDDB9124CA6B8868E57EB3DCE29220417922F18E7788285C',
       '{"type": "PAYMENT", "payment": {"paymentId": "4226144", "createdDateTime": "2019-10-02T18:10:12+03:00",
         "amount": {"value": "2.00", "currency": "RUB"}}}', 'skey') AS string_200_upper_hex;
-- signatures over "2.0" and "2" are not QIWI's
SELECT qiwi_payin_verify_signature('c890a9de4bde27292cfe83131aea10432ea68bd9205ef75a37edc419f9746159',
       '{"type": "PAYMENT", "payment": {"paymentId": "4226144", "createdDateTime": "2019-10-02T18:10:12+03:00",
         "amount": {"value": 2.0, "currency": "RUB"}}}', 'skey') AS signed_2_0;
SELECT qiwi_payin_verify_signature('146567fb67562301605b7457502bc7b9a16e167c7d81e231e81f592e5d82edb7',
       '{"type": "PAYMENT", "payment": {"paymentId": "4226144", "createdDateTime": "2019-10-02T18:10:12+03:00",
         "amount": {"value": 2, "currency": "RUB"}}}', 'skey') AS signed_2;
-- §2's vectors (key TOKEN): PAYMENT, CAPTURE, REFUND
SELECT qiwi_payin_verify_signature(sig, format('{"type": "%s", "%s": {"%s": "%s", "createdDateTime": "2019-10-08T11:31:37+03:00", "amount": {"value": 2211.24, "currency": "RUB"}}}',
                                   t, lower(t), id_key, id)::jsonb, 'TOKEN') AS verified, t
  FROM (VALUES ('PAYMENT', 'paymentId', '4504751', '3c67f9a691e34e1a9e74e05927f3901186cc838cc81de2a3519c78b9612cf49e'),
               ('CAPTURE', 'captureId', '4504758', '5167b2bd0b07957e11686552ff40e3df688478f660c871f4257becdebd3acca5'),
               ('REFUND', 'refundId', '4504759', 'f3db008ae056f18d3066f0cc8b3f1725af70da8e8a0924759f57d9db6412d659'))
       v(t, id_key, id, sig);
-- the same signature for another type's object, another id, amount or date fails
SELECT qiwi_payin_verify_signature('3c67f9a691e34e1a9e74e05927f3901186cc838cc81de2a3519c78b9612cf49e',
       '{"type": "PAYMENT", "payment": {"paymentId": "4504751", "createdDateTime": "2019-10-08T11:31:37+03:00", "amount": {"value": 2211.25, "currency": "RUB"}}}',
       'TOKEN') AS other_amount,
       qiwi_payin_verify_signature('3c67f9a691e34e1a9e74e05927f3901186cc838cc81de2a3519c78b9612cf49e',
       '{"type": "PAYMENT", "payment": {"paymentId": "4504751", "createdDateTime": "2019-10-08T08:31:37Z", "amount": {"value": 2211.24, "currency": "RUB"}}}',
       'TOKEN') AS date_rewritten,
       qiwi_payin_verify_signature('3c67f9a691e34e1a9e74e05927f3901186cc838cc81de2a3519c78b9612cf49e',
       '{"type": "PAYMENT", "payment": {"paymentId": "4504751", "createdDateTime": "2019-10-08T11:31:37+03:00", "amount": {"value": 2211.24, "currency": "RUB"}}}',
       'token') AS other_key;
-- TOKEN and CHECK_CARD sign their own fields (key nkey)
SELECT qiwi_payin_verify_signature('69db95158ca98b31cac439b1dd571dcdbb3dd7b064861db7f0c3c085bd10cc38',
       '{"type": "TOKEN", "token": {"merchantSiteUid": "site-23", "account": "buyer-1", "token": "t-1",
         "status": {"value": "CREATED", "changedDateTime": "2023-02-17T14:50:44+03:00"}}}', 'nkey') AS token,
       qiwi_payin_verify_signature('a6c8761752103a11ea95cffb93cda8e80e392e9951e44768f43bd940c228e3e7',
       '{"type": "CHECK_CARD", "checkPaymentMethod": {"requestUid": "req-1", "checkOperationDate": "2023-02-17T14:50:44+03:00"}}',
       'nkey') AS check_card;
-- what cannot be signed is false, never an error; NULL in, NULL out
SELECT qiwi_payin_verify_signature(repeat('0', 64), '{"type": "PAYOUT", "payout": {}}', 'k') AS unknown_type,
       qiwi_payin_verify_signature(repeat('0', 64), '{"type": "PAYMENT"}', 'k') AS no_object,
       qiwi_payin_verify_signature(repeat('0', 64), '{"type": "PAYMENT", "payment": {"paymentId": "1|2", "createdDateTime": "x", "amount": {"value": 1, "currency": "RUB"}}}', 'k') AS pipe,
       qiwi_payin_verify_signature(repeat('0', 64), '{"type": "PAYMENT", "payment": {"paymentId": "1", "createdDateTime": "x", "amount": {"value": 1.005, "currency": "RUB"}}}', 'k') AS three_decimals,
       qiwi_payin_verify_signature('abc', '{"type": "PAYMENT"}', 'k') AS short,
       qiwi_payin_verify_signature('[1]', '[1]', 'k') AS not_object,
       qiwi_payin_verify_signature(NULL, '{}', 'k') AS null_signature;
-- the merchant's notification key; none is an error that shows no key
SELECT try($$SELECT qiwi_payin_verify_signature(repeat('0', 64), '{}', merchant => 'pay_a')$$);
SELECT try($$SELECT qiwi_payin_verify_signature(repeat('0', 64), '{}')$$);
ALTER USER MAPPING FOR PUBLIC SERVER pay_a OPTIONS (ADD payin_notification_key 'skey-of-pay-a');
SELECT qiwi_payin_verify_signature('61aadaf3f2bf8d74fc88954e0906d19dcc383940962c1f08c1d48cc98989aad4',
       '{"type": "PAYMENT", "payment": {"paymentId": "4226144", "createdDateTime": "2019-10-02T18:10:12+03:00",
         "amount": {"value": "2.00", "currency": "RUB"}}}', merchant => 'pay_a') AS with_merchant_key;
-- the sandbox's own notifications verify with the site's notification key
SELECT count(*) AS notifications, count(*) FILTER (WHERE qiwi_payin_verify_signature(n->>'signature', n->'body', 'notify-a')) AS verified
  FROM jsonb_array_elements(sandbox('GET', '/sandbox/payin/notifications')) n
 WHERE n->>'site' = 'site-a';
