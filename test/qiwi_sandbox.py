#!/usr/bin/env python3
"""A stateful emulator of QIWI's Bill Payments API (v1), for tests and demos.

It speaks QIWI's JSON shapes, statuses and error format (seed 001 and
shared/qiwi-api.md), keeps connections alive like QIWI's HTTP/1.1 front end,
and can serve TLS.  It is as strict as QIWI where QIWI's documents say what
it does; where QIWI's own SDK test suites record how it answered, it answers
the same (test/sdk/run-sdk-suite.sh runs the Node SDK's); where both are
silent, the choice is noted in README.md ("The sandbox").

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
                                "huge": bytes, "delay_ms": D,
                                "nest": N, "bill": billId}
         "nest": each "@nest@" in the body becomes N "[" then N "]";
         "bill": the fault is only for requests about that bill;
         "applied": true: the request takes effect, then status/body answer it
  DELETE /sandbox/faults
  POST /sandbox/latency  JSON: {"ms": N}   delay before every API answer
  POST /sandbox/notifications JSON: {"url": U, "duplicates": N, "retry_ms": M}
         POST a signed notification to U on every status change, as QIWI
         does; N extra copies after a 200; a failed delivery is retried
         every M ms (default 200), 50 times at most
  GET  /sandbox/stats    {"requests", "connections", "bills", "refunds"}
  POST /sandbox/reset    forget bills, refunds, faults, latency and stats
"""

import argparse
import hashlib
import hmac
import json
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
from urllib.parse import unquote, urlsplit

MSK = timezone(timedelta(hours=3))
BILLS_PREFIX = "/partner/bill/v1/bills/"
MAX_ID_LENGTH = 200
MAX_FIELD_LENGTH = 255
MAX_AMOUNT = Decimal("999999.99")
CURRENCIES = ("RUB", "KZT")


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

    def __init__(self, secret, site_id):
        self.secret = secret
        self.site_id = site_id
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.notify = None
        self.bills = {}
        self.refunds = {}
        self.faults = []
        self.latency_ms = 0
        self.requests = 0
        self.connections = 0

    def take_fault(self, bill_id):
        with self.lock:
            for fault in self.faults:
                if fault["times"] > 0 and fault.get("bill", bill_id) == bill_id:
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
        if expires <= now():
            raise ApiError(400, "validation.error", "expirationDateTime is in the past")
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
        created = now()
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


def make_handler(sandbox):
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

        def dispatch(self, method):
            path = urlsplit(self.path).path
            body = self.read_body()
            if path.startswith("/sandbox/"):
                self.control(method, path, body)
            elif path.startswith(BILLS_PREFIX):
                self.api(method, path[len(BILLS_PREFIX):], body)
            else:
                self.send_json(404, error_body("http.url.not.found", "Not found"))

        # ---- control ----

        def control(self, method, path, body):
            parts = path.split("/")[2:]
            try:
                args = json.loads(body) if body else {}
            except ValueError:
                return self.send_json(400, {"error": "bad JSON"})
            with sandbox.lock:
                if parts == ["stats"] and method == "GET":
                    return self.send_json(200, {
                        "requests": sandbox.requests, "connections": sandbox.connections,
                        "bills": len(sandbox.bills), "refunds": len(sandbox.refunds)})
                if parts == ["reset"] and method == "POST":
                    sandbox.reset()
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
            fault = sandbox.take_fault(unquote(rest.split("/")[0]))
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
                payload = fault["body"] if "body" in fault else json.dumps(
                    error_body("internal.error", "Internal error"))
                nest = int(fault.get("nest", 0))
                payload = payload.replace("@nest@", "[" * nest + "]" * nest)
                return self.send_raw(status, payload.encode())

            try:
                status, answer = self.api_call(method, rest, body)
            except ApiError as e:
                status, answer = e.status, error_body(e.code, e.description)

            if fault and fault.get("applied"):
                # the request took effect, but the answer is the fault's
                payload = fault["body"] if "body" in fault else json.dumps(
                    error_body("internal.error", "Internal error"))
                return self.send_raw(int(fault.get("status", 200)), payload.encode())
            if fault and fault.get("drop") == "after":
                # the request took effect, but its answer never arrives
                self.close_connection = True
                return
            if fault and fault.get("drop") == "mid-answer":
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.send_json(status, answer)

        def api_call(self, method, rest, body):
            if self.headers.get("Authorization") != f"Bearer {sandbox.secret}":
                raise ApiError(401, "auth.unauthorized", "Неверные аутентификационные данные")
            accept = self.headers.get("Accept", "")
            if "application/json" not in accept and "*/*" not in accept:
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
    parser.add_argument("--site-id", default="270305", help="the siteId of this merchant's bills")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls-cert", help="PEM certificate; serves HTTPS when given")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args()

    server = QuietServer((args.host, args.port), make_handler(Sandbox(args.secret, args.site_id)))
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
