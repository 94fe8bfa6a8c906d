#!/usr/bin/env python3
"""Self-check of the sandbox's Payin API (test/qiwi_sandbox.py) against
QIWI's documents: every endpoint, each test-mode card, the two-step flow,
idempotency, errors, signatures and notification delivery.

It starts no sandbox: --url names a running one (http://127.0.0.1:PORT).
It adds its own sites with fresh ids, so it does not disturb other users of
the same sandbox, and runs a small notification receiver on a free port.
Prints "ok N - ..." or "not ok N - ..." per check and exits non-zero when
any check fails.  Python standard library only.
"""

import argparse
import hashlib
import hmac
import json
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import sandbox_checks

MSK = timezone(timedelta(hours=3))
MONEY_FORMAT = "Invalid money format. Should have 2 fraction digits"
CARD = "4256000000000003"	# the test PAN of QIWI's test-mode page (qiwi-api.md §2)

# Signature vectors, copied from ../shared/qiwi-api.md: §2 ("Third-party payin
# vectors", from sendtips/qiwi signature_test.go@95fc8d6) and §8 (from the
# Ruby client OnlinetoursGit/qiwi-kassa's tests).  (key, message, hex).
VECTORS = [
    ("TOKEN", "4504751|2019-10-08T11:31:37+03:00|2211.24",
     "3c67f9a691e34e1a9e74e05927f3901186cc838cc81de2a3519c78b9612cf49e"),	# PAYMENT
    ("TOKEN", "4504758|2019-10-08T11:31:37+03:00|2211.24",
     "5167b2bd0b07957e11686552ff40e3df688478f660c871f4257becdebd3acca5"),	# CAPTURE
    ("TOKEN", "4504759|2019-10-08T11:31:37+03:00|2211.24",
     "f3db008ae056f18d3066f0cc8b3f1725af70da8e8a0924759f57d9db6412d659"),	# REFUND
    ("skey", "4226144|2019-10-02T18:10:12+03:00|2.00",
     "0572c2153b1b57b1eddb9124ca6b8868e57eb3dce29220417922f18e7788285c"),	# §8
]
# §8's negative cases: the same message with the amount written 2.0 or 2
# signs to these (prefixes given there); a verifier must reject them.
NEGATIVE = [("skey", "4226144|2019-10-02T18:10:12+03:00|2.0", "c890a9de"),
            ("skey", "4226144|2019-10-02T18:10:12+03:00|2", "146567fb")]


def to_json(body):
    """JSON text with each Decimal written as the number it spells (5.00 stays 5.00)."""
    text = json.dumps(body, ensure_ascii=False, default=lambda d: f"@@{d}@@")
    return text.replace('"@@', "").replace('@@"', "").encode()


def hmac_hex(key, message):
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_fields(kind, obj):
    """The documented signed string of a Payin notification (§2, §8)."""
    if kind == "TOKEN":
        return "|".join([obj["merchantSiteUid"], obj["account"], obj["status"]["value"],
                         obj["status"]["changedDateTime"]])
    if kind == "CHECK_CARD":
        return "|".join([obj["requestUid"], obj["checkOperationDate"]])
    ident = {"PAYMENT": "paymentId", "CAPTURE": "captureId", "REFUND": "refundId"}[kind]
    return "|".join([obj[ident], obj["createdDateTime"],
                     f"{Decimal(str(obj['amount']['value'])):.2f}"])


class Receiver(sandbox_checks.Receiver):
    """A notification receiver: /ok/... answers 200, /fail/N/... fails N times first."""

    def record(self, headers, raw):
        return {"signature": headers.get("Signature"), "body": json.loads(raw)}

    def answer(self, parts, seen):
        return (500 if parts[1] == "fail" and seen < int(parts[2]) else 200), None, b""

    def wait(self, predicate, count=1, timeout=8.0):
        """The posts matching predicate, once there are count of them (or at the timeout)."""
        return self.posts_where(predicate, count, timeout)


class Check(sandbox_checks.Checks):
    def http(self, method, path, body=None, key=None, headers=None, raw=None):
        """(status, parsed JSON or None, raw bytes); a header given as None is not sent."""
        h = {"Accept": "application/json"}
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        data = raw
        if body is not None:
            data = body if isinstance(body, bytes) else to_json(body)
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        h = {name: value for name, value in h.items() if value is not None}
        request = Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urlopen(request, timeout=10) as answer:
                status, payload = answer.status, answer.read()
        except HTTPError as e:
            status, payload = e.code, e.read()
        try:
            parsed = json.loads(payload, parse_float=Decimal) if payload else None
        except ValueError:
            parsed = None
        return status, parsed, payload

    def control(self, method, path, body=None):
        return self.http(method, "/sandbox/payin" + path, body)

    def moved(self):
        """How far POST /sandbox/payin/clock has moved the Payin clock."""
        return timedelta(seconds=float(self.control("GET", "/clock")[1]["movedSeconds"]))


class Site:
    """A fresh Payin site in the sandbox, with helpers for its API."""

    def __init__(self, check, receiver, **options):
        self.c = check
        self.id = "check-" + uuid.uuid4().hex[:10]
        self.key = "api-" + uuid.uuid4().hex
        self.nkey = "notify-" + uuid.uuid4().hex
        self.hook = f"/ok/{self.id}"
        conf = {"siteId": self.id, "apiKey": self.key, "notificationKey": self.nkey,
                "notificationUrl": receiver.url + self.hook, "retryUnitMs": 1}
        conf.update(options)
        status, _, raw = check.control("POST", "/sites", conf)
        if status != 200:
            raise RuntimeError(f"cannot configure a site: {status} {raw!r}")
        self.receiver = receiver

    def api(self, method, rest, body=None, key=None, **kw):
        return self.c.http(method, f"/partner/payin/v1/sites/{self.id}/{rest}", body,
                           key=self.key if key is None else key, **kw)

    def invoice(self, bill_id=None, value="5.00", sale=True, **extra):
        bill_id = bill_id or "bill-" + uuid.uuid4().hex[:12]
        body = {"amount": {"currency": "RUB", "value": Decimal(value)},
                "expirationDateTime": (datetime.now(MSK) + timedelta(days=1)).isoformat(timespec="seconds")}
        if sale:
            body["flags"] = ["SALE"]
        body.update(extra)
        status, answer, raw = self.api("PUT", f"bills/{bill_id}", body)
        if status != 200:
            raise RuntimeError(f"invoice refused: {status} {raw!r}")
        return bill_id, answer, body

    def pay(self, bill_id, expiry="12/30", cvv="123", holder="IVAN PETROV", **extra):
        card = {"pan": CARD, "expiry": expiry, "cvv": cvv, "holderName": holder}
        if "token" in extra:
            card = {}
        card.update(extra)
        return self.c.control("POST", f"/sites/{self.id}/bills/{bill_id}/pay", card)

    def paid(self, **kw):
        """A paid invoice; (billId, payment)."""
        bill_id, _, _ = self.invoice(**kw)
        status, payment, raw = self.pay(bill_id)
        if status != 200 or payment["status"]["value"] != "COMPLETED":
            raise RuntimeError(f"payment failed: {status} {raw!r}")
        return bill_id, payment

    def notification(self, kind, ident_field, ident, path=None, count=1):
        key = {"PAYMENT": "payment", "CAPTURE": "capture", "REFUND": "refund",
               "TOKEN": "token", "CHECK_CARD": "checkPaymentMethod"}[kind]
        found = self.receiver.wait(lambda p: p["path"] == (path or self.hook)
                                   and p["body"].get("type") == kind
                                   and p["body"].get(key, {}).get(ident_field) == ident, count)
        return found[-1] if found else None

    def signed_ok(self, post, kind):
        key = {"PAYMENT": "payment", "CAPTURE": "capture", "REFUND": "refund",
               "TOKEN": "token", "CHECK_CARD": "checkPaymentMethod"}[kind]
        return post is not None and post["signature"] == hmac_hex(
            self.nkey, signed_fields(kind, post["body"][key]))


