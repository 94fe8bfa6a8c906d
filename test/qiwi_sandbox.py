#!/usr/bin/env python3
"""A stateful emulator of QIWI's Bill Payments API (v1) and Payin API (v1),
for tests and demos: one server answers both.

It speaks QIWI's JSON shapes, statuses and error format (seed 001 and
shared/qiwi-api.md), keeps connections alive like QIWI's HTTP/1.1 front end,
and can serve TLS.  It is as strict as QIWI where QIWI's documents say what
it does; where QIWI's own SDK test suites record how it answered, it answers
the same (test/sdk/run-sdk-suite.sh runs the Node SDK's); where both are
silent, the choice is noted in docs/sandbox.md.

API (Authorization: Bearer <secret> required):
  PUT  /partner/bill/v1/bills/{billId}                    create (idempotent)
  GET  /partner/bill/v1/bills/{billId}                    status
  POST /partner/bill/v1/bills/{billId}/reject             cancel a WAITING bill
  PUT  /partner/bill/v1/bills/{billId}/refunds/{refundId} refund a PAID bill
  GET  /partner/bill/v1/bills/{billId}/refunds/{refundId} refund status

Control (no auth; loopback only; used by tests):
  POST /sandbox/bills/{billId}/pay | /reject | /expire
  POST /sandbox/faults   JSON: {"times": N, "status": S, "body": "...",
                                "drop": "before"|"after"|"mid-answer",
                                "huge": bytes, "delay_ms": D, "hold": true,
                                "nest": N, "bill": billId}
         "hold": the request waits, unanswered and not yet taken, until
         POST /sandbox/release (or 60 s): QIWI being slow, for as long as
         a test needs; /sandbox/stats counts the requests held
         "nest": each "@nest@" in the body becomes N "[" then N "]";
         "bill": the fault is only for requests about that bill;
         "applied": true: the request takes effect, then status/body answer it
  DELETE /sandbox/faults
  POST /sandbox/release  every request a "hold" fault keeps goes on
  POST /sandbox/latency  JSON: {"ms": N}   delay before every API answer
  POST /sandbox/notifications JSON: {"url": U, "duplicates": N, "retry_ms": M}
         POST a signed notification to U on every status change, as QIWI
         does; N extra copies after a 200; a failed delivery is retried
         every M ms (default 200), 50 times at most
  GET  /sandbox/stats    {"requests", "connections", "bills", "refunds", "held"}
  GET  /sandbox/writes   {"METHOD /path": N}: every API request but a GET, of
                         every API, counted when it arrives (held, dropped or
                         answered); a Wallet transfer's key ends " id=<its
                         client id>": how many times each id was sent
  POST /sandbox/reset    forget bills, refunds, faults, latency and stats
                         (releasing the requests held),
                         and the Payin and Wallet state (see below)

Rules of both APIs, as QIWI's documents and HTTP say:
  - Authorization: the scheme "Bearer" in any case (RFC 9110 §11.1: an
    auth-scheme is case-insensitive; RFC 6750 §2.1), then the key.
  - Accept: absent (or empty) means any type (RFC 9110 §12.5.1), so the
    request is answered; present, it must allow application/json
    (application/json, application/* or */*, q above 0), else HTTP 406.
    QIWI asks for "Accept: application/json" (seed 001, seed 004's samples,
    PAYD _intro: "It is necessary to put Accept: application/json"); what
    it does without one is not documented, and HTTP says it means anything.
Bill Payments:
  - A bill becomes final (EXPIRED) 45 days after its creation whatever its
    expirationDateTime (seed 001, the form's lifetime: "По истечении 45
    суток от даты выставления счет автоматически будет переведен в
    финальный статус"; shared/qiwi-api.md §1.3).  A later
    expirationDateTime is taken and answered as creation + 45 days (the
    documents do not say a longer one is refused: §9 "clamp and say so").

Payin API v1 (Authorization: Bearer <the site's API key>), under
/partner/payin/v1/sites/{siteId}:
  PUT  bills/{billId}                          create an invoice (idempotent)
  GET  bills/{billId}                          its payments (array)
  GET  bills/{billId}/details                  the invoice with its payments
  GET  payments/{paymentId}                    a payment
  PUT|GET payments/{paymentId}/captures/{id}   capture a hold / its status
  PUT|GET payments/{paymentId}/refunds/{id}    refund or reversal / status
  GET  payments/{paymentId}/refunds            the refunds (array)
  DELETE tokens  {"customerAccountId", "token"} delete a payment token (204)
  GET  validation/card/requests/{requestUid}   a card check (of a CHECK_CARD
                                               invoice: requestUid = billId)

Payin control (no auth), under /sandbox/payin:
  POST sites {"siteId", "apiKey", "notificationKey", "notificationUrl",
              "holdHours", "deadlineAction", "retryUnitMs"}   add/replace a site
  POST sites/{siteId}/bills/{billId}/pay  the buyer on the form:
       {"pan", "expiry": "MM/YY", "cvv", "holderName", "threeDS": "pass"|"fail",
        "reason"} or {"token"}
  POST sites/{siteId}/bills/{billId}/expire        the invoice's time runs out
  POST sites/{siteId}/payments/{paymentId}/3ds     {"result": "pass"|"fail"}
  POST sites/{siteId}/payments/{paymentId}/deadline  the capture deadline passes
  POST clock {"seconds": N}  Payin's time moves N seconds forward (at most
       46 days a call): what falls due meanwhile happens at its own time
  GET  clock           {"now", "movedSeconds"}
  GET  notifications   every Payin notification: body, signature, attempts
  GET  stats           Payin counters: requests (those a fault answered without
                       taking them are not counted), byMethod, objects, notifications
  POST limits {"dailyTestOperations": N | null}  count test mode's
       operations a day per site, at most N (null, the default: no limit);
       GET limits: the limit and each site's count today
  POST reset           forget the Payin state (sites back to the default one;
                       the clock back to the wall clock; no daily limit)
  POST /sandbox/faults with "api": "payin" (and "site", "bill", "payment",
       "method": the fault only for requests of that method)

QIWI Wallet Pull REST API 2.1, under /api/v2/prv/{prv_id}, and its control
under /sandbox/pull: see test/pull_sandbox.py.

The QIWI Wallet API and its control (/sandbox/wallet/): test/wallet_sandbox.py.

A paged list, for the core's pager (test/t/019_core_paging.pl); not a QIWI
API, but paged as the Wallet's history is (a cursor in, a page of items and
the next cursor out, null on the last page; 404 for an empty list, §9):
  GET  /sandbox/pages[?cursor=N]  (Bearer <secret>) page N (1 without a
       cursor): {"items": [{"n", "page"}...], "next": "N+1" | null}
  POST /sandbox/pages {"pages": P, "items": K, "empty": "404"|"list",
       "fail_page": N, "fail_status": S, "fail_times": T, "hold_page": N}
       the list (P pages of K items); page N fails with S, T times (default
       always); a request for hold_page (the first only) waits until
       POST /sandbox/release, as a "hold" fault does; counters back to 0
  GET  /sandbox/pages/stats  {"requests", "byPage": {N: count}}
"""

import argparse
import collections
import hashlib
import heapq
import hmac
import json
import re
import urllib.error
import urllib.request
import secrets
import ssl
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from pull_sandbox import PULL_PREFIX, PullSandbox
from wallet_sandbox import WalletSandbox

MSK = timezone(timedelta(hours=3))
BILLS_PREFIX = "/partner/bill/v1/bills/"
MAX_ID_LENGTH = 200
MAX_FIELD_LENGTH = 255
MAX_AMOUNT = Decimal("999999.99")
CURRENCIES = ("RUB", "KZT")
MAX_HOLD_S = 60
# seed 001, the payment form's lifetime: "По истечении 45 суток от даты
# выставления счет автоматически будет переведен в финальный статус"
BILL_MAX_LIFETIME = timedelta(days=45)


def now():
    return datetime.now(MSK)


def qiwi_time(dt):
    """QIWI's timestamp format: 2018-07-12T10:28:38.855+03:00."""
    return dt.astimezone(MSK).isoformat(timespec="milliseconds")


class ApiError(Exception):
    def __init__(self, status, code, description):
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


def error_body(code, description):
    return {
        "serviceName": "invoicing-api",
        "errorCode": code,
        "description": description,
        "userMessage": description,
        "dateTime": qiwi_time(now()),
        "traceId": secrets.token_hex(8),
    }


def accepts_json(header):
    """Does an Accept header allow application/json?  No Accept (or an empty
    one) means any type (RFC 9110 §12.5.1); a range application/json,
    application/* or */* with a weight above 0 allows it."""
    if header is None or not header.strip():
        return True
    for item in header.split(","):
        params = [p.strip() for p in item.split(";")]
        if params[0].lower() not in ("application/json", "application/*", "*/*"):
            continue
        weight = 1.0
        for param in params[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > 0:
            return True
    return False


def bearer_token(header):
    """The credentials of "Authorization: Bearer <token>": the scheme in any
    case (RFC 9110 §11.1, RFC 6750 §2.1), one or more spaces after it; None
    for another scheme or no header."""
    match = re.fullmatch(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) +([^ ]+)", header or "")
    return match.group(2) if match and match.group(1).lower() == "bearer" else None


def parse_amount(obj, what="amount"):
    """amount{value,currency}: value as a JSON number or numeric string."""
    if not isinstance(obj, dict):
        raise ApiError(400, "validation.error", f"{what} is required")
    value, currency = obj.get("value"), obj.get("currency")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ApiError(400, "validation.error", f"{what}.value is required")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ApiError(400, "validation.error", f"{what}.value is not a number")
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT:
        raise ApiError(400, "validation.error", f"{what}.value is out of range")
    if amount != amount.quantize(Decimal("0.01")):
        raise ApiError(400, "validation.error", f"{what}.value has more than 2 decimals")
    if currency not in CURRENCIES:
        raise ApiError(400, "validation.error", f"{what}.currency is not supported")
    return amount.quantize(Decimal("0.01")), currency


def check_string_map(obj, what):
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ApiError(400, "validation.error", f"{what} must be an object")
    for key, value in obj.items():
        if not isinstance(value, str) or len(value) > MAX_FIELD_LENGTH:
            raise ApiError(400, "validation.error", f"{what}.{key} must be a string of at most 255")
    return dict(obj)


def check_refund_id(refund_id):
    """Checked after the bill: QIWI names an unknown bill before a bad refundId."""
    if not refund_id or len(refund_id) > MAX_ID_LENGTH:
        raise ApiError(400, "validation.error", "refundId must be 1 to 200 characters")


def notification_signature(secret, bill):
    """HMAC-SHA256 of amount.currency|amount.value|billId|siteId|status.value."""
    fields = [bill["amount"]["currency"], f"{Decimal(bill['amount']['value']):.2f}",
              bill["billId"], bill["siteId"], bill["status"]["value"]]
    return hmac.new(secret.encode(), "|".join(fields).encode(), hashlib.sha256).hexdigest()


def post_notification(url, secret, body):
    """One delivery attempt; True when the merchant answered 200."""
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=payload, method="POST", headers={
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-Api-Signature-SHA256": notification_signature(secret, body["bill"]),
    })
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


