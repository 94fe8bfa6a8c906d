-- qiwi_kassa 1.3 -> 1.4: money safety, second pass (see CHANGELOG).
-- Every object added here is also in sql/ext, so an upgraded install
-- equals a fresh 1.4 (test/t/008_upgrade_and_cluster.pl).
\echo Use "ALTER EXTENSION qiwi_kassa UPDATE TO '1.4'" to load this file. \quit

-- Payin refunds: refused before sending in another currency than their
-- payment's; recording one writes its payment's row (issue 19)
COMMENT ON COLUMN qiwi_payin_payments.refunded_amount IS $$Money returned or released so far, as QIWI last said of the payment or of its refunds (only grows)$$;
COMMENT ON FUNCTION qiwi_payin_refund(text, text, numeric, text, text) IS $$Refund amount (in currency, default RUB) of payment payment_id under the shop's refund_id: captured money is returned, held money released (flag REVERSAL). Refused before sending when currency is not the payment's or amount exceeds what is left (a payment qiwi_payin_payments lacks is asked for first); a lost answer is asked for by refund_id first. Moves money: not PUBLIC. merchant: whose$$;

-- Bill refunds: refused before sending in another currency than their
-- bill's; recording one writes its bill's row (issue 19)
COMMENT ON COLUMN qiwi_bills.checked_at IS $$When QIWI last told us about the bill (a call, the reconciler or a verified notification) or about a refund of it$$;
COMMENT ON FUNCTION qiwi_refund(text, text, numeric, text, text) IS $$Refund amount (in currency, default RUB) of the paid bill bill_id under the shop's refund_id (retry-safe); refused before sending when currency is not the bill's or amount exceeds what is left to refund (a bill qiwi_bills lacks is asked for first). Moves money: not PUBLIC. merchant: whose (NULL: the default merchant; USAGE on its server needed)$$;