def error_ok(answer, code, field=None, message=None):
    """A payin-core error body with every documented field (and the cause asked for)."""
    if not isinstance(answer, dict):
        return False
    fields = ("serviceName", "errorCode", "description", "userMessage", "dateTime", "traceId")
    if any(not answer.get(f) for f in fields) or answer["serviceName"] != "payin-core" \
            or answer["errorCode"] != code:
        return False
    if field is None:
        return True
    cause = answer.get("cause", {}).get(field)
    return isinstance(cause, list) and (message is None or message in cause)


def check_auth_and_errors(c, site):
    bill_id, _, body = site.invoice()
    status, answer, _ = c.http("GET", f"/partner/payin/v1/sites/nosuch-{uuid.uuid4().hex[:6]}/bills/{bill_id}/details", key=site.key)
    c.ok(status == 401 and error_ok(answer, "auth.unauthorized"),
         "an unknown siteId is HTTP 401 auth.unauthorized with the payin-core error body", f"{status} {answer}")
    status, answer, _ = site.api("GET", f"bills/{bill_id}/details", key="wrong-key")
    c.ok(status == 401 and error_ok(answer, "auth.unauthorized"), "a wrong API key is HTTP 401 auth.unauthorized")
    status, answer, _ = site.api("PUT", f"bills/{bill_id}", body, key="")
    c.ok(status == 401 and error_ok(answer, "auth.unauthorized"), "no API key is HTTP 401, even for a PUT")
    status, answer, _ = site.api("GET", f"bills/{bill_id}/details", headers={"Accept": "text/html"})
    c.ok(status == 406, "an Accept without application/json is HTTP 406", str(status))
    for accept, what in [(None, "no Accept (RFC 9110: any type)"), ("application/*", "Accept application/*"),
                         ("text/html, */*;q=0.1", "Accept text/html, */*;q=0.1")]:
        status, answer, _ = site.api("GET", f"bills/{bill_id}/details", headers={"Accept": accept})
        c.ok(status == 200 and answer["billId"] == bill_id, f"{what} is answered", str(status))
    status, _, _ = site.api("GET", f"bills/{bill_id}/details", headers={"Accept": "application/json;q=0"})
    c.ok(status == 406, "Accept application/json;q=0 is HTTP 406", str(status))
    for scheme in ("bearer", "BEARER", "BeArEr"):
        status, answer, _ = site.api("GET", f"bills/{bill_id}/details", headers={"Authorization": f"{scheme} {site.key}"})
        c.ok(status == 200, f"the scheme written \"{scheme}\" is Bearer (RFC 9110: case-insensitive)", str(status))
    status, answer, _ = site.api("GET", f"bills/{bill_id}/details", headers={"Authorization": f"Basic {site.key}"})
    c.ok(status == 401 and error_ok(answer, "auth.unauthorized"), "another scheme with the key is HTTP 401")
    status, answer, _ = site.api("GET", "bills/no-such-bill/details")
    c.ok(status == 404 and error_ok(answer, "payin.resource.not.found"),
         "an unknown invoice is HTTP 404 payin.resource.not.found")
    status, answer, _ = site.api("GET", "payments/999999999")
    c.ok(status == 404 and error_ok(answer, "payin.resource.not.found"), "an unknown payment is HTTP 404")
    status, answer, _ = site.api("PUT", "bills/bad-json", b'{"amount": ')
    c.ok(status == 400 and error_ok(answer, "http.message.conversion.failed"),
         "a malformed body is HTTP 400 http.message.conversion.failed")


def check_money_and_test_mode(c, site):
    exp = (datetime.now(MSK) + timedelta(days=1)).isoformat(timespec="seconds")
    bad = [(b"5", "the integer 5"), (b"5.0", "5.0"), (b"5.000", "5.000"), (b'"5.0"', 'the string "5.0"'),
           (b'"five"', "a word"), (b"5.00e0", "5.00e0"), (b'"5.00e0"', 'the string "5.00e0"'),
           (b'" 5.00"', 'the string " 5.00"')]
    for raw, what in bad:
        payload = b'{"amount":{"currency":"RUB","value":' + raw + b'},"expirationDateTime":"' + exp.encode() + b'"}'
        status, answer, _ = site.api("PUT", f"bills/money-{uuid.uuid4().hex[:8]}", payload)
        c.ok(status == 400 and error_ok(answer, "validation.error", "amount", MONEY_FORMAT),
             f"amount {what} is HTTP 400 validation.error, cause amount: \"{MONEY_FORMAT}\"", f"{status} {answer}")
    for raw, what in [(b"5.00", "the number 5.00"), (b'"5.00"', 'the string "5.00"')]:
        payload = b'{"amount":{"currency":"RUB","value":' + raw + b'},"expirationDateTime":"' + exp.encode() + b'"}'
        status, answer, _ = site.api("PUT", f"bills/money-{uuid.uuid4().hex[:8]}", payload)
        c.ok(status == 200 and answer["amount"]["value"] == "5.00", f"amount {what} is accepted and answered as \"5.00\"")
    status, answer, _ = site.api("PUT", "bills/usd", {"amount": {"currency": "USD", "value": Decimal("1.00")},
                                                     "expirationDateTime": exp})
    c.ok(status == 400 and error_ok(answer, "validation.error", "amount.currency"), "test mode: USD is refused")
    status, answer, _ = site.api("PUT", "bills/big", {"amount": {"currency": "RUB", "value": Decimal("10.01")},
                                                     "expirationDateTime": exp})
    c.ok(status == 400 and error_ok(answer, "validation.error", "amount"), "test mode: 10.01 RUB is refused")
    status, answer, _ = site.api("PUT", "bills/ten", {"amount": {"currency": "RUB", "value": Decimal("10.00")},
                                                     "expirationDateTime": exp})
    c.ok(status == 200, "test mode: 10.00 RUB is accepted")
    status, answer, _ = site.api("PUT", "bills/long-comment", {"amount": {"currency": "RUB", "value": Decimal("1.00")},
                                                              "expirationDateTime": exp, "comment": "x" * 257})
    c.ok(status == 400 and error_ok(answer, "validation.error", "comment"), "a comment of 257 characters is refused")
    status, _, _ = site.api("PUT", "bills/comment-256", {"amount": {"currency": "RUB", "value": Decimal("1.00")},
                                                        "expirationDateTime": exp, "comment": "я" * 256})
    c.ok(status == 200, "a comment of 256 characters is accepted (§8: string(256))")
    status, answer, _ = site.api("PUT", "bills/bind-no-account", {"amount": {"currency": "RUB", "value": Decimal("1.00")},
                                                                 "expirationDateTime": exp, "flags": ["BIND_PAYMENT_TOKEN"]})
    c.ok(status == 400 and error_ok(answer, "validation.error", "customer.account"),
         "BIND_PAYMENT_TOKEN without customer.account is refused")
    status, answer, _ = site.api("PUT", "bills/bad-flag", {"amount": {"currency": "RUB", "value": Decimal("1.00")},
                                                          "expirationDateTime": exp, "flags": ["NOPE"]})
    c.ok(status == 400 and error_ok(answer, "validation.error", "flags"), "an unknown flag is refused")