def deliver(notify, secret, body):
    """Deliver like QIWI: retry until a 200, then maybe send duplicates."""
    for _ in range(50):
        if post_notification(notify["url"], secret, body):
            for _ in range(int(notify.get("duplicates", 0))):
                post_notification(notify["url"], secret, body)
            return
        time.sleep(int(notify.get("retry_ms", 200)) / 1000.0)


class Sandbox:
    """The bills and refunds, the fault queue and the counters."""

    def __init__(self, secret, site_id, payin=None, pull=None):
        self.secret = secret
        self.site_id = site_id
        self.lock = threading.Lock()
        self.payin = payin
        self.pull = pull
        self.wallet = WalletSandbox(accepts_json, bearer_token)
        self.wire = WireTests()
        self.reset()

    def reset(self):
        self.release()
        self.notify = None
        self.bills = {}
        self.refunds = {}
        self.faults = []
        self.latency_ms = 0
        self.requests = 0
        self.connections = 0
        self.writes = collections.Counter()

    def hold(self):
        """Keep a request (a "hold" fault's) waiting until release(), MAX_HOLD_S at most."""
        event = threading.Event()
        with self.lock:
            self.held.append(event)
        event.wait(MAX_HOLD_S)
        with self.lock:
            if event in self.held:
                self.held.remove(event)

    def release(self):
        """Every request held goes on (the caller holds self.lock, as for reset)."""
        for event in getattr(self, "held", []):
            event.set()
        self.held = []

    def count_write(self, method, path, body):
        """Count a request that may change something at QIWI by what it names:
        its method and path, and a Wallet transfer's client id (in its body)."""
        key = f"{method} {path}"
        if path.startswith("/sinap/"):
            try:
                key += f" id={json.loads(body).get('id')}"
            except (ValueError, AttributeError):
                pass
        with self.lock:
            self.writes[key] += 1

    def take_fault(self, api, keys):
        """The first fault left for this API whose "bill", "site", "payment", "prv",
        "service" (a Wallet path's first segment: "sinap", "payment-history") and
        "method" (Payin) match."""
        with self.lock:
            for fault in self.faults:
                if fault["times"] > 0 and fault.get("api", "bill") == api and \
                        all(fault[k] == keys.get(k) for k in ("bill", "site", "payment", "prv", "service", "method") if k in fault):
                    fault["times"] -= 1
                    return fault
        return None

    # ---- state transitions ----

    def expire_if_due(self, bill):
        if bill["status"] == "WAITING" and now() >= bill["expires"]:
            self.set_status(bill, "EXPIRED", bill["expires"])

    def set_status(self, bill, status, when=None):
        bill["status"] = status
        bill["changed"] = when or now()
        if self.notify:
            body = {"bill": self.bill_json(bill), "version": "1"}
            threading.Thread(target=deliver, args=(dict(self.notify), self.secret, body),
                             daemon=True).start()

    def bill_json(self, bill):
        body = {
            "siteId": self.site_id,
            "billId": bill["billId"],
            "amount": {"currency": bill["currency"], "value": f"{bill['amount']:.2f}"},
            "status": {"value": bill["status"], "changedDateTime": qiwi_time(bill["changed"])},
        }
        if bill["customer"] is not None:
            body["customer"] = bill["customer"]
        if bill["customFields"] is not None:
            body["customFields"] = bill["customFields"]
        body["comment"] = bill["comment"]
        body["creationDateTime"] = qiwi_time(bill["created"])
        body["expirationDateTime"] = qiwi_time(bill["expires"])
        body["payUrl"] = bill["payUrl"]
        return body

    @staticmethod
    def refund_json(refund):
        return {
            "amount": {"currency": refund["currency"], "value": f"{refund['amount']:.2f}"},
            "dateTime": qiwi_time(refund["created"]),
            "refundId": refund["refundId"],
            "status": refund["status"],
        }

    def get_bill(self, bill_id):
        bill = self.bills.get(bill_id)
        if bill is None:
            raise ApiError(404, "api.invoice.not.found", "Invoice not found")
        self.expire_if_due(bill)
        return bill

    def create_bill(self, bill_id, body):
        if not bill_id:
            raise ApiError(400, "validation.error", "billId must be 1 to 200 characters")
        amount, currency = parse_amount(body.get("amount"))
        expires_raw = body.get("expirationDateTime")
        if not isinstance(expires_raw, str):
            raise ApiError(400, "validation.error", "expirationDateTime is required")
        try:
            expires = datetime.fromisoformat(expires_raw)
        except ValueError:
            raise ApiError(400, "validation.error", "expirationDateTime is not a date")
        if expires.tzinfo is None:
            raise ApiError(400, "validation.error", "expirationDateTime needs an offset")
        created = now()
        if expires <= created:
            raise ApiError(400, "validation.error", "expirationDateTime is in the past")
        # QIWI makes every bill final 45 days after its creation (seed 001):
        # a later expirationDateTime is answered as that day
        expires = min(expires, created + BILL_MAX_LIFETIME)
        comment = body.get("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_FIELD_LENGTH):
            raise ApiError(400, "validation.error", "comment must be a string of at most 255")
        customer = check_string_map(body.get("customer"), "customer")
        custom_fields = check_string_map(body.get("customFields"), "customFields")

        existing = self.bills.get(bill_id)
        if existing is not None:
            # QIWI's PUT is idempotent for the same bill; anything else conflicts
            if existing["amount"] != amount or existing["currency"] != currency:
                raise ApiError(409, "api.invoice.already.exists",
                               "Invoice with this billId already exists with other parameters")
            self.expire_if_due(existing)
            return existing
        bill = {
            "billId": bill_id, "amount": amount, "currency": currency,
            "status": "WAITING", "changed": created, "created": created,
            "expires": expires, "comment": comment, "customer": customer,
            "customFields": custom_fields,
            "payUrl": f"https://oplata.qiwi.com/form/?invoice_uid={uuid.uuid4()}",
        }
        self.bills[bill_id] = bill
        return bill

    def reject_bill(self, bill_id):
        bill = self.get_bill(bill_id)
        if bill["status"] != "WAITING":
            raise ApiError(400, "api.invoice.status.invalid",
                           f"Invoice is {bill['status']}, only WAITING invoices can be rejected")
        self.set_status(bill, "REJECTED")
        return bill

    def refund(self, bill_id, refund_id, body):
        bill = self.get_bill(bill_id)
        check_refund_id(refund_id)
        amount, currency = parse_amount(body.get("amount"))
        key = (bill_id, refund_id)
        existing = self.refunds.get(key)
        if existing is not None:
            if existing["amount"] != amount or existing["currency"] != currency:
                raise ApiError(409, "api.refund.already.exists",
                               "Refund with this refundId already exists with other parameters")
            return existing
        if bill["status"] != "PAID":
            raise ApiError(400, "refund.bill.not.paid", "Only a paid invoice can be refunded")
        if currency != bill["currency"]:
            raise ApiError(400, "validation.error", "refund currency differs from the invoice's")
        refunded = sum(r["amount"] for (b, _), r in self.refunds.items() if b == bill_id)
        if refunded + amount > bill["amount"]:
            raise ApiError(400, "refund.incorrect.amount", "Неверная сумма возврата")
        refund = {
            "refundId": refund_id, "amount": amount, "currency": currency,
            "created": now(),
            "status": "FULL" if refunded + amount == bill["amount"] else "PARTIAL",
        }
        self.refunds[key] = refund
        return refund

    def get_refund(self, bill_id, refund_id):
        self.get_bill(bill_id)
        check_refund_id(refund_id)
        refund = self.refunds.get((bill_id, refund_id))
        if refund is None:
            raise ApiError(404, "api.refund.not.found", "Refund not found")
        return refund



# =====================================================================
# Payin API v1 (/partner/payin/v1/sites/{siteId}/...)
#
# Built from seeds/004 (QIWI's Payin scenarios), shared/qiwi-api.md §2 and
# its §8 corrections (§8 wins where they differ; each such place says so).
# The sandbox emulates a site in test mode only.  Where the documents are
# silent the sandbox chooses, as follows (docs/sandbox.md, "Payin"):
#
# - Sites: siteId -> API key (Bearer), notification key, notification URL,
#   hold time (72 h by default; at most 5 days, seed 004), what happens at
#   the capture deadline ("capture", the default, or "reverse"), and the
#   unit of the retry schedule (1000 ms).  One site exists from the start:
#   --site-id, with --secret as API key and --payin-notification-key
#   (default: --secret) as notification key, and no notification URL.
# - Auth comes first: an unknown siteId or another key is HTTP 401
#   auth.unauthorized "Wrong authentication data" (§8: not 404).  The
#   scheme is "Bearer" in any case; no Accept means any (see the top).
# - Money: amount.value is a JSON number or a string written with exactly
#   two decimals (150.00, "150.00"); 150, 150.0, 150.000 and 1.5000e2 are 400
#   validation.error with cause {"amount": ["Invalid money format. Should
#   have 2 fraction digits"]} (§8).  Answers write amounts as strings
#   ("150.00", as seed 004's sample); notifications as JSON numbers in
#   their shortest form (5, 2.5, 2211.24: the documents' samples show
#   numbers in several forms), signed with the amount written %.2f (§8).
# - Timestamps in answers and notifications: Moscow time, whole seconds
#   (2023-02-17T14:50:44+03:00, as seed 004's sample); the signature uses
#   the date exactly as the body carries it.
# - Test mode (§2): currency RUB only and at most 10.00 RUB per invoice
#   (400 validation.error, cause amount.currency / amount); the card's
#   expiry month decides (02 declined at once, 03 approved after 3 s, 04
#   declined after 3 s, any other approved; the year is not checked, so the
#   documents' test cards never expire); CVV 849 or a holder name containing
#   "3ds" (any case) asks for 3-D Secure first.  A decline's reason is
#   ACQUIRING_INSUFFICIENT_FUNDS unless the buyer's control call names
#   another; a failed 3-D Secure, or one still open when the invoice
#   expires, is PAYMENT_EXPIRED_3DS (the one 3-D Secure reason in the
#   digest's list).  PANs must pass the Luhn check (the documents'
#   4256000000000003 does).
# - Test mode's "Maximum number of transactions is 100 per day. All
#   transactions within the current day (by Moscow timezone) ... are taken
#   into account" (PAYD _intro_en "How to Test Operations"; §2): counted
#   per site and Moscow date of Payin's clock, enforced only when a test
#   turns it on (POST /sandbox/payin/limits {"dailyTestOperations": 100};
#   off by default, as the suite and the benchmarks make thousands; off
#   again after reset).  Counted: each payment attempt on the form (card or
#   token, whatever its outcome), each capture and refund (reversals too)
#   the merchant asks for; not invoices ("not a financial entity", PAYD
#   _intro), card checks, nor QIWI's own capture or reversal at a
#   deadline.  The documents do not say what QIWI answers past the limit;
#   the closest documented answers are chosen: a payment is DECLINED with
#   reason ACQUIRING_LIMIT_EXCEEDED ("Some limit exceeded", PAYD
#   _statuses), a capture or refund is 400 validation.error (the one 4xx of
#   PAYD's capture and refund references, as for the 10.00 RUB limit),
#   cause {"siteId": ["Test mode: at most N operations a day"]}, nothing
#   stored.
# - Idempotency: a PUT with an id already used returns the stored object
#   (with its current state) when its body means the same (amounts compared
#   as numbers, absent and null alike); any other body is HTTP 409
#   payin.resource.already.exists (undocumented; §8 says so).  A refused
#   PUT stores nothing, so its id stays free.
# - Invoice: CREATED -> PAID when a payment is COMPLETED (authorised: for a
#   two-step invoice capturedAmount stays 0.00 until the capture, §8) or
#   -> EXPIRED when expirationDateTime passes without one; a payment still
#   waiting then is declined (PAYMENT_EXPIRED_3DS if it waited for 3-D
#   Secure, INVALID_STATE if for the bank's 3 s answer).  A declined
#   payment leaves the invoice CREATED, so the buyer may try another card.
#   GET bills/{billId} answers the array of its payments, GET
#   bills/{billId}/details the invoice with "payments".  Flags accepted:
#   SALE, BIND_PAYMENT_TOKEN (needs customer.account), CHECK_CARD (§8).
#   billPaymentMethodsType: CARD, SBP (§8, DEV) and QIWI_WALLET (a PAYD
#   sample); a token is not one (seed 004: the form offers bound tokens
#   by customer.account).  Support never connected a method for a sandbox
#   site, so the form takes a card whatever the list says (seed 004's table).
# - Payment flags: ["SALE"] one-step, ["AUTH"] two-step (§2's operation
#   types).  refundedAmount counts refunds and reversals (money back to the
#   buyer, moved or released).  The hold's deadline is authorisation time
#   plus the site's hold time; the control call .../deadline moves it to
#   now.
# - Capture: only of a two-step COMPLETED payment; it takes what is still
#   held (the amount minus reversals); a second capture with another id is
#   400 payin.incorrect-method-invocation "Successful capture already done
#   for this payment" (§8's fixture), as is a capture of a one-step,
#   declined, waiting or fully reversed payment (with its own message).
#   The body may be empty or {callbackUrl, comment} (PAYD _api-methods
#   "Payment confirmation": no amount; no partial capture is documented).
#   An "amount" other than the whole of what is held (for a repeat: what
#   the capture took) is 400 validation.error, cause amount "Partial
#   capture is not supported ..."; the held amount itself is accepted.
# - Refund: before the capture of a two-step payment it is a reversal
#   (flags ["REVERSAL"]) of at most what is still held; after the capture,
#   or of a one-step payment, at most captured minus refunded (flags []).
#   More is 400 validation.error, cause {"amount": ["Refund amount exceeds
#   the available amount"]}; nothing is stored.  Its currency must be the
#   payment's.  Refunds and captures complete at once (status COMPLETED).
#   The request body is {amount} (PAYD _api-methods "Refund"; §2): QIWI
#   sets "flags" ["REVERSAL"] in its answer (PAYD _intro "Operation
#   Types"); a request with any flags (["REVERSAL"], ["FOO"]) is 400
#   validation.error, cause flags, nothing stored ([] and null are
#   absent).
# - Tokens: an invoice with BIND_PAYMENT_TOKEN and customer.account issues
#   a token when its card payment (or card check) succeeds (TOKEN
#   notification, status CREATED), or a TOKEN REJECTED notification when it
#   fails.  The payment carries it as "createdToken" {token, name,
#   expiredDate, account} (the name of the card check's field, §2).  A
#   token pays, on the form, only invoices of its site whose
#   customer.account is its account, without 3-D Secure; the outcome
#   follows its card's expiry month; a deleted one pays nothing (the
#   control call answers 409).  DELETE tokens {customerAccountId, token}
#   answers 204 with no body; a token that is unknown, deleted already, or
#   another account's is 404 payin.resource.not.found "Token not found"
#   (the documents are silent on a repeated delete; this is what a retried
#   DELETE whose first attempt deleted the token sees).  No body is 400
#   http.message.conversion.failed; a missing customerAccountId or token
#   400 validation.error with the field in cause.
# - CHECK_CARD (QIWI's card check doc, payments-docs _card-check): an
#   invoice with this flag has no amount (one sent is 400 validation.error,
#   cause amount; with SALE, cause flags; billPaymentMethodsType other than
#   ["CARD"], cause billPaymentMethodsType: the doc says none of this, a
#   check is of a card and moves no money) and is answered for 0.00 RUB.
#   It may carry BIND_PAYMENT_TOKEN (the doc's sample).  Its check exists
#   from the invoice's creation with requestUid = billId (the doc: "put
#   there billId ... as a unique identifier of the card verification"),
#   status INIT ("awaiting for customer action"); the form checks the card
#   once (again: 409): SUCCESS (isValidCard true) or ERROR (isValidCard
#   false: a declined card, or 3-D Secure not passed), with a CHECK_CARD
#   notification checkPaymentMethod {requestUid, checkOperationDate,
#   status, isValidCard, threeDsStatus, cardInfo, createdToken?}.  No
#   payment; the invoice stays CREATED.  GET
#   validation/card/requests/{requestUid} answers the check as it is (INIT:
#   requestUid and status only), 404 payin.resource.not.found for an id
#   the site has no check for.  WAITING_3DS is not emulated: 3-D Secure is
#   decided by the form's control call.
# - Notifications go to the operation's own URL when it has one
#   (customFields.invoice_callback_url for PAYMENT and CHECK_CARD,
#   callbackUrl of the capture or refund), else to the site's; TOKEN to the
#   site's.  Body {type: {...}, "type": T, "version": "1"}, header
#   Signature (lowercase hex HMAC-SHA256 with the site's notification key:
#   §8, not the API key of the 2022 text).  Delivered when the receiver
#   answers 200; otherwise retried after 5, 60, 300, 300 and 300 units
#   (§2: "1 try after 5 s, 1 after 1 min, then 3 every 5 min"; a unit is
#   the site's retryUnitMs, 1000 by default), 6 attempts in all.
# - Time: Payin's clock is the wall clock plus what POST
#   /sandbox/payin/clock added; answers, notifications, expiries, capture
#   deadlines and the 3 s card outcomes follow it.  A move takes the events
#   falling due within it one by one at their own times (a hold authorised
#   by a delayed outcome gets its deadline from that outcome).  It only
#   moves forward; POST reset brings it back.
# - Faults (POST /sandbox/faults) reach Payin requests only with
#   "api": "payin" (so Bill Payments tests see exactly what they did), and
#   may be narrowed with "site", "bill" or "payment"; their default body
#   is payin-core's internal.error, "body": "" gives the empty 500 that
#   means "send again" (§2).
# =====================================================================

PAYIN_PREFIX = "/partner/payin/v1/sites/"
PAYIN_MAX_TEST_AMOUNT = Decimal("10.00")
PAYIN_MAX_HOLD_HOURS = 120
PAYIN_MAX_STRING = 256
PAYIN_FLAGS = ("SALE", "BIND_PAYMENT_TOKEN", "CHECK_CARD")
PAYIN_METHODS = ("CARD", "SBP", "QIWI_WALLET")
PAYIN_CUSTOM_FIELDS = ("cf1", "cf2", "cf3", "cf4", "cf5", "invoice_callback_url",
                       "themeCode", "contractId")
PAYIN_RETRY_SCHEDULE = (5, 60, 300, 300, 300)
PAYIN_DELAYED_OUTCOME_S = 3
PAYIN_MAX_CLOCK_MOVE_S = 46 * 86400
MONEY_FORMAT = "Invalid money format. Should have 2 fraction digits"


def payin_time(dt):
    """Payin's timestamp format: 2023-02-17T14:50:44+03:00."""
    return dt.astimezone(MSK).replace(microsecond=0).isoformat()


def money(amount):
    return f"{amount:.2f}"


def money_number(amount):
    """A JSON number in its shortest form: 5, 2.5, 2211.24."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


class ControlError(Exception):
    """A control call that cannot be done: HTTP status and a message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class PayinError(ApiError):
    def __init__(self, status, code, description, cause=None):
        super().__init__(status, code, description)
        self.cause = cause


def payin_error_body(code, description, cause=None):
    body = {
        "serviceName": "payin-core",
        "errorCode": code,
        "description": description,
        "userMessage": description,
        "dateTime": qiwi_time(now()),
        "traceId": secrets.token_hex(8),
    }
    if cause:
        body["cause"] = cause
    return body


class WrittenNumber(str):
    """A JSON number with an exponent (5.00e0), kept as written: never valid money."""


def payin_number(text):
    """parse_float for Payin bodies: Decimal keeps 150.00 apart from 150.0."""
    return Decimal(text) if re.fullmatch(r"-?[0-9]+\.[0-9]+", text) else WrittenNumber(text)


def invalid(field, message):
    return PayinError(400, "validation.error", "Validation error", {field: [message]})


def payin_money(obj, test_mode=True):
    """amount{value,currency}, value with exactly two decimals; (Decimal, currency)."""
    if not isinstance(obj, dict):
        raise invalid("amount", "must not be null")
    value, currency = obj.get("value"), obj.get("currency")
    if isinstance(value, str) and not isinstance(value, WrittenNumber) \
            and re.fullmatch(r"-?[0-9]+\.[0-9]{2}", value):
        value = Decimal(value)
    # the number as written: digits, a point and two digits, no exponent
    if not isinstance(value, Decimal) or value.as_tuple().exponent != -2:
        raise invalid("amount", MONEY_FORMAT)
    if value <= 0:
        raise invalid("amount", "must be greater than 0")
    if not isinstance(currency, str) or len(currency) != 3:
        raise invalid("amount.currency", "must be a currency code")
    if test_mode and currency != "RUB":
        raise invalid("amount.currency", "Test mode: only RUB")
    if test_mode and value > PAYIN_MAX_TEST_AMOUNT:
        raise invalid("amount", "Test mode: at most 10.00 RUB per operation")
    return value, currency


def payin_string(obj, field, maximum=PAYIN_MAX_STRING):
    value = obj.get(field.split(".")[-1])
    if value is not None and (not isinstance(value, str) or len(value) > maximum):
        raise invalid(field, f"must be a string of at most {maximum} characters")
    return value


def luhn_ok(pan):
    digits = [int(c) for c in reversed(pan)]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2)
                for i, d in enumerate(digits))
    return total % 10 == 0