def check_invoices(c, site):
    bill_id, inv, body = site.invoice(comment="Spasibo", customFields={"cf1": "a"})
    c.ok(inv["billId"] == bill_id and inv["status"]["value"] == "CREATED" and inv["amount"] == {"currency": "RUB", "value": "5.00"}
         and inv["flags"] == ["SALE"] and inv["invoiceUid"] in inv["payUrl"] and inv["comment"] == "Spasibo"
         and inv["customFields"] == {"cf1": "a"} and inv["expirationDateTime"].endswith("+03:00"),
         "PUT bills/{billId} answers the invoice as seed 004's sample (CREATED, amount \"5.00\", payUrl with invoiceUid)", str(inv))
    status, again, _ = site.api("PUT", f"bills/{bill_id}", body)
    c.ok(status == 200 and again["invoiceUid"] == inv["invoiceUid"], "the same PUT again returns the same invoice")
    body2 = dict(body, amount={"currency": "RUB", "value": "5.00"})
    status, again, _ = site.api("PUT", f"bills/{bill_id}", body2)
    c.ok(status == 200 and again["invoiceUid"] == inv["invoiceUid"], "the same amount written as a string is the same request")
    status, answer, _ = site.api("PUT", f"bills/{bill_id}", dict(body, amount={"currency": "RUB", "value": Decimal("6.00")}))
    c.ok(status == 409 and error_ok(answer, "payin.resource.already.exists"), "the same billId with another amount is HTTP 409")
    status, answer, _ = site.api("PUT", f"bills/{bill_id}", dict(body, comment="other"))
    c.ok(status == 409, "the same billId with another comment is HTTP 409")
    status, details, _ = site.api("GET", f"bills/{bill_id}/details")
    c.ok(status == 200 and details["payments"] == [] and details["invoiceUid"] == inv["invoiceUid"],
         "GET bills/{billId}/details: the invoice with an empty payments list")
    status, payments, _ = site.api("GET", f"bills/{bill_id}")
    c.ok(status == 200 and payments == [], "GET bills/{billId}: the array of its payments")
    other = Site(c, site.receiver)
    status, _, _ = other.api("GET", f"bills/{bill_id}/details")
    c.ok(status == 404, "billId is per site: another site does not see it")


def check_one_step(c, site):
    bill_id, inv, _ = site.invoice()
    status, payment, raw = site.pay(bill_id)
    c.ok(status == 200 and payment["status"]["value"] == "COMPLETED" and payment["flags"] == ["SALE"]
         and payment["capturedAmount"]["value"] == "5.00" and payment["paymentMethod"]["maskedPan"] == "425600******0003",
         "one-step: card 12/30 pays at once, COMPLETED, flags SALE, captured 5.00", str(raw))
    pid = payment["paymentId"]
    status, details, _ = site.api("GET", f"bills/{bill_id}/details")
    c.ok(details["status"]["value"] == "PAID" and [p["paymentId"] for p in details["payments"]] == [pid],
         "the invoice is PAID and its details list the payment")
    status, got, _ = site.api("GET", f"payments/{pid}")
    c.ok(status == 200 and got["paymentId"] == pid and got["billId"] == bill_id, "GET payments/{paymentId}")
    post = site.notification("PAYMENT", "paymentId", pid)
    c.ok(post is not None and post["body"]["payment"]["status"]["value"] == "SUCCESS"
         and post["body"]["version"] == "1" and not isinstance(post["body"]["payment"]["amount"]["value"], str),
         "a PAYMENT notification (status SUCCESS, amount a JSON number) reaches the site's URL")
    c.ok(site.signed_ok(post, "PAYMENT"),
         "its Signature is HMAC-SHA256(notification key, paymentId|createdDateTime|amount %.2f)")
    c.ok(post is not None and post["signature"] != hmac_hex(site.key, signed_fields("PAYMENT", post["body"]["payment"])),
         "it is not signed with the API key (§8)")
    status, answer, _ = site.api("PUT", f"payments/{pid}/captures/c1", raw=b"")
    c.ok(status == 400 and error_ok(answer, "payin.incorrect-method-invocation"), "a one-step payment cannot be captured")
    status, again, _ = site.pay(bill_id)
    c.ok(status == 409, "a PAID invoice cannot be paid again on the form")
    # refunds of a one-step payment
    status, r1, _ = site.api("PUT", f"payments/{pid}/refunds/r1", {"amount": {"value": Decimal("2.00"), "currency": "RUB"}})
    c.ok(status == 200 and r1["flags"] == [] and r1["status"]["value"] == "COMPLETED" and r1["amount"]["value"] == "2.00",
         "a refund of 2.00 after the payment: COMPLETED, no REVERSAL flag")
    status, again, _ = site.api("PUT", f"payments/{pid}/refunds/r1", {"amount": {"value": Decimal("2.00"), "currency": "RUB"}})
    c.ok(status == 200 and again == r1, "the same refund PUT again returns the same refund")
    status, answer, _ = site.api("PUT", f"payments/{pid}/refunds/r1", {"amount": {"value": Decimal("1.00"), "currency": "RUB"}})
    c.ok(status == 409, "the same refundId with another amount is HTTP 409")
    status, answer, _ = site.api("PUT", f"payments/{pid}/refunds/r2", {"amount": {"value": Decimal("3.01"), "currency": "RUB"}})
    c.ok(status == 400 and error_ok(answer, "validation.error", "amount"), "one cent over what is left (3.00) is refused")
    status, answer, _ = site.api("PUT", f"payments/{pid}/refunds/r2", {"amount": {"value": Decimal("3.0"), "currency": "RUB"}})
    c.ok(status == 400 and error_ok(answer, "validation.error", "amount", MONEY_FORMAT), "a refund of 3.0 is a money-format error")
    status, r2, _ = site.api("PUT", f"payments/{pid}/refunds/r2", {"amount": {"value": Decimal("3.00"), "currency": "RUB"}})
    c.ok(status == 200, "the refused refundId is still free: 3.00 is refunded with it")
    status, got, _ = site.api("GET", f"payments/{pid}/refunds/r2")
    c.ok(status == 200 and got == r2, "GET payments/{paymentId}/refunds/{refundId}")
    status, listed, _ = site.api("GET", f"payments/{pid}/refunds")
    c.ok(status == 200 and sorted(r["refundId"] for r in listed) == ["r1", "r2"], "GET payments/{paymentId}/refunds lists both")
    status, got, _ = site.api("GET", f"payments/{pid}/refunds/r3")
    c.ok(status == 404, "an unknown refund is HTTP 404")
    status, got, _ = site.api("GET", f"payments/{pid}")
    c.ok(got["refundedAmount"]["value"] == "5.00", "the payment's refundedAmount is 5.00")
    status, answer, _ = site.api("PUT", f"payments/{pid}/refunds/r3", {"amount": {"value": Decimal("0.01"), "currency": "RUB"}})
    c.ok(status == 400, "nothing is left to refund: 0.01 is refused")
    post = site.notification("REFUND", "refundId", "r2")
    c.ok(site.signed_ok(post, "REFUND") and post["body"]["refund"]["paymentId"] == pid,
         "a REFUND notification signed refundId|createdDateTime|amount")


def check_declines_and_3ds(c, site):
    bill_id, _, _ = site.invoice()
    status, payment, _ = site.pay(bill_id, expiry="02/30")
    c.ok(status == 200 and payment["status"]["value"] == "DECLINED" and payment["status"].get("reason"),
         "card with expiry month 02: DECLINED at once, with a reason", str(payment))
    post = site.notification("PAYMENT", "paymentId", payment["paymentId"])
    c.ok(post is not None and post["body"]["payment"]["status"]["value"] == "DECLINE"
         and post["body"]["payment"]["status"].get("reasonCode") == payment["status"]["reason"]
         and site.signed_ok(post, "PAYMENT"), "its PAYMENT notification: DECLINE with reasonCode, signed")
    status, details, _ = site.api("GET", f"bills/{bill_id}/details")
    c.ok(details["status"]["value"] == "CREATED", "a declined payment leaves the invoice CREATED")
    status, payment, _ = site.pay(bill_id, expiry="02/30", reason="DECLINED_BY_FRAUD")
    c.ok(payment["status"].get("reason") == "DECLINED_BY_FRAUD", "the buyer's control call can name the reason code")
    status, payment, _ = site.pay(bill_id, expiry="11/29")
    c.ok(payment["status"]["value"] == "COMPLETED", "another card then pays the invoice")

    b3, _, _ = site.invoice()
    b4, _, _ = site.invoice()
    _, p3, _ = site.pay(b3, expiry="03/30")
    _, p4, _ = site.pay(b4, expiry="04/30")
    b8, _, _ = site.invoice()
    _, p8, _ = site.pay(b8, expiry="03/30")
    status, e8, _ = c.control("POST", f"/sites/{site.id}/bills/{b8}/expire")
    _, g8, _ = site.api("GET", f"payments/{p8['paymentId']}")
    c.ok(status == 200 and e8["status"]["value"] == "EXPIRED" and g8["status"]["value"] == "DECLINED"
         and g8["status"].get("reason") == "INVALID_STATE",
         "an invoice expiring while the bank decides declines the waiting payment (INVALID_STATE)")
    c.ok(p3["status"]["value"] == "WAITING" and p4["status"]["value"] == "WAITING",
         "cards with months 03 and 04: WAITING at first")
    time.sleep(1.5)
    _, g3, _ = site.api("GET", f"payments/{p3['paymentId']}")
    c.ok(g3["status"]["value"] == "WAITING", "still WAITING after 1.5 s")
    time.sleep(2.0)
    _, g3, _ = site.api("GET", f"payments/{p3['paymentId']}")
    _, g4, _ = site.api("GET", f"payments/{p4['paymentId']}")
    c.ok(g3["status"]["value"] == "COMPLETED", "month 03: COMPLETED after 3 s")
    c.ok(g4["status"]["value"] == "DECLINED", "month 04: DECLINED after 3 s")
    _, d8, _ = site.api("GET", f"bills/{b8}/details")
    c.ok(d8["status"]["value"] == "EXPIRED" and d8["payments"][0]["status"]["value"] == "DECLINED",
         "and the bank's late answer changes nothing: still EXPIRED and DECLINED")

    b5, _, _ = site.invoice()
    _, p5, _ = site.pay(b5, cvv="849")
    c.ok(p5["status"]["value"] == "WAITING" and p5.get("requirements", {}).get("threeDS", {}).get("acsUrl"),
         "CVV 849 asks for 3-D Secure: WAITING with requirements.threeDS")
    status, p5, _ = c.control("POST", f"/sites/{site.id}/payments/{p5['paymentId']}/3ds", {"result": "pass"})
    c.ok(status == 200 and p5["status"]["value"] == "COMPLETED" and "requirements" not in p5,
         "3-D Secure passed: COMPLETED")
    b6, _, _ = site.invoice()
    _, p6, _ = site.pay(b6, holder="Ivan 3DS Petrov")
    c.ok(p6["status"]["value"] == "WAITING" and "requirements" in p6, "a holder name with \"3ds\" asks for 3-D Secure")
    status, p6, _ = c.control("POST", f"/sites/{site.id}/payments/{p6['paymentId']}/3ds", {"result": "fail"})
    c.ok(p6["status"]["value"] == "DECLINED", "3-D Secure failed: DECLINED")
    b7, _, _ = site.invoice()
    _, p7, _ = site.pay(b7, cvv="849", expiry="02/30", threeDS="pass")
    c.ok(p7["status"]["value"] == "DECLINED", "3-D Secure passed, then the month-02 rule declines")
    status, _, _ = site.pay(b7, pan="4256000000000004")
    c.ok(status == 400, "a PAN failing the Luhn check is refused by the form")