def payin_signature(key, kind, obj):
    """Signature of a notification: HMAC-SHA256 of the documented fields joined by '|'."""
    if kind == "TOKEN":
        fields = [obj["merchantSiteUid"], obj["account"], obj["status"]["value"],
                  obj["status"]["changedDateTime"]]
    elif kind == "CHECK_CARD":
        fields = [obj["requestUid"], obj["checkOperationDate"]]
    else:
        ident = {"PAYMENT": "paymentId", "CAPTURE": "captureId", "REFUND": "refundId"}[kind]
        fields = [obj[ident], obj["createdDateTime"],
                  money(Decimal(str(obj["amount"]["value"])))]
    return hmac.new(key.encode(), "|".join(fields).encode(), hashlib.sha256).hexdigest()


class PayinSandbox:
    """Payin's sites, invoices, payments, captures, refunds, tokens and notifications."""

    BODY_KEYS = {"PAYMENT": "payment", "CAPTURE": "capture", "REFUND": "refund",
                 "TOKEN": "token", "CHECK_CARD": "checkPaymentMethod"}

    def __init__(self, site_id, api_key, notification_key):
        self.default_site = {"siteId": site_id, "apiKey": api_key,
                             "notificationKey": notification_key}
        self.lock = threading.RLock()
        self.generation = 0
        self.reset()
        threading.Thread(target=self.ticker, daemon=True).start()

    def reset(self):
        with self.lock:
            self.generation += 1
            self.sites = {}
            self.configure_site(dict(self.default_site))
            self.invoices = {}
            self.payments = {}
            self.captures = {}
            self.refunds = {}
            self.tokens = {}
            self.checks = {}
            self.notifications = []
            self.requests = 0
            self.methods = {}
            self.next_payment = 4600000
            # what falls due, as heaps of (when, sequence, key): card outcomes
            # of months 03/04, invoice expiries, capture deadlines
            self.due = {"outcome": [], "expiry": [], "deadline": []}
            self.sequence = 0
            self.offset = timedelta(0)
            # test mode's operations a day: off (None) until POST limits
            self.daily_limit = None
            self.operations = {}

    def configure_site(self, args):
        site_id, api_key = args.get("siteId"), args.get("apiKey")
        if not isinstance(site_id, str) or not site_id or not isinstance(api_key, str) or not api_key:
            raise ControlError(400, "siteId and apiKey are required")
        hold = args.get("holdHours", 72)
        if not isinstance(hold, (int, float)) or not 0 < hold <= PAYIN_MAX_HOLD_HOURS:
            raise ControlError(400, "holdHours must be more than 0 and at most 120 (5 days)")
        action = args.get("deadlineAction", "capture")
        if action not in ("capture", "reverse"):
            raise ControlError(400, "deadlineAction is capture or reverse")
        site = {
            "siteId": site_id, "apiKey": api_key,
            "notificationKey": args.get("notificationKey") or api_key,
            "notificationUrl": args.get("notificationUrl"),
            "holdHours": hold, "deadlineAction": action,
            "retryUnitMs": int(args.get("retryUnitMs", 1000)),
        }
        with self.lock:
            self.sites[site_id] = site
        return site

    # ---- test mode's daily limit ----

    def operations_today(self, site_id):
        return self.operations.get((site_id, self.clock().astimezone(MSK).date()), 0)

    def within_daily_limit(self, site_id):
        return self.daily_limit is None or self.operations_today(site_id) < self.daily_limit

    def count_operation(self, site_id):
        """One more operation of the site today (Moscow date of Payin's clock);
        a capture or refund over the limit is refused, nothing stored."""
        if not self.within_daily_limit(site_id):
            raise invalid("siteId", f"Test mode: at most {self.daily_limit} operations a day")
        key = (site_id, self.clock().astimezone(MSK).date())
        self.operations[key] = self.operations.get(key, 0) + 1

    def set_limits(self, args):
        limit = args.get("dailyTestOperations")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ControlError(400, "dailyTestOperations is a count (0 or more) or null (no limit)")
        self.daily_limit = limit

    # ---- time ----

    def clock(self):
        """Payin's time: the wall clock plus what POST /sandbox/payin/clock added."""
        return now() + self.offset

    def move_clock(self, args):
        """Time passes: what falls due meanwhile happens, in order of its time."""
        seconds = args.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not 0 < seconds <= PAYIN_MAX_CLOCK_MOVE_S:
            raise ControlError(400, "seconds must be more than 0 and at most 46 days")
        target = self.offset + timedelta(seconds=seconds)
        # each event at its own time: a hold authorised by a delayed card
        # outcome gets its deadline from the outcome's time, not the jump's end
        while True:
            due = [heap[0][0] for heap in self.due.values() if heap]
            if not due or min(due) > now() + target:
                break
            self.offset = max(self.offset, min(due) - now())
            self.advance()
        self.offset = target
        self.advance()

    def ticker(self):
        while True:
            time.sleep(0.05)
            self.advance()

    def schedule(self, kind, when, key):
        self.sequence += 1
        heapq.heappush(self.due[kind], (when, self.sequence, key))

    def take_due(self, kind, moment):
        heap = self.due[kind]
        while heap and heap[0][0] <= moment:
            yield heapq.heappop(heap)[2]

    def advance(self):
        """Whatever is due by now: delayed card outcomes, expiries, capture deadlines."""
        with self.lock:
            moment = self.clock()
            for pid in self.take_due("outcome", moment):
                payment = self.payments[pid]
                if payment["status"] == "WAITING" and payment["outcome"]:
                    outcome, payment["outcome"] = payment["outcome"], None
                    self.finish_payment(payment, outcome)
            for key in self.take_due("expiry", moment):
                invoice = self.invoices[key]
                if invoice["status"] == "CREATED" and invoice["expires"] <= moment:
                    self.expire_invoice(invoice)
            for pid in self.take_due("deadline", moment):
                payment = self.payments[pid]
                if self.held(payment) > 0 and payment["deadline"] <= moment:
                    self.deadline_passed(payment)

    def expire_invoice(self, invoice):
        invoice["status"], invoice["changed"] = "EXPIRED", self.clock()
        for pid in invoice["payments"]:
            payment = self.payments[pid]
            if payment["status"] == "WAITING":
                reason = "PAYMENT_EXPIRED_3DS" if payment["threeDS"] else "INVALID_STATE"
                payment["threeDS"] = payment["outcome"] = None
                self.finish_payment(payment, ("DECLINED", reason))

    def deadline_passed(self, payment):
        site = self.sites[payment["site"]]
        if site["deadlineAction"] == "capture":
            self.capture(payment, str(uuid.uuid4()), {}, counted=False)
        else:
            self.refund(payment, str(uuid.uuid4()), {
                "amount": {"value": money(self.held(payment)), "currency": payment["currency"]}},
                counted=False)

    # ---- lookups ----

    def authorize(self, site_id, header):
        site = self.sites.get(site_id)
        if site is None or bearer_token(header) != site["apiKey"]:
            raise PayinError(401, "auth.unauthorized", "Wrong authentication data")
        return site

    def invoice(self, site_id, bill_id):
        invoice = self.invoices.get((site_id, bill_id))
        if invoice is None:
            raise PayinError(404, "payin.resource.not.found", "Invoice not found")
        return invoice

    def payment(self, site_id, payment_id):
        payment = self.payments.get(payment_id)
        if payment is None or payment["site"] != site_id:
            raise PayinError(404, "payin.resource.not.found", "Payment not found")
        return payment

    @staticmethod
    def held(payment):
        """What a two-step payment still holds: authorised, not captured, not reversed."""
        if payment["status"] != "COMPLETED" or payment["sale"] or payment["captureId"]:
            return Decimal("0.00")
        return payment["amount"] - payment["reversed"]

    # ---- invoices ----

    def create_invoice(self, site, bill_id, body):
        if not bill_id or len(bill_id) > MAX_ID_LENGTH:
            raise invalid("billId", "must be 1 to 200 characters")
        flags = body.get("flags") or []
        if not isinstance(flags, list) or any(f not in PAYIN_FLAGS for f in flags):
            raise invalid("flags", f"must be a list of {', '.join(PAYIN_FLAGS)}")
        if "CHECK_CARD" in flags:
            # QIWI's card check doc: "Do not specify invoice amount"; answered 0.00 RUB
            if "SALE" in flags:
                raise invalid("flags", "CHECK_CARD does not combine with SALE: a card check moves no money")
            if body.get("amount") is not None:
                raise invalid("amount", "must be absent for a card check (CHECK_CARD)")
            amount, currency = Decimal("0.00"), "RUB"
        else:
            amount, currency = payin_money(body.get("amount"))
        expires_raw = body.get("expirationDateTime")
        if not isinstance(expires_raw, str):
            raise invalid("expirationDateTime", "must not be null")
        try:
            expires = datetime.fromisoformat(expires_raw)
        except ValueError:
            raise invalid("expirationDateTime", "must be a date and time with an offset")
        if expires.tzinfo is None:
            raise invalid("expirationDateTime", "must be a date and time with an offset")
        comment = payin_string(body, "comment")
        customer = body.get("customer")
        if customer is not None:
            if not isinstance(customer, dict):
                raise invalid("customer", "must be an object")
            for key in ("account", "email", "phone"):
                payin_string(customer, f"customer.{key}")
        fields = body.get("customFields")
        if fields is not None:
            if not isinstance(fields, dict):
                raise invalid("customFields", "must be an object")
            for key in fields:
                if key not in PAYIN_CUSTOM_FIELDS:
                    raise invalid(f"customFields.{key}", "unknown field")
                payin_string(fields, f"customFields.{key}")
        methods = body.get("billPaymentMethodsType")
        if methods is not None and (not isinstance(methods, list)
                                    or any(m not in PAYIN_METHODS for m in methods)):
            raise invalid("billPaymentMethodsType", f"must be a list of {', '.join(PAYIN_METHODS)}")
        if "CHECK_CARD" in flags and methods is not None and methods != ["CARD"]:
            raise invalid("billPaymentMethodsType", "a card check takes only CARD")
        if "BIND_PAYMENT_TOKEN" in flags and not (customer or {}).get("account"):
            raise invalid("customer.account", "is required to bind a payment token")

        request = {"amount": amount, "currency": currency, "expires": expires,
                   "comment": comment, "customer": customer or None,
                   "customFields": fields or None, "methods": methods,
                   "flags": sorted(flags)}
        existing = self.invoices.get((site["siteId"], bill_id))
        if existing is not None:
            if existing["request"] != request:
                raise PayinError(409, "payin.resource.already.exists",
                                 "Invoice with this billId already exists with other parameters")
            return existing
        if expires <= self.clock():
            raise invalid("expirationDateTime", "must be in the future")
        created = self.clock()
        uid = str(uuid.uuid4())
        invoice = {
            "site": site["siteId"], "billId": bill_id, "invoiceUid": uid,
            "amount": amount, "currency": currency, "expires": expires,
            "status": "CREATED", "changed": created, "created": created,
            "comment": comment, "customer": customer or None,
            "customFields": fields or None, "methods": methods, "flags": list(flags),
            "payUrl": f"https://oplata.qiwi.com/form?invoiceUid={uid}",
            "request": request, "payments": [],
        }
        self.invoices[(site["siteId"], bill_id)] = invoice
        self.schedule("expiry", expires, (site["siteId"], bill_id))
        if "CHECK_CARD" in flags:
            # the check exists from now, waiting for the buyer; its id is the billId
            self.checks[(site["siteId"], bill_id)] = {
                "requestUid": bill_id, "site": site["siteId"], "status": "INIT",
                "isValidCard": None, "threeDsStatus": None, "checkOperationDate": None,
                "cardInfo": None, "createdToken": None}
        return invoice

    def invoice_json(self, invoice, details=False):
        body = {
            "billId": invoice["billId"],
            "invoiceUid": invoice["invoiceUid"],
            "amount": {"currency": invoice["currency"], "value": money(invoice["amount"])},
            "expirationDateTime": payin_time(invoice["expires"]),
            "status": {"value": invoice["status"], "changedDateTime": payin_time(invoice["changed"])},
            "comment": invoice["comment"],
            "flags": invoice["flags"],
            "payUrl": invoice["payUrl"],
        }
        if invoice["customer"] is not None:
            body["customer"] = invoice["customer"]
        if invoice["customFields"] is not None:
            body["customFields"] = invoice["customFields"]
        if invoice["methods"] is not None:
            body["billPaymentMethodsType"] = invoice["methods"]
        if details:
            body["payments"] = [self.payment_json(self.payments[p]) for p in invoice["payments"]]
        return body

    # ---- payments (the buyer on the form) ----

    def pay(self, site_id, bill_id, args):
        """The buyer pays an invoice on the form with a test card or a bound token."""
        invoice = self.invoice(site_id, bill_id)
        if invoice["status"] != "CREATED":
            raise ControlError(409, f"invoice is {invoice['status']}")
        if any(self.payments[p]["status"] == "WAITING" for p in invoice["payments"]):
            raise ControlError(409, "a payment of this invoice is waiting")
        token = None
        if args.get("token") is not None:
            token = self.tokens.get((site_id, args["token"]))
            account = (invoice["customer"] or {}).get("account")
            if token is None or token["status"] != "CREATED" or token["account"] != account:
                raise ControlError(409, "no such token for this invoice's customer.account")
            card = token["card"]
        else:
            card = self.card(args)
        if "CHECK_CARD" in invoice["flags"]:
            return self.check_card(invoice, card, args)
        created = self.clock()
        payment_id = str(self.next_payment)
        self.next_payment += 1
        method = {"type": "TOKEN", "paymentToken": token["token"]} if token else {"type": "CARD"}
        method["maskedPan"] = card["masked"]
        payment = {
            "paymentId": payment_id, "site": site_id, "billId": bill_id,
            "invoiceUid": invoice["invoiceUid"], "amount": invoice["amount"],
            "currency": invoice["currency"], "created": created, "changed": created,
            "status": "WAITING", "reason": None, "sale": "SALE" in invoice["flags"],
            "captured": Decimal("0.00"), "refunded": Decimal("0.00"),
            "reversed": Decimal("0.00"), "captureId": None, "deadline": None,
            "method": method, "card": card, "threeDS": None, "outcome": None,
            "declineReason": args.get("reason") or "ACQUIRING_INSUFFICIENT_FUNDS",
            "customer": invoice["customer"], "customFields": invoice["customFields"],
            "createdToken": None,
        }
        self.payments[payment_id] = payment
        invoice["payments"].append(payment_id)
        if not self.within_daily_limit(site_id):
            self.finish_payment(payment, ("DECLINED", "ACQUIRING_LIMIT_EXCEEDED"))
            return payment
        self.count_operation(site_id)
        if token is None and card["threeDS"]:
            payment["threeDS"] = {"acsUrl": f"https://acs.sandbox.invalid/{payment_id}",
                                  "pareq": secrets.token_hex(16)}
            if args.get("threeDS") in ("pass", "fail"):
                self.three_ds(payment, args["threeDS"] == "pass")
        else:
            self.authorise(payment)
        return payment

    @staticmethod
    def card(args):
        pan, expiry = str(args.get("pan", "")), str(args.get("expiry", ""))
        if not (pan.isdigit() and 13 <= len(pan) <= 19 and luhn_ok(pan)):
            raise ControlError(400, "pan must be 13 to 19 digits passing the Luhn check")
        if len(expiry) != 5 or expiry[2] != "/" or not (expiry[:2] + expiry[3:]).isdigit() \
                or not 1 <= int(expiry[:2]) <= 12:
            raise ControlError(400, "expiry must be MM/YY")
        cvv, holder = str(args.get("cvv", "")), str(args.get("holderName", ""))
        if not (cvv.isdigit() and len(cvv) == 3):
            raise ControlError(400, "cvv must be 3 digits")
        return {"pan": pan, "expiry": expiry, "month": expiry[:2],
                "masked": pan[:6] + "*" * (len(pan) - 10) + pan[-4:],
                "threeDS": cvv == "849" or "3ds" in holder.lower(),
                "system": {"2": "MIR", "4": "VISA", "5": "MASTERCARD"}.get(pan[0], "UNKNOWN")}

    def three_ds(self, payment, passed):
        if payment["status"] != "WAITING" or not payment["threeDS"]:
            raise ControlError(409, "the payment does not wait for 3-D Secure")
        payment["threeDS"] = None
        if passed:
            self.authorise(payment)
        else:
            self.finish_payment(payment, ("DECLINED", "PAYMENT_EXPIRED_3DS"))

    def card_outcome(self, card, reason):
        """The test-mode rule: the expiry month decides; (status, reason, delayed)."""
        month = card["month"]
        if month == "02":
            return ("DECLINED", reason), False
        if month == "03":
            return ("COMPLETED", None), True
        if month == "04":
            return ("DECLINED", reason), True
        return ("COMPLETED", None), False

    def authorise(self, payment):
        outcome, delayed = self.card_outcome(payment["card"], payment["declineReason"])
        if delayed:
            payment["outcome"] = outcome
            self.schedule("outcome", self.clock() + timedelta(seconds=PAYIN_DELAYED_OUTCOME_S),
                          payment["paymentId"])
        else:
            self.finish_payment(payment, outcome)

    def finish_payment(self, payment, outcome):
        status, reason = outcome
        moment = self.clock()
        payment["status"], payment["changed"], payment["reason"] = status, moment, reason
        invoice = self.invoices[(payment["site"], payment["billId"])]
        if status == "COMPLETED":
            payment["method"]["rrn"] = str(secrets.randbelow(10 ** 12)).zfill(12)
            payment["method"]["authCode"] = str(secrets.randbelow(10 ** 6)).zfill(6)
            if payment["sale"]:
                payment["captured"] = payment["amount"]
            else:
                hours = self.sites[payment["site"]]["holdHours"]
                payment["deadline"] = moment + timedelta(hours=hours)
                self.schedule("deadline", payment["deadline"], payment["paymentId"])
            invoice["status"], invoice["changed"] = "PAID", moment
        self.notify(payment["site"], "PAYMENT", self.payment_notification(payment),
                    (invoice["customFields"] or {}).get("invoice_callback_url"))
        if "BIND_PAYMENT_TOKEN" in invoice["flags"] and payment["method"]["type"] == "CARD":
            payment["createdToken"] = self.bind_token(invoice, payment["card"], status == "COMPLETED")

    def bind_token(self, invoice, card, success):
        """Issue a token for the invoice's customer (TOKEN notification either way)."""
        account = invoice["customer"]["account"]
        moment = self.clock()
        token = {
            "token": str(uuid.uuid4()), "site": invoice["site"], "account": account,
            "card": card, "status": "CREATED" if success else "REJECTED", "changed": moment,
            "expiredDate": f"20{card['expiry'][3:]}-{card['expiry'][:2]}-01T00:00:00+03:00",
        }
        if success:
            self.tokens[(invoice["site"], token["token"])] = token
        body = {"merchantSiteUid": invoice["site"], "account": account,
                "status": {"value": token["status"], "changedDateTime": payin_time(moment)}}
        if success:
            body.update({"token": token["token"], "name": card["masked"],
                         "expiredDate": token["expiredDate"]})
        self.notify(invoice["site"], "TOKEN", body)
        if not success:
            return None
        return {"token": token["token"], "name": card["masked"],
                "expiredDate": token["expiredDate"], "account": account}

    def check_card(self, invoice, card, args):
        """An invoice flagged CHECK_CARD: the form checks the card once, no money moves."""
        check = self.checks[(invoice["site"], invoice["billId"])]
        if check["status"] != "INIT":
            raise ControlError(409, f"the card of this invoice was checked already ({check['status']})")
        if card["threeDS"] and args.get("threeDS") != "pass":
            outcome, three_ds = ("DECLINED", None), "FAILED" if args.get("threeDS") == "fail" else "NOT_PASSED"
        else:
            outcome, _ = self.card_outcome(card, None)
            three_ds = "PASSED" if card["threeDS"] else "WITHOUT"
        valid = outcome[0] == "COMPLETED"
        check.update({
            "status": "SUCCESS" if valid else "ERROR", "isValidCard": valid,
            "threeDsStatus": three_ds, "checkOperationDate": payin_time(self.clock()),
            "cardInfo": {"paymentSystem": card["system"], "issuingCountry": "643",
                         "issuingBank": "Sandbox bank", "fundingSource": "UNKNOWN",
                         "paymentSystemProduct": "UNKNOWN"},
        })
        if "BIND_PAYMENT_TOKEN" in invoice["flags"]:
            check["createdToken"] = self.bind_token(invoice, card, valid)
        self.notify(invoice["site"], "CHECK_CARD", self.check_json(check),
                    (invoice["customFields"] or {}).get("invoice_callback_url"))
        return check

    @staticmethod
    def check_json(check):
        """A card check as QIWI writes it: only what is known (INIT: requestUid and status)."""
        return {key: check[key] for key in ("requestUid", "status", "isValidCard", "threeDsStatus",
                                            "checkOperationDate", "cardInfo", "createdToken")
                if check[key] is not None}

    def payment_json(self, payment):
        status = {"value": payment["status"], "changedDateTime": payin_time(payment["changed"])}
        if payment["reason"]:
            status["reason"] = payment["reason"]
            status["reasonMessage"] = payment["reason"].replace("_", " ").capitalize()
        body = {
            "paymentId": payment["paymentId"],
            "billId": payment["billId"],
            "createdDateTime": payin_time(payment["created"]),
            "amount": {"currency": payment["currency"], "value": money(payment["amount"])},
            "capturedAmount": {"currency": payment["currency"], "value": money(payment["captured"])},
            "refundedAmount": {"currency": payment["currency"], "value": money(payment["refunded"])},
            "paymentMethod": dict(payment["method"]),
            "status": status,
            "paymentCardInfo": {"issuingCountry": "643", "issuingBank": "Sandbox bank",
                                "paymentSystem": payment["card"]["system"],
                                "fundingSource": "UNKNOWN", "paymentSystemProduct": "UNKNOWN"},
            "flags": ["SALE"] if payment["sale"] else ["AUTH"],
        }
        if payment["threeDS"]:
            body["requirements"] = {"threeDS": dict(payment["threeDS"])}
        if payment["customFields"] is not None:
            body["customFields"] = payment["customFields"]
        if payment["createdToken"]:
            body["createdToken"] = payment["createdToken"]
        return body

    def payment_notification(self, payment):
        status = {"value": "SUCCESS" if payment["status"] == "COMPLETED" else "DECLINE",
                  "changedDateTime": payin_time(payment["changed"])}
        if payment["reason"]:
            status["reasonCode"] = payment["reason"]
            status["reasonMessage"] = payment["reason"].replace("_", " ").capitalize()
        body = {
            "paymentId": payment["paymentId"], "type": "PAYMENT",
            "createdDateTime": payin_time(payment["created"]),
            "status": status,
            "amount": {"value": money_number(payment["amount"]), "currency": payment["currency"]},
            "paymentMethod": dict(payment["method"]),
            "paymentCardInfo": self.payment_json(payment)["paymentCardInfo"],
            "billId": payment["billId"], "invoiceUid": payment["invoiceUid"],
            "flags": ["SALE"] if payment["sale"] else ["AUTH"],
        }
        if payment["customer"] is not None:
            body["customer"] = payment["customer"]
        if payment["customFields"] is not None:
            body["customFields"] = payment["customFields"]
        return body

    # ---- captures and refunds ----

    @staticmethod
    def optional_body(body):
        body = body or {}
        for key in ("callbackUrl", "comment"):
            payin_string(body, key)
        return {"callbackUrl": body.get("callbackUrl"), "comment": body.get("comment")}

    def capture(self, payment, capture_id, body, counted=True):
        if not capture_id or len(capture_id) > MAX_ID_LENGTH:
            raise invalid("captureId", "must be 1 to 200 characters")
        request = self.optional_body(body)
        # the documents' capture body is {callbackUrl, comment}: no partial
        # capture, so an amount may only be the whole hold (or, again, the capture's)
        asked = payin_money((body or {}).get("amount")) if (body or {}).get("amount") is not None else None
        existing = self.captures.get((payment["paymentId"], capture_id))
        whole = existing["amount"] if existing is not None else self.held(payment)
        if asked is not None and asked != (whole, payment["currency"]) and whole > 0:
            raise invalid("amount", f"Partial capture is not supported: the capture takes the whole "
                                    f"{money(whole)} {payment['currency']} held")
        if existing is not None:
            if existing["request"] != request:
                raise PayinError(409, "payin.resource.already.exists",
                                 "Capture with this captureId already exists with other parameters")
            return existing
        if payment["captureId"] is not None:
            raise PayinError(400, "payin.incorrect-method-invocation",
                             "Successful capture already done for this payment")
        if payment["status"] != "COMPLETED":
            raise PayinError(400, "payin.incorrect-method-invocation",
                             f"Payment is {payment['status']}: only an authorised payment can be captured")
        if payment["sale"]:
            raise PayinError(400, "payin.incorrect-method-invocation",
                             "Payment is one-step (SALE): it needs no capture")
        amount = self.held(payment)
        if amount <= 0:
            raise PayinError(400, "payin.incorrect-method-invocation",
                             "Payment hold has been reversed: nothing to capture")
        if counted:
            self.count_operation(payment["site"])
        moment = self.clock()
        capture = {"captureId": capture_id, "paymentId": payment["paymentId"],
                   "created": moment, "changed": moment, "amount": amount,
                   "currency": payment["currency"], "request": request}
        self.captures[(payment["paymentId"], capture_id)] = capture
        payment["captureId"] = capture_id
        payment["captured"] = amount
        self.notify(payment["site"], "CAPTURE", dict(self.capture_json(capture),
                    type="CAPTURE", billId=payment["billId"],
                    status={"value": "SUCCESS", "changedDateTime": payin_time(moment)},
                    amount={"value": money_number(amount), "currency": payment["currency"]}),
                    request["callbackUrl"])
        return capture

    @staticmethod
    def capture_json(capture):
        body = {"captureId": capture["captureId"], "paymentId": capture["paymentId"],
                "createdDateTime": payin_time(capture["created"]),
                "amount": {"currency": capture["currency"], "value": money(capture["amount"])},
                "status": {"value": "COMPLETED", "changedDateTime": payin_time(capture["changed"])}}
        if capture["request"]["comment"] is not None:
            body["comment"] = capture["request"]["comment"]
        return body

    def refund(self, payment, refund_id, body, counted=True):
        if not refund_id or len(refund_id) > MAX_ID_LENGTH:
            raise invalid("refundId", "must be 1 to 200 characters")
        # the documents' refund body is {amount}: QIWI decides REVERSAL itself
        if (body or {}).get("flags") not in (None, []):
            raise invalid("flags", "A refund takes no flags: QIWI answers REVERSAL when it releases a hold")
        amount, currency = payin_money((body or {}).get("amount"))
        request = dict(self.optional_body(body), amount=amount, currency=currency)
        existing = self.refunds.get((payment["paymentId"], refund_id))
        if existing is not None:
            if existing["request"] != request:
                raise PayinError(409, "payin.resource.already.exists",
                                 "Refund with this refundId already exists with other parameters")
            return existing
        if payment["status"] != "COMPLETED":
            raise PayinError(400, "payin.incorrect-method-invocation",
                             f"Payment is {payment['status']}: only an authorised payment can be refunded")
        if currency != payment["currency"]:
            raise invalid("amount.currency", "must be the payment's currency")
        reversal = not payment["sale"] and payment["captureId"] is None
        left = self.held(payment) if reversal else payment["captured"] - (
            payment["refunded"] - payment["reversed"])
        if amount > left:
            raise invalid("amount", "Refund amount exceeds the available amount")
        if counted:
            self.count_operation(payment["site"])
        moment = self.clock()
        refund = {"refundId": refund_id, "paymentId": payment["paymentId"],
                  "created": moment, "changed": moment, "amount": amount,
                  "currency": currency, "reversal": reversal, "request": request}
        self.refunds[(payment["paymentId"], refund_id)] = refund
        payment["refunded"] += amount
        if reversal:
            payment["reversed"] += amount
        self.notify(payment["site"], "REFUND", dict(self.refund_json(refund),
                    type="REFUND", billId=payment["billId"],
                    status={"value": "SUCCESS", "changedDateTime": payin_time(moment)},
                    amount={"value": money_number(amount), "currency": currency}),
                    request["callbackUrl"])
        return refund

    @staticmethod
    def refund_json(refund):
        return {"refundId": refund["refundId"], "paymentId": refund["paymentId"],
                "createdDateTime": payin_time(refund["created"]),
                "amount": {"currency": refund["currency"], "value": money(refund["amount"])},
                "status": {"value": "COMPLETED", "changedDateTime": payin_time(refund["changed"])},
                "flags": ["REVERSAL"] if refund["reversal"] else []}

    def delete_token(self, site_id, body):
        account, token_id = body.get("customerAccountId"), body.get("token")
        if not isinstance(account, str) or not account:
            raise invalid("customerAccountId", "must not be null")
        if not isinstance(token_id, str) or not token_id:
            raise invalid("token", "must not be null")
        token = self.tokens.get((site_id, token_id))
        if token is None or token["status"] != "CREATED" or token["account"] != account:
            raise PayinError(404, "payin.resource.not.found", "Token not found")
        token["status"], token["changed"] = "DELETED", self.clock()

    # ---- notifications ----

    def notify(self, site_id, kind, obj, url=None):
        site = self.sites[site_id]
        record = {
            "id": len(self.notifications) + 1, "site": site_id, "type": kind,
            "url": url or site["notificationUrl"],
            "body": {self.BODY_KEYS[kind]: obj, "type": kind, "version": "1"},
            "signature": payin_signature(site["notificationKey"], kind, obj),
            "attempts": [], "delivered": False,
        }
        self.notifications.append(record)
        if record["url"]:
            threading.Thread(target=self.deliver, daemon=True,
                             args=(record, site["retryUnitMs"], self.generation)).start()

    def deliver(self, record, unit_ms, generation):
        """QIWI's schedule: at once, then after 5, 60, 300, 300, 300 units."""
        payload = json.dumps(record["body"], ensure_ascii=False, separators=(",", ":")).encode()
        for wait in (0,) + PAYIN_RETRY_SCHEDULE:
            time.sleep(wait * unit_ms / 1000.0)
            if generation != self.generation:
                return
            request = urllib.request.Request(record["url"], data=payload, method="POST", headers={
                "Content-Type": "application/json", "Signature": record["signature"]})
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    status = answer.status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError as e:
                status = str(e)
            with self.lock:
                record["attempts"].append({"at": qiwi_time(now()), "status": status})
                if status == 200:
                    record["delivered"] = True
                    return

    # ---- the API ----

    def call(self, method, site_id, segments, auth, body):
        """One API request, after the plumbing; (status, JSON or None)."""
        with self.lock:
            self.requests += 1
            self.methods[method] = self.methods.get(method, 0) + 1
            site = self.authorize(site_id, auth)
            self.advance()
            n = len(segments)
            if n == 2 and segments[0] == "bills":
                if method == "PUT":
                    return 200, self.invoice_json(self.create_invoice(site, segments[1], body))
                if method == "GET":
                    invoice = self.invoice(site_id, segments[1])
                    return 200, [self.payment_json(self.payments[p]) for p in invoice["payments"]]
            if n == 3 and segments[0] == "bills" and segments[2] == "details" and method == "GET":
                return 200, self.invoice_json(self.invoice(site_id, segments[1]), details=True)
            if n >= 2 and segments[0] == "payments":
                payment = self.payment(site_id, segments[1])
                if n == 2 and method == "GET":
                    return 200, self.payment_json(payment)
                if n == 4 and segments[2] == "captures":
                    if method == "PUT":
                        return 200, self.capture_json(self.capture(payment, segments[3], body))
                    if method == "GET":
                        capture = self.captures.get((payment["paymentId"], segments[3]))
                        if capture is None:
                            raise PayinError(404, "payin.resource.not.found", "Capture not found")
                        return 200, self.capture_json(capture)
                if n == 3 and segments[2] == "refunds" and method == "GET":
                    return 200, [self.refund_json(r) for (p, _), r in self.refunds.items()
                                 if p == payment["paymentId"]]
                if n == 4 and segments[2] == "refunds":
                    if method == "PUT":
                        return 200, self.refund_json(self.refund(payment, segments[3], body))
                    if method == "GET":
                        refund = self.refunds.get((payment["paymentId"], segments[3]))
                        if refund is None:
                            raise PayinError(404, "payin.resource.not.found", "Refund not found")
                        return 200, self.refund_json(refund)
            if segments == ["tokens"] and method == "DELETE":
                self.delete_token(site_id, body or {})
                return 204, None
            if n == 4 and segments[:3] == ["validation", "card", "requests"] and method == "GET":
                check = self.checks.get((site_id, segments[3]))
                if check is None:
                    raise PayinError(404, "payin.resource.not.found", "Card check not found")
                return 200, self.check_json(check)
        raise PayinError(404, "http.url.not.found", "Not found")

    def control(self, method, parts, args):
        """/sandbox/payin/...: the buyer, the clock and the sites; (status, JSON)."""
        with self.lock:
            self.advance()
            if parts == ["sites"] and method == "POST":
                try:
                    site = self.configure_site(args)
                except ControlError as e:
                    return e.status, {"error": str(e)}
                return 200, {k: v for k, v in site.items() if k not in ("apiKey", "notificationKey")}
            if parts == ["reset"] and method == "POST":
                self.reset()
                return 200, {"ok": True}
            if parts == ["notifications"] and method == "GET":
                return 200, self.notifications
            if parts == ["limits"] and method in ("GET", "POST"):
                try:
                    if method == "POST":
                        self.set_limits(args)
                except ControlError as e:
                    return e.status, {"error": str(e)}
                return 200, {"dailyTestOperations": self.daily_limit,
                             "today": {site: self.operations_today(site) for site in self.sites}}
            if parts == ["clock"] and method in ("GET", "POST"):
                try:
                    if method == "POST":
                        self.move_clock(args)
                except ControlError as e:
                    return e.status, {"error": str(e)}
                return 200, {"now": payin_time(self.clock()), "movedSeconds": self.offset.total_seconds()}
            if parts == ["stats"] and method == "GET":
                return 200, {"requests": self.requests, "byMethod": dict(self.methods), "invoices": len(self.invoices),
                             "payments": len(self.payments), "captures": len(self.captures),
                             "refunds": len(self.refunds), "notifications": len(self.notifications)}
            if len(parts) == 5 and parts[0] == "sites" and method == "POST":
                site_id, kind, ident, action = parts[1], parts[2], parts[3], parts[4]
                if site_id not in self.sites:
                    return 404, {"error": "no such site"}
                try:
                    if kind == "bills" and action == "pay":
                        result = self.pay(site_id, ident, args)
                        if "requestUid" in result:
                            return 200, self.check_json(result)
                        return 200, self.payment_json(result)
                    if kind == "bills" and action == "expire":
                        invoice = self.invoice(site_id, ident)
                        if invoice["status"] != "CREATED":
                            raise ControlError(409, f"invoice is {invoice['status']}")
                        invoice["expires"] = self.clock()
                        self.expire_invoice(invoice)
                        return 200, self.invoice_json(invoice)
                    if kind == "payments" and action == "3ds":
                        payment = self.payment(site_id, ident)
                        if args.get("result") not in ("pass", "fail"):
                            raise ControlError(400, "result is pass or fail")
                        self.three_ds(payment, args["result"] == "pass")
                        return 200, self.payment_json(payment)
                    if kind == "payments" and action == "deadline":
                        payment = self.payment(site_id, ident)
                        if self.held(payment) <= 0:
                            raise ControlError(409, "the payment holds nothing")
                        payment["deadline"] = self.clock()
                        self.deadline_passed(payment)
                        return 200, self.payment_json(payment)
                except PayinError as e:
                    return e.status, {"error": e.description}
                except ControlError as e:
                    return e.status, {"error": str(e)}
        return 404, {"error": "unknown control endpoint"}