def check_two_step(c, site):
    bill_id, inv, _ = site.invoice(sale=False)
    c.ok(inv["flags"] == [], "two-step: an invoice without SALE")
    _, payment, _ = site.pay(bill_id)
    pid = payment["paymentId"]
    _, details, _ = site.api("GET", f"bills/{bill_id}/details")
    c.ok(payment["status"]["value"] == "COMPLETED" and payment["flags"] == ["AUTH"]
         and payment["capturedAmount"]["value"] == "0.00" and details["status"]["value"] == "PAID",
         "the hold: invoice PAID, payment COMPLETED with flags AUTH and capturedAmount 0.00 (§8)")
    status, answer, _ = site.api("PUT", f"payments/{pid}/captures/c1",
                                 {"comment": "shipped", "amount": {"value": Decimal("2.00"), "currency": "RUB"}})
    _, got, _ = site.api("GET", f"payments/{pid}")
    c.ok(status == 400 and error_ok(answer, "validation.error", "amount") and got["capturedAmount"]["value"] == "0.00",
         "a capture body with amount 2.00 of the 5.00 held is 400 validation.error, cause amount (no partial "
         "capture is documented); nothing captured", f"{status} {answer}")
    status, _, _ = site.api("GET", f"payments/{pid}/captures/c1")
    c.ok(status == 404, "the refused capture id stays unknown (404)")
    status, cap, raw = site.api("PUT", f"payments/{pid}/captures/c1", {"comment": "shipped"})
    c.ok(status == 200 and cap["captureId"] == "c1" and cap["status"]["value"] == "COMPLETED"
         and cap["amount"]["value"] == "5.00", "capture: COMPLETED for the whole 5.00", str(raw))
    status, again, _ = site.api("PUT", f"payments/{pid}/captures/c1",
                                {"comment": "shipped", "amount": {"value": Decimal("5.00"), "currency": "RUB"}})
    c.ok(status == 200 and again == cap, "the same capture with the amount it took (5.00) is the same capture")
    status, again, _ = site.api("PUT", f"payments/{pid}/captures/c1", {"comment": "shipped"})
    c.ok(status == 200 and again == cap, "the same capture PUT again returns the same capture")
    status, answer, _ = site.api("PUT", f"payments/{pid}/captures/c1", {"comment": "other"})
    c.ok(status == 409, "the same captureId with another body is HTTP 409")
    status, answer, _ = site.api("PUT", f"payments/{pid}/captures/c2", raw=b"")
    c.ok(status == 400 and error_ok(answer, "payin.incorrect-method-invocation")
         and "Successful capture already done" in answer["description"],
         "a second capture: 400 payin.incorrect-method-invocation \"Successful capture already done...\"")
    status, got, _ = site.api("GET", f"payments/{pid}/captures/c1")
    c.ok(status == 200 and got == cap, "GET payments/{paymentId}/captures/{captureId}")
    status, got, _ = site.api("GET", f"payments/{pid}/captures/c2")
    c.ok(status == 404, "the refused capture id is unknown (404)")
    _, got, _ = site.api("GET", f"payments/{pid}")
    c.ok(got["capturedAmount"]["value"] == "5.00", "after the capture, capturedAmount is 5.00")
    post = site.notification("CAPTURE", "captureId", "c1")
    c.ok(site.signed_ok(post, "CAPTURE") and post["body"]["capture"]["paymentId"] == pid,
         "a CAPTURE notification signed captureId|createdDateTime|amount")
    for flags in (["FOO"], ["REVERSAL"]):
        status, answer, _ = site.api("PUT", f"payments/{pid}/refunds/r1",
                                     {"amount": {"value": Decimal("1.00"), "currency": "RUB"}, "flags": flags})
        c.ok(status == 400 and error_ok(answer, "validation.error", "flags"),
             f"a refund with flags {json.dumps(flags)} is 400 validation.error, cause flags (the request has "
             "no flags)", f"{status} {answer}")
    status, _, _ = site.api("GET", f"payments/{pid}/refunds/r1")
    _, got, _ = site.api("GET", f"payments/{pid}")
    c.ok(status == 404 and got["refundedAmount"]["value"] == "0.00", "nothing refunded, the refund id stays unknown")
    status, r, _ = site.api("PUT", f"payments/{pid}/refunds/r1", {"amount": {"value": Decimal("4.99"), "currency": "RUB"}})
    c.ok(status == 200 and r["flags"] == [], "a refund after the capture has no REVERSAL flag")
    status, answer, _ = site.api("PUT", f"payments/{pid}/refunds/r2", {"amount": {"value": Decimal("0.02"), "currency": "RUB"}})
    c.ok(status == 400, "refunds stop at the captured amount: 0.02 over the 0.01 left is refused")

    # released before the capture
    bill_id, _, _ = site.invoice(sale=False)
    _, payment, _ = site.pay(bill_id)
    pid = payment["paymentId"]
    status, answer, _ = site.api("PUT", f"payments/{pid}/refunds/v0", {"amount": {"value": Decimal("5.01"), "currency": "RUB"}})
    c.ok(status == 400, "a reversal above the hold is refused")
    status, rev, _ = site.api("PUT", f"payments/{pid}/refunds/v1", {"amount": {"value": Decimal("2.00"), "currency": "RUB"}})
    c.ok(status == 200 and rev["flags"] == ["REVERSAL"], "a refund before the capture is a reversal (flags REVERSAL)")
    post = site.notification("REFUND", "refundId", "v1")
    c.ok(post is not None and post["body"]["refund"].get("flags") == ["REVERSAL"] and site.signed_ok(post, "REFUND"),
         "its REFUND notification carries REVERSAL, signed")
    status, cap, _ = site.api("PUT", f"payments/{pid}/captures/c1", raw=b"")
    c.ok(status == 200 and cap["amount"]["value"] == "3.00", "the capture after a partial reversal takes what is held (3.00)")
    bill_id, _, _ = site.invoice(sale=False)
    _, payment, _ = site.pay(bill_id)
    pid = payment["paymentId"]
    site.api("PUT", f"payments/{pid}/refunds/v1", {"amount": {"value": Decimal("5.00"), "currency": "RUB"}})
    status, answer, _ = site.api("PUT", f"payments/{pid}/captures/c1", raw=b"")
    c.ok(status == 400 and error_ok(answer, "payin.incorrect-method-invocation"), "a fully released hold cannot be captured")


def check_deadlines_and_expiry(c, site, receiver):
    bill_id, _, _ = site.invoice(sale=False)
    _, payment, _ = site.pay(bill_id)
    pid = payment["paymentId"]
    status, got, _ = c.control("POST", f"/sites/{site.id}/payments/{pid}/deadline")
    c.ok(status == 200 and got["capturedAmount"]["value"] == "5.00", "the capture deadline passes: QIWI captures the hold")
    post = receiver.wait(lambda p: p["path"] == site.hook and p["body"].get("type") == "CAPTURE"
                         and p["body"]["capture"].get("paymentId") == pid)
    c.ok(post and site.signed_ok(post[0], "CAPTURE"), "with a signed CAPTURE notification")
    status, answer, _ = site.api("PUT", f"payments/{pid}/captures/late", raw=b"")
    c.ok(status == 400, "the merchant's capture after the deadline is refused")

    releasing = Site(c, receiver, deadlineAction="reverse")
    bill_id, _, _ = releasing.invoice(sale=False)
    _, payment, _ = releasing.pay(bill_id)
    status, got, _ = c.control("POST", f"/sites/{releasing.id}/payments/{payment['paymentId']}/deadline")
    _, refunds, _ = releasing.api("GET", f"payments/{payment['paymentId']}/refunds")
    c.ok(got["capturedAmount"]["value"] == "0.00" and len(refunds) == 1 and refunds[0]["flags"] == ["REVERSAL"],
         "a site set to release at the deadline: a full reversal instead")

    quick = Site(c, receiver, holdHours=0.0003)	# about 1.1 s
    bill_id, _, _ = quick.invoice(sale=False)
    _, payment, _ = quick.pay(bill_id)
    time.sleep(1.6)
    _, got, _ = quick.api("GET", f"payments/{payment['paymentId']}")
    c.ok(got["capturedAmount"]["value"] == "5.00", "holdHours 0.0003: captured by the clock, without a control call")

    bill_id, inv, body = site.invoice()
    status, exp, _ = c.control("POST", f"/sites/{site.id}/bills/{bill_id}/expire")
    c.ok(status == 200 and exp["status"]["value"] == "EXPIRED", "control expire: the invoice is EXPIRED")
    status, again, _ = site.api("PUT", f"bills/{bill_id}", body)
    c.ok(status == 200 and again["status"]["value"] == "EXPIRED", "a PUT of the same invoice returns it EXPIRED (PAYD sample)")
    status, _, _ = site.pay(bill_id)
    c.ok(status == 409, "an EXPIRED invoice cannot be paid")
    soon = (datetime.now(MSK) + timedelta(seconds=2)).isoformat(timespec="seconds")
    bill_id, inv, _ = site.invoice(expirationDateTime=soon)
    time.sleep(2.5)
    _, got, _ = site.api("GET", f"bills/{bill_id}/details")
    c.ok(got["status"]["value"] == "EXPIRED", "an invoice expires by the clock at expirationDateTime")


def check_tokens_and_card_checks(c, site):
    account = "buyer-" + uuid.uuid4().hex[:8]
    bill_id, _, _ = site.invoice(customer={"account": account}, flags=["SALE", "BIND_PAYMENT_TOKEN"])
    _, payment, _ = site.pay(bill_id)
    token = (payment.get("createdToken") or {}).get("token")
    c.ok(token and payment["createdToken"]["account"] == account, "BIND_PAYMENT_TOKEN: the payment carries createdToken")
    post = site.notification("TOKEN", "account", account)
    c.ok(post is not None and post["body"]["token"]["status"]["value"] == "CREATED"
         and post["body"]["token"].get("token") == token and site.signed_ok(post, "TOKEN"),
         "a TOKEN notification (CREATED), signed merchantSiteUid|account|status|changedDateTime")
    b2, _, _ = site.invoice(customer={"account": account})
    status, p2, _ = site.pay(b2, token=token)
    c.ok(status == 200 and p2["status"]["value"] == "COMPLETED" and p2["paymentMethod"]["type"] == "TOKEN"
         and "requirements" not in p2, "the token pays another invoice of the same account, without 3-D Secure")
    b3, _, _ = site.invoice(customer={"account": "someone-else"})
    status, _, _ = site.pay(b3, token=token)
    c.ok(status == 409, "the token does not pay an invoice of another account")
    status, answer, _ = site.api("DELETE", "tokens", {"customerAccountId": account})
    c.ok(status == 400 and error_ok(answer, "validation.error", "token"), "DELETE tokens without token is refused")
    status, answer, _ = site.api("DELETE", "tokens", {"token": token})
    c.ok(status == 400 and error_ok(answer, "validation.error", "customerAccountId"),
         "DELETE tokens without customerAccountId is refused")
    status, answer, _ = site.api("DELETE", "tokens")
    c.ok(status == 400 and error_ok(answer, "http.message.conversion.failed"), "DELETE tokens without a body is refused")
    status, answer, _ = site.api("DELETE", "tokens", {"customerAccountId": account, "token": token}, key="wrong")
    c.ok(status == 401 and error_ok(answer, "auth.unauthorized"), "DELETE tokens with another key: 401")
    status, answer, _ = site.api("DELETE", "tokens", {"customerAccountId": "someone-else", "token": token})
    c.ok(status == 404 and error_ok(answer, "payin.resource.not.found"), "DELETE tokens for another account: 404")
    b2b, _, _ = site.invoice(customer={"account": account})
    status, _, _ = site.pay(b2b, token=token)
    c.ok(status == 200, "a refused DELETE leaves the token paying")
    status, _, raw = site.api("DELETE", "tokens", {"customerAccountId": account, "token": token})
    c.ok(status == 204 and raw == b"", "DELETE tokens {customerAccountId, token}: 204, no body")
    status, answer, _ = site.api("DELETE", "tokens", {"customerAccountId": account, "token": token})
    c.ok(status == 404 and error_ok(answer, "payin.resource.not.found"), "deleting it again: 404")
    b4, _, _ = site.invoice(customer={"account": account})
    status, _, _ = site.pay(b4, token=token)
    c.ok(status == 409, "a deleted token pays nothing")
    account2 = "buyer-" + uuid.uuid4().hex[:8]
    b5, _, _ = site.invoice(customer={"account": account2}, flags=["SALE", "BIND_PAYMENT_TOKEN"])
    site.pay(b5, expiry="02/30")
    post = site.notification("TOKEN", "account", account2)
    c.ok(post is not None and post["body"]["token"]["status"]["value"] == "REJECTED" and site.signed_ok(post, "TOKEN"),
         "a declined card on a binding invoice: TOKEN REJECTED, signed")

    expires = (datetime.now(MSK) + timedelta(days=1)).isoformat(timespec="seconds")
    b6 = "check-" + uuid.uuid4().hex[:12]
    status, answer, _ = site.api("PUT", f"bills/{b6}", {"amount": {"currency": "RUB", "value": "1.00"},
                                                       "expirationDateTime": expires, "flags": ["CHECK_CARD"]})
    c.ok(status == 400 and error_ok(answer, "validation.error", "amount"), "CHECK_CARD with an amount is refused")
    status, answer, _ = site.api("PUT", f"bills/{b6}", {"expirationDateTime": expires, "flags": ["CHECK_CARD", "SALE"]})
    c.ok(status == 400 and error_ok(answer, "validation.error", "flags"), "CHECK_CARD with SALE is refused")
    status, answer, _ = site.api("PUT", f"bills/{b6}", {"expirationDateTime": expires, "flags": ["CHECK_CARD"],
                                                       "billPaymentMethodsType": ["SBP"]})
    c.ok(status == 400 and error_ok(answer, "validation.error", "billPaymentMethodsType"),
         "CHECK_CARD with a method other than CARD is refused")
    status, answer, _ = site.api("GET", f"validation/card/requests/{b6}")
    c.ok(status == 404 and error_ok(answer, "payin.resource.not.found"), "refused invoices made no card check")
    status, answer, _ = site.api("PUT", f"bills/{b6}", {"expirationDateTime": expires, "flags": ["CHECK_CARD"]})
    c.ok(status == 200 and answer["amount"] == {"currency": "RUB", "value": "0.00"} and answer["flags"] == ["CHECK_CARD"],
         "a CHECK_CARD invoice has no amount: answered for 0.00 RUB")
    status, got, _ = site.api("GET", f"validation/card/requests/{b6}")
    c.ok(status == 200 and got == {"requestUid": b6, "status": "INIT"},
         "its check exists at once, requestUid = billId, INIT (waits for the buyer)")
    status, check, _ = site.pay(b6)
    c.ok(status == 200 and check.get("isValidCard") is True and check.get("status") == "SUCCESS"
         and check.get("requestUid") == b6, "CHECK_CARD: the form checks the card (SUCCESS, isValidCard true)")
    status, _, _ = site.pay(b6)
    c.ok(status == 409, "the form checks the card of an invoice once")
    post = site.notification("CHECK_CARD", "requestUid", b6)
    c.ok(site.signed_ok(post, "CHECK_CARD"), "a CHECK_CARD notification signed requestUid|checkOperationDate")
    status, got, _ = site.api("GET", f"validation/card/requests/{b6}")
    c.ok(status == 200 and got == check == post["body"]["checkPaymentMethod"],
         "GET validation/card/requests/{requestUid}: the check, as the notification says")
    status, answer, _ = site.api("GET", f"validation/card/requests/{b6}", key="wrong")
    c.ok(status == 401 and error_ok(answer, "auth.unauthorized"), "GET of a card check with another key: 401")
    status, answer, _ = site.api("GET", "validation/card/requests/no-such-check")
    c.ok(status == 404 and error_ok(answer, "payin.resource.not.found"), "GET of an unknown card check: 404")
    _, details, _ = site.api("GET", f"bills/{b6}/details")
    c.ok(details["status"]["value"] == "CREATED" and details["payments"] == [], "a card check moves no money")
    b7 = "check-" + uuid.uuid4().hex[:12]
    site.api("PUT", f"bills/{b7}", {"expirationDateTime": expires, "flags": ["CHECK_CARD"]})
    status, check, _ = site.pay(b7, expiry="02/30")
    c.ok(status == 200 and check.get("status") == "ERROR" and check.get("isValidCard") is False
         and "createdToken" not in check, "a declined card: ERROR, isValidCard false")