# ---- a paged list, for the core's pager (test/t/019_core_paging.pl) ----

class PagedList:
    """P pages of K numbered items, with a failing and a slow page on demand."""

    def __init__(self):
        self.lock = threading.Lock()
        self.configure({})

    def configure(self, args):
        with self.lock:
            self.pages = int(args.get("pages", 1))
            self.items = int(args.get("items", 10))
            self.empty = args.get("empty", "list")
            self.fail_page = args.get("fail_page")
            self.fail_status = int(args.get("fail_status", 500))
            self.fail_times = args.get("fail_times")
            self.hold_page = args.get("hold_page")
            self.requests = 0
            self.by_page = {}

    def stats(self):
        with self.lock:
            return {"requests": self.requests, "byPage": dict(self.by_page)}

    def take(self, number):
        """Count a request for page number; whether it fails, and whether it is held."""
        with self.lock:
            self.requests += 1
            self.by_page[number] = self.by_page.get(number, 0) + 1
            held = self.hold_page == number
            if held:
                self.hold_page = None
            fails = self.fail_page == number and self.fail_times != 0
            if fails and self.fail_times is not None:
                self.fail_times -= 1
            return fails, held

    def page(self, number):
        """(status, answer) for page number."""
        if self.pages == 0:
            if self.empty == "404":
                # the Wallet's history finds nothing: HTTP 404 (§9)
                return 404, error_body("payment.history.not.found", "No payments with such data")
            return 200, {"items": [], "next": None}
        if number > self.pages:
            raise ApiError(400, "validation.error", "no such page")
        first = (number - 1) * self.items + 1
        return 200, {"items": [{"n": n, "page": number} for n in range(first, first + self.items)],
                     "next": str(number + 1) if number < self.pages else None}