def check_signatures(c):
    for key, message, digest in VECTORS:
        c.ok(hmac_hex(key, message) == digest, f"vector: HMAC-SHA256({key}, {message})")
    for key, message, prefix in NEGATIVE:
        got = hmac_hex(key, message)
        c.ok(got.startswith(prefix) and got != VECTORS[3][2], f"negative vector: {message} signs to {prefix}..., not 0572c215...")
    post_body = {"paymentId": "4226144", "createdDateTime": "2019-10-02T18:10:12+03:00", "amount": {"value": 2}}
    c.ok(hmac_hex("skey", signed_fields("PAYMENT", post_body)) == VECTORS[3][2],
         "the amount 2 (a JSON number) is signed as 2.00")


def check_delivery(c, receiver):
    site = Site(c, receiver, retryUnitMs=5)
    site.hook = f"/fail/2/{site.id}"
    c.control("POST", "/sites", {"siteId": site.id, "apiKey": site.key, "notificationKey": site.nkey,
                                 "notificationUrl": receiver.url + site.hook, "retryUnitMs": 5})
    bill_id, _, _ = site.invoice()
    _, payment, _ = site.pay(bill_id)
    posts = receiver.wait(lambda p: p["path"] == site.hook, count=3)
    gaps = [b["at"] - a["at"] for a, b in zip(posts, posts[1:])]
    c.ok(len(posts) == 3 and all(p["signature"] == posts[0]["signature"] and p["body"] == posts[0]["body"] for p in posts),
         "a notification answered 500 is sent again, unchanged, until a 200", str(len(posts)))
    c.ok(len(gaps) == 2 and 0.025 <= gaps[0] < 0.25 and 0.3 <= gaps[1] < 0.9,
         "retries after 5 then 60 units (retryUnitMs 5: 25 ms, 300 ms)", str(gaps))
    time.sleep(0.2)
    _, log, _ = c.control("GET", "/notifications")
    mine = [n for n in log if n["site"] == site.id]
    c.ok(len(mine) == 1 and mine[0]["delivered"] and len(mine[0]["attempts"]) == 3,
         "the sandbox's log: delivered at the third attempt")

    dead = Site(c, receiver, retryUnitMs=1)
    dead.hook = f"/fail/99/{dead.id}"
    c.control("POST", "/sites", {"siteId": dead.id, "apiKey": dead.key, "notificationKey": dead.nkey,
                                 "notificationUrl": receiver.url + dead.hook, "retryUnitMs": 1})
    bill_id, _, _ = dead.invoice()
    dead.pay(bill_id)
    time.sleep(1.5)
    posts = receiver.wait(lambda p: p["path"] == dead.hook, count=6)
    c.ok(len(posts) == 6, "a receiver that always fails gets 6 attempts (1 + 5, 1 min and 3 x 5 min)", str(len(posts)))
    _, log, _ = c.control("GET", "/notifications")
    mine = [n for n in log if n["site"] == dead.id]
    c.ok(len(mine) == 1 and not mine[0]["delivered"] and len(mine[0]["attempts"]) == 6,
         "and then gives up (delivered false in the log)")

    own = Site(c, receiver)
    bill_id, _, _ = own.invoice(customFields={"invoice_callback_url": receiver.url + f"/ok/inv-{own.id}"})
    _, payment, _ = own.pay(bill_id)
    post = own.notification("PAYMENT", "paymentId", payment["paymentId"], path=f"/ok/inv-{own.id}")
    c.ok(own.signed_ok(post, "PAYMENT"), "customFields.invoice_callback_url receives the PAYMENT notification")
    bill_id, _, _ = own.invoice(sale=False)
    _, payment, _ = own.pay(bill_id)
    own.api("PUT", f"payments/{payment['paymentId']}/captures/c1", {"callbackUrl": receiver.url + f"/ok/cap-{own.id}"})
    post = own.notification("CAPTURE", "captureId", "c1", path=f"/ok/cap-{own.id}")
    c.ok(own.signed_ok(post, "CAPTURE"), "a capture's callbackUrl receives its CAPTURE notification")


def check_faults(c, site):
    bill_id, _, _ = site.invoice()
    c.http("POST", "/sandbox/faults", {"api": "payin", "site": site.id, "status": 500, "body": "", "times": 1})
    status, _, _ = c.http("GET", "/partner/bill/v1/bills/some-bill", key="no-key")
    c.ok(status == 401, "a Payin fault does not touch the Bill Payments API", str(status))
    status, _, raw = site.api("GET", f"bills/{bill_id}/details")
    c.ok(status == 500 and raw == b"", "fault: the next Payin request is a 500 with an empty body")
    status, _, _ = site.api("GET", f"bills/{bill_id}/details")
    c.ok(status == 200, "the fault was for one request")
    c.http("POST", "/sandbox/faults", {"api": "payin", "site": site.id, "status": 503})
    status, answer, _ = site.api("GET", f"bills/{bill_id}/details")
    c.ok(status == 503 and error_ok(answer, "internal.error"), "a fault without body answers payin-core's internal.error")
    bill_id, _, _ = site.invoice(sale=False)
    _, payment, _ = site.pay(bill_id)
    pid = payment["paymentId"]
    c.http("POST", "/sandbox/faults", {"api": "payin", "payment": pid, "applied": True, "status": 500,
                                       "body": '{"errorCode":"internal.error"}'})
    status, _, _ = site.api("PUT", f"payments/{pid}/captures/lost", raw=b"")
    _, got, _ = site.api("GET", f"payments/{pid}/captures/lost")
    c.ok(status == 500 and got and got.get("captureId") == "lost",
         "an \"applied\" fault: the capture happened, its answer was a 500 (the status then shows it)")
    c.http("POST", "/sandbox/faults", {"api": "payin", "site": site.id, "delay_ms": 300})
    started = time.monotonic()
    site.api("GET", f"payments/{pid}")
    c.ok(time.monotonic() - started >= 0.3, "a delay fault delays the next Payin answer")