# ---- the core's wire tests (test/t/017_core_wire.pl) ----
# Endpoints of no QIWI API, for the tests of the core's wire: what a request
# carried, as this server received it, and answers of a chosen status and
# body.
#   any method /wire/echo/...    200 {"method","path","authorization",
#                                "content_type","body","form"} (form: the
#                                body parsed as x-www-form-urlencoded,
#                                blank values kept)
#   any method /wire/answer/...  the next answer of POST /sandbox/wire/answers
#                                {"answers": [{"status": S, "body": "..."}]}
#                                (the last one repeats); in a body,
#                                @authorization@ is the request's
#                                Authorization header and @now@ the time
#   GET /sandbox/wire/stats      {"requests": N, "last": the last echo}
class WireTests:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.answers = [{"status": 200, "body": "{}"}]
        self.requests = 0
        self.last = None

    def control(self, method, parts, args):
        with self.lock:
            if parts == ["answers"] and method == "POST":
                self.answers = list(args.get("answers") or [{"status": 200, "body": "{}"}])
                self.requests = 0
                return 200, {"ok": True}
            if parts == ["stats"] and method == "GET":
                return 200, {"requests": self.requests, "last": self.last}
        return 404, {"error": "unknown wire control endpoint"}

    def serve(self, method, path, headers, body):
        """(status, bytes) for a request to /wire/..."""
        text = body.decode("utf-8", "replace")
        seen = {"method": method, "path": path,
                "authorization": headers.get("Authorization"),
                "content_type": headers.get("Content-Type"), "body": text,
                "form": dict(parse_qsl(text, keep_blank_values=True))}
        with self.lock:
            self.requests += 1
            self.last = seen
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if path.startswith("/wire/echo/"):
            return 200, json.dumps(seen, ensure_ascii=False).encode()
        payload = answer.get("body", "").replace("@authorization@", headers.get("Authorization") or "")
        payload = payload.replace("@now@", qiwi_time(now()))
        return int(answer.get("status", 200)), payload.encode()