def check_clock(c, site):
    """Run last: the Payin clock only moves forward (POST reset after it)."""
    for bad in ({"seconds": 0}, {"seconds": -5}, {"seconds": "60"}, {"seconds": True}, {},
                {"seconds": 47 * 86400}):
        status, _, _ = c.control("POST", "/clock", bad)
        c.ok(status == 400, f"POST clock refuses {json.dumps(bad)}")
    status, body = c.control("GET", "/clock")[:2]
    c.ok(status == 200 and body["movedSeconds"] == 0, "GET clock: not moved yet", str(body))
    status, answer, _ = site.api("PUT", "bills/b-" + uuid.uuid4().hex[:8], {
        "amount": {"currency": "RUB", "value": Decimal("1.00")}, "billPaymentMethodsType": ["TOKEN"],
        "expirationDateTime": (datetime.now(MSK) + timedelta(days=1)).isoformat(timespec="seconds")})
    c.ok(status == 400 and error_ok(answer, "validation.error", "billPaymentMethodsType"),
         "billPaymentMethodsType: CARD, SBP or QIWI_WALLET only (TOKEN is not a form's method)")

    b3, _, _ = site.invoice()
    b4, _, _ = site.invoice()
    _, p3, _ = site.pay(b3, expiry="03/30")
    _, p4, _ = site.pay(b4, expiry="04/30")
    c.control("POST", "/clock", {"seconds": 2})
    _, g3, _ = site.api("GET", f"payments/{p3['paymentId']}")
    c.ok(g3["status"]["value"] == "WAITING", "clock +2 s: month 03 still WAITING")
    c.control("POST", "/clock", {"seconds": 1.5})
    _, g3, _ = site.api("GET", f"payments/{p3['paymentId']}")
    _, g4, _ = site.api("GET", f"payments/{p4['paymentId']}")
    c.ok(g3["status"]["value"] == "COMPLETED" and g4["status"]["value"] == "DECLINED"
         and g4["status"].get("reason") == "ACQUIRING_INSUFFICIENT_FUNDS",
         "clock +3.5 s: month 03 COMPLETED, month 04 DECLINED with its reason, without waiting")

    hold_bill, _, _ = site.invoice(sale=False)
    _, held, _ = site.pay(hold_bill, expiry="03/30")
    soon = (datetime.now(MSK) + c.moved() + timedelta(hours=1)).isoformat(timespec="seconds")
    late_bill, _, _ = site.invoice(expirationDateTime=soon)
    c.control("POST", "/clock", {"seconds": 3600})
    _, got, _ = site.api("GET", f"bills/{late_bill}/details")
    c.ok(got["status"]["value"] == "EXPIRED", "clock +1 h: an invoice expires at its expirationDateTime")
    _, got, _ = site.api("GET", f"payments/{held['paymentId']}")
    c.ok(got["status"]["value"] == "COMPLETED" and got["capturedAmount"]["value"] == "0.00",
         "a hold authorised by a delayed outcome during the move is still held an hour later")
    c.control("POST", "/clock", {"seconds": 71 * 3600})
    _, got, _ = site.api("GET", f"payments/{held['paymentId']}")
    c.ok(got["capturedAmount"]["value"] == "0.00",
         "72 h after the payment: still held (it was authorised 3 s after it)")
    c.control("POST", "/clock", {"seconds": 5})
    _, got, _ = site.api("GET", f"payments/{held['paymentId']}")
    post = site.notification("CAPTURE", "paymentId", held["paymentId"])
    c.ok(got["capturedAmount"]["value"] == "5.00" and post is not None and site.signed_ok(post, "CAPTURE"),
         "past the deadline (authorisation + 72 h): QIWI captured the hold, with a signed CAPTURE")
    authorised = datetime.fromisoformat(got["status"]["changedDateTime"])
    captured = datetime.fromisoformat(post["body"]["capture"]["createdDateTime"])
    c.ok(timedelta(hours=72) <= captured - authorised <= timedelta(hours=72, seconds=2),
         "the capture is dated at the deadline, not at the end of the move",
         f"{authorised} -> {captured}")
    status, body = c.control("POST", "/reset")[:2]
    status, body = c.control("GET", "/clock")[:2]
    c.ok(body["movedSeconds"] == 0, "POST reset sets the clock back")


def check_daily_limit(c, site, receiver):
    """Run after the clock (it moves it, then POST reset): test mode's 100
    operations a day (PAYD _intro), counted when a test turns it on."""
    status, limits, _ = c.control("GET", "/limits")
    c.ok(status == 200 and limits["dailyTestOperations"] is None, "the daily limit is off by default", str(limits))
    status, _, _ = c.control("POST", "/limits", {"dailyTestOperations": -1})
    c.ok(status == 400, "POST limits refuses a negative count")
    status, limits, _ = c.control("POST", "/limits", {"dailyTestOperations": 100})
    c.ok(status == 200 and limits["dailyTestOperations"] == 100 and limits["today"][site.id] == 0,
         "POST limits {\"dailyTestOperations\": 100} turns it on", str(limits))
    held_bill, _, _ = site.invoice(sale=False)
    _, held, _ = site.pay(held_bill)
    _, sold = site.paid()
    for _ in range(98):
        site.paid()
    _, limits, _ = c.control("GET", "/limits")
    c.ok(limits["today"][site.id] == 100, "100 payments today (invoices are not counted)", str(limits["today"][site.id]))
    status, answer, _ = site.api("PUT", f"payments/{held['paymentId']}/captures/c101", raw=b"")
    _, got, _ = site.api("GET", f"payments/{held['paymentId']}")
    c.ok(status == 400 and error_ok(answer, "validation.error", "siteId") and got["capturedAmount"]["value"] == "0.00",
         "the 101st operation, a capture, is 400 validation.error (cause siteId); nothing captured", f"{status} {answer}")
    status, answer, _ = site.api("PUT", f"payments/{sold['paymentId']}/refunds/r101",
                                 {"amount": {"value": Decimal("1.00"), "currency": "RUB"}})
    c.ok(status == 400 and error_ok(answer, "validation.error", "siteId"), "a refund too", f"{status} {answer}")
    bill_id, _, _ = site.invoice()
    status, payment, _ = site.pay(bill_id)
    _, details, _ = site.api("GET", f"bills/{bill_id}/details")
    c.ok(status == 200 and payment["status"]["value"] == "DECLINED"
         and payment["status"].get("reason") == "ACQUIRING_LIMIT_EXCEEDED" and details["status"]["value"] == "CREATED",
         "a payment on the form is DECLINED with reason ACQUIRING_LIMIT_EXCEEDED; the invoice stays CREATED", str(payment))
    other = Site(c, receiver)
    _, other_payment = other.paid()
    c.ok(other_payment["status"]["value"] == "COMPLETED", "another site counts its own operations")
    moved = c.moved()
    moscow_now = datetime.now(MSK) + moved
    midnight = datetime.combine(moscow_now.date() + timedelta(days=1), datetime.min.time(), MSK)
    c.control("POST", "/clock", {"seconds": (midnight - moscow_now).total_seconds() + 1})
    status, cap, _ = site.api("PUT", f"payments/{held['paymentId']}/captures/c101", raw=b"")
    c.ok(status == 200 and cap["amount"]["value"] == "5.00", "the next Moscow day the capture is taken", f"{status} {cap}")
    c.control("POST", "/reset")
    _, limits, _ = c.control("GET", "/limits")
    c.ok(limits["dailyTestOperations"] is None, "POST reset turns the daily limit off")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the running sandbox, e.g. http://127.0.0.1:8080")
    args = parser.parse_args()
    c = Check(args.url)
    receiver = Receiver()
    groups = [
        ("signature vectors", lambda: check_signatures(c)),
        ("auth and errors", lambda: check_auth_and_errors(c, Site(c, receiver))),
        ("money and test mode", lambda: check_money_and_test_mode(c, Site(c, receiver))),
        ("invoices", lambda: check_invoices(c, Site(c, receiver))),
        ("one-step", lambda: check_one_step(c, Site(c, receiver))),
        ("declines and 3-D Secure", lambda: check_declines_and_3ds(c, Site(c, receiver))),
        ("two-step", lambda: check_two_step(c, Site(c, receiver))),
        ("deadlines and expiry", lambda: check_deadlines_and_expiry(c, Site(c, receiver), receiver)),
        ("tokens and card checks", lambda: check_tokens_and_card_checks(c, Site(c, receiver))),
        ("notification delivery", lambda: check_delivery(c, receiver)),
        ("faults", lambda: check_faults(c, Site(c, receiver))),
        ("the clock", lambda: check_clock(c, Site(c, receiver))),
        ("test mode's daily limit", lambda: check_daily_limit(c, Site(c, receiver), receiver)),
    ]
    failed = c.run_groups(groups)
    receiver.server.shutdown()
    return failed


if __name__ == "__main__":
    sys.exit(main())