def make_handler(sandbox):
    paged_list = PagedList()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in two writes; without this, Nagle and the
        # client's delayed ACK add 40 ms to every answer
        disable_nagle_algorithm = True
        server_version = "qiwi-sandbox"
        sys_version = ""

        def setup(self):
            super().setup()
            self.counted_connection = False
            if isinstance(self.connection, ssl.SSLSocket):
                # the handshake runs here, in the connection's own thread
                self.connection.do_handshake()

        def log_message(self, fmt, *args):
            pass

        # ---- plumbing ----

        def read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def send_raw(self, status, payload, content_type="application/json;charset=UTF-8"):
            self.send_response(status)
            if status != 204:	# a 204 has no body, so no Content-Length either (RFC 9110)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def send_json(self, status, obj):
            # single-line JSON, as QIWI sends (its Java SDK reads one line)
            self.send_raw(status, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())

        def do_GET(self):
            self.dispatch("GET")

        def do_PUT(self):
            self.dispatch("PUT")

        def do_POST(self):
            self.dispatch("POST")

        def do_DELETE(self):
            self.dispatch("DELETE")

        def do_PATCH(self):
            self.dispatch("PATCH")

        def dispatch(self, method):
            path = urlsplit(self.path).path
            body = self.read_body()
            if method != "GET" and not path.startswith(("/sandbox/", "/wire/")):
                sandbox.count_write(method, path, body)
            if sandbox.wallet.owns(path):	# the Wallet API and /sandbox/wallet/
                fault = None if path.startswith("/sandbox/") else \
                    sandbox.take_fault("wallet", {"service": path.split("/")[1]})
                self.serve(fault, sandbox.latency_ms,
                           lambda: sandbox.wallet.handle(method, self.path, self.headers, body), None)
            elif path == "/sandbox/pages" or path.startswith("/sandbox/pages/"):
                self.paged(method, path, body)
            elif path.startswith("/sandbox/"):
                self.control(method, path, body)
            elif path.startswith("/wire/"):
                self.send_raw(*sandbox.wire.serve(method, path, self.headers, body))
            elif path.startswith(BILLS_PREFIX):
                self.api(method, path[len(BILLS_PREFIX):], body)
            elif path.startswith(PAYIN_PREFIX):
                self.payin_api(method, path[len(PAYIN_PREFIX):], body)
            elif path.startswith(PULL_PREFIX):
                self.pull_api(method, path, body)
            else:
                self.send_json(404, error_body("http.url.not.found", "Not found"))

        # ---- control ----

        def control(self, method, path, body):
            parts = path.split("/")[2:]
            try:
                args = json.loads(body) if body else {}
            except ValueError:
                return self.send_json(400, {"error": "bad JSON"})
            if parts[:1] == ["payin"]:
                return self.send_json(*sandbox.payin.control(method, [unquote(p) for p in parts[1:]], args))
            if parts[:1] == ["pull"]:
                return self.send_json(*sandbox.pull.control(method, [unquote(p) for p in parts[1:]], args))
            if parts[:1] == ["wire"]:
                return self.send_json(*sandbox.wire.control(method, parts[1:], args))
            with sandbox.lock:
                if parts == ["stats"] and method == "GET":
                    return self.send_json(200, {
                        "requests": sandbox.requests, "connections": sandbox.connections,
                        "bills": len(sandbox.bills), "refunds": len(sandbox.refunds),
                        "held": len(sandbox.held)})
                if parts == ["writes"] and method == "GET":
                    return self.send_json(200, dict(sandbox.writes))
                if parts == ["reset"] and method == "POST":
                    sandbox.reset()
                    sandbox.payin.reset()
                    sandbox.pull.reset()
                    sandbox.wallet.reset()
                    return self.send_json(200, {"ok": True})
                if parts == ["release"] and method == "POST":
                    sandbox.release()
                    return self.send_json(200, {"ok": True})
                if parts == ["latency"] and method == "POST":
                    sandbox.latency_ms = int(args.get("ms", 0))
                    return self.send_json(200, {"ok": True})
                if parts == ["faults"] and method == "POST":
                    args.setdefault("times", 1)
                    sandbox.faults.append(args)
                    return self.send_json(200, {"ok": True})
                if parts == ["notifications"] and method == "POST":
                    sandbox.notify = args if args.get("url") else None
                    return self.send_json(200, {"ok": True})
                if parts == ["faults"] and method == "DELETE":
                    sandbox.faults.clear()
                    return self.send_json(200, {"ok": True})
                if len(parts) == 3 and parts[0] == "bills" and method == "POST":
                    bill = sandbox.bills.get(unquote(parts[1]))
                    if bill is None:
                        return self.send_json(404, {"error": "no such bill"})
                    target = {"pay": "PAID", "reject": "REJECTED", "expire": "EXPIRED"}.get(parts[2])
                    if target is None:
                        return self.send_json(404, {"error": "unknown action"})
                    if bill["status"] != "WAITING":
                        return self.send_json(409, {"error": f"bill is {bill['status']}"})
                    sandbox.set_status(bill, target)
                    return self.send_json(200, sandbox.bill_json(bill))
            self.send_json(404, {"error": "unknown control endpoint"})

        # ---- the paged list ----

        def paged(self, method, path, body):
            if path == "/sandbox/pages/stats" and method == "GET":
                return self.send_json(200, paged_list.stats())
            if path == "/sandbox/pages" and method == "POST":
                paged_list.configure(json.loads(body) if body else {})
                return self.send_json(200, {"ok": True})
            if path != "/sandbox/pages" or method != "GET":
                return self.send_json(404, {"error": "unknown control endpoint"})
            if bearer_token(self.headers.get("Authorization")) != sandbox.secret:
                return self.send_json(401, error_body("auth.unauthorized", "Unauthorized"))
            cursor = parse_qs(urlsplit(self.path).query).get("cursor", ["1"])[0]
            if not cursor.isdigit() or int(cursor) < 1:
                return self.send_json(400, error_body("validation.error", "bad cursor"))
            fails, held = paged_list.take(int(cursor))
            if held:
                sandbox.hold()
            if fails:
                return self.send_json(paged_list.fail_status, error_body("internal.error", "Internal error"))
            try:
                return self.send_json(*paged_list.page(int(cursor)))
            except ApiError as e:
                return self.send_json(e.status, error_body(e.code, e.description))

        # ---- API ----

        def api(self, method, rest, body):
            with sandbox.lock:
                sandbox.requests += 1
                if not self.counted_connection:
                    self.counted_connection = True
                    sandbox.connections += 1
                latency = sandbox.latency_ms
            # a fault belongs to the request that arrives first, even if that
            # request then waits out the latency and its client is gone
            fault = sandbox.take_fault("bill", {"bill": unquote(rest.split("/")[0])})
            self.serve(fault, latency, lambda: self.api_call(method, rest, body),
                       lambda e: error_body(e.code, e.description))

        def payin_api(self, method, rest, body):
            segments = [unquote(s) for s in rest.split("/")]
            site_id, segments = segments[0], segments[1:]
            keys = {"site": site_id, "method": method}
            if len(segments) >= 2 and segments[0] in ("bills", "payments"):
                keys["bill" if segments[0] == "bills" else "payment"] = segments[1]
            with sandbox.lock:
                latency = sandbox.latency_ms
            fault = sandbox.take_fault("payin", keys)
            self.serve(fault, latency, lambda: self.payin_call(method, site_id, segments, body),
                       lambda e: payin_error_body(e.code, e.description, getattr(e, "cause", None)),
                       lambda: payin_error_body("internal.error", "Internal error"))

        def pull_api(self, method, path, body):
            pull = sandbox.pull
            with sandbox.lock:
                latency = sandbox.latency_ms
            fault = sandbox.take_fault("pull", pull.fault_keys(path))
            self.serve(fault, latency, lambda: pull.call(method, path, self.headers, body, fault),
                       None, lambda: pull.fault_answer(fault), pull.renderer(self.headers.get("Accept")))

        def serve(self, fault, latency, call, error, fault_body=None, render=None):
            """Answer an API request: faults and latency first, then call();
            render(answer) gives its bytes and content type (default: JSON)."""
            default_fault = json.dumps(fault_body() if fault_body else
                                       error_body("internal.error", "Internal error"))
            if fault and fault.get("hold"):
                sandbox.hold()
            if fault and "delay_ms" in fault:
                latency += int(fault["delay_ms"])
            if latency:
                time.sleep(latency / 1000.0)
            if fault and fault.get("drop") == "before":
                self.close_connection = True
                return
            if fault and "huge" in fault:
                return self.send_raw(200, b"{\"pad\":\"" + b"x" * int(fault["huge"]) + b"\"}")
            if fault and ("status" in fault or "body" in fault) and not fault.get("applied"):
                status = int(fault.get("status", 200))
                payload = fault["body"] if "body" in fault else default_fault
                nest = int(fault.get("nest", 0))
                payload = payload.replace("@nest@", "[" * nest + "]" * nest)
                return self.send_raw(status, payload.encode())

            try:
                status, answer = call()
            except ApiError as e:
                status, answer = e.status, error(e)

            if fault and fault.get("applied"):
                # the request took effect, but the answer is the fault's
                payload = fault["body"] if "body" in fault else default_fault
                return self.send_raw(int(fault.get("status", 200)), payload.encode())
            if fault and fault.get("drop") == "after":
                # the request took effect, but its answer never arrives
                self.close_connection = True
                return
            if fault and fault.get("drop") == "mid-answer":
                payload = render(answer)[0] if render else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if answer is None:
                return self.send_raw(status, b"")
            if render:
                return self.send_raw(status, *render(answer))
            self.send_json(status, answer)

        def payin_call(self, method, site_id, segments, body):
            auth = self.headers.get("Authorization")
            with sandbox.payin.lock:
                sandbox.payin.authorize(site_id, auth)
            if not accepts_json(self.headers.get("Accept")):
                raise PayinError(406, "http.media.type.not.acceptable", "Accept must allow application/json")
            parsed = None
            if method in ("PUT", "DELETE") and body:
                ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
                if ctype != "application/json":
                    raise PayinError(415, "http.media.type.not.supported", "Content-Type must be application/json")
                try:
                    # numbers as Decimal, so that 150.00 and 150.0 stay apart
                    parsed = json.loads(body.decode("utf-8"), parse_float=payin_number)
                except (ValueError, UnicodeDecodeError):
                    raise PayinError(400, "http.message.conversion.failed", "Bad request")
                if not isinstance(parsed, dict):
                    raise PayinError(400, "http.message.conversion.failed", "Bad request")
            elif (method, segments[:1]) in (("PUT", ["bills"]), ("DELETE", ["tokens"])):
                raise PayinError(400, "http.message.conversion.failed", "Required request body is missing")
            return sandbox.payin.call(method, site_id, segments, auth, parsed)

        def api_call(self, method, rest, body):
            if bearer_token(self.headers.get("Authorization")) != sandbox.secret:
                raise ApiError(401, "auth.unauthorized", "Неверные аутентификационные данные")
            if not accepts_json(self.headers.get("Accept")):
                raise ApiError(406, "http.media.type.not.acceptable", "Accept must allow application/json")
            segments = [unquote(s) for s in rest.split("/")]
            bill_id = segments[0]
            # an empty billId names no bill: QIWI answers 404 (the Node SDK's
            # suite records it); only creating a bill with it is invalid
            if len(bill_id) > MAX_ID_LENGTH:
                raise ApiError(400, "validation.error", "billId must be 1 to 200 characters")

            parsed = None
            if method == "PUT":
                ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
                if ctype != "application/json":
                    raise ApiError(415, "http.media.type.not.supported", "Content-Type must be application/json")
                try:
                    parsed = json.loads(body.decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    raise ApiError(400, "http.message.conversion.failed", "Bad request")
                if not isinstance(parsed, dict):
                    raise ApiError(400, "http.message.conversion.failed", "Bad request")

            with sandbox.lock:
                if len(segments) == 1 and method == "PUT":
                    return 200, sandbox.bill_json(sandbox.create_bill(bill_id, parsed))
                if len(segments) == 1 and method == "GET":
                    return 200, sandbox.bill_json(sandbox.get_bill(bill_id))
                if segments[1:] == ["reject"] and method == "POST":
                    return 200, sandbox.bill_json(sandbox.reject_bill(bill_id))
                if len(segments) == 3 and segments[1] == "refunds":
                    refund_id = segments[2]
                    if method == "PUT":
                        return 200, sandbox.refund_json(sandbox.refund(bill_id, refund_id, parsed))
                    if method == "GET":
                        return 200, sandbox.refund_json(sandbox.get_refund(bill_id, refund_id))
            raise ApiError(405, "http.method.not.supported", "Method not supported")

    return Handler


class QuietServer(ThreadingHTTPServer):
    """Clients that hang up (tests of TLS failures and dropped connections do) are normal."""

    daemon_threads = True
    # many clients connect at once (the reconciler's pool); the default
    # backlog of 5 drops their SYNs and costs each a 1 s retransmit
    request_queue_size = 256

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, OSError)):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description="QIWI Bill Payments API sandbox")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True, help="the SECRET_KEY clients must send")
    parser.add_argument("--site-id", default="270305",
                        help="the siteId of this merchant's bills, and of the default Payin site")
    parser.add_argument("--payin-notification-key",
                        help="the default Payin site's notification key (default: --secret)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls-cert", help="PEM certificate; serves HTTPS when given")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args()

    server = QuietServer((args.host, args.port), make_handler(Sandbox(
        args.secret, args.site_id,
        PayinSandbox(args.site_id, args.secret, args.payin_notification_key or args.secret),
        PullSandbox(args.site_id, args.secret))))
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                             do_handshake_on_connect=False)
    print(f"qiwi sandbox listening on {'https' if args.tls_cert else 'http'}://{args.host}:{args.port}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
