"""QIWI Wallet Pull REST API 2.1 in the sandbox: the projects, bills,
refunds and notifications, and the handling of its requests.
test/qiwi_sandbox.py serves it from the same process as the other APIs.

Built from QIWI's Pull documents (QIWI-API/pull-payments-docs: the API,
notification, error and status pages; seed 002) and shared/qiwi-api.md §3
with its corrections in §8 and §9 (they win where they differ).  Where the
documents are silent the sandbox chooses; docs/sandbox.md ("Pull") lists
each choice.

API (Authorization: Basic base64(API_ID:API_PASSWORD) of the project whose
prv_id is in the path; bodies application/x-www-form-urlencoded), under
/api/v2/prv/{prv_id}:
  PUT   bills/{bill_id}   user, amount, ccy, comment, lifetime[, pay_source,
                          prv_name]: create (same bill_id and amount: the
                          bill as it is; another amount: 215)
  GET   bills/{bill_id}   status (originAmount/originCcy once the buyer pays)
  PATCH bills/{bill_id}   status=rejected: cancel a waiting bill
  PUT   bills/{bill_id}/refund/{refund_id}   amount: refund a paid bill
  GET   bills/{bill_id}/refund/{refund_id}   refund status
Answers are {"response": {"result_code": N, "bill"|"refund": {...}}} or,
for N != 0, {"response": {"result_code": N, "description": ...}}; HTTP 401
for 150, HTTP 200 for every other code.  Accept picks JSON (text/json,
application/json; also no Accept, */*) or XML (text/xml, application/xml);
anything else is HTTP 406.

Pull control (no auth), under /sandbox/pull:
  POST projects {"prv_id", "api_id", "api_password", "notification_password",
       "notification_url", "notification_auth": "basic"|"signature",
       "prv_name", "currencies", "min_amount", "max_amount",
       "retry_delays_ms", "duplicates"}            add/replace a project
  POST projects/{prv_id}/bills/{bill_id}/start   {"origin_amount", "origin_ccy"}
       the buyer starts paying (originAmount appears; cancelling is 1419)
  POST projects/{prv_id}/bills/{bill_id}/pay     {"origin_amount", "origin_ccy"}
  POST projects/{prv_id}/bills/{bill_id}/reject | /fail | /expire
       the buyer rejects it; the payment fails (unpaid); its time runs out
  POST projects/{prv_id}/bills/{bill_id}/refunds/{refund_id}/complete
  POST projects/{prv_id}/bills/{bill_id}/refunds/{refund_id}/fail {"error": N}
  GET  notifications   every Pull notification: URL, headers, body, attempts
  GET  stats           requests, byMethod, projects, bills, refunds, notifications
  POST reset           forget the Pull state (the default project stays)
  POST /sandbox/faults with "api": "pull" (and "prv", "bill"); "result_code": N
       answers the envelope with code N (HTTP 401 for 150, else 200, unless
       "status" says otherwise)
"""

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qsl, unquote, urlencode
from xml.sax.saxutils import escape

PULL_PREFIX = "/api/v2/prv/"
MSK = timezone(timedelta(hours=3))
# the error page of QIWI-API/pull-payments-docs (EN wording; 934 and 1018
# are in the RU list only)
RESULT_CODES = {
    0: "Success",
    5: "Incorrect data in the request parameters",
    13: "Server is busy, try again later",
    78: "Operation is forbidden",
    150: "Authorization error (e.g. invalid login/password)",
    152: "Protocol is not enabled or protocol is disabled",
    155: "This merchant's identifier (API ID) is blocked",
    210: "Invoice not found",
    215: "Invoice with this bill_id already exists",
    241: "Invoice amount is less than allowed",
    242: "Invoice amount is greater than allowed",
    298: "User not registered",
    300: "Technical error",
    303: "Wrong phone number",
    316: "Authorization from the blocked merchant",
    319: "No rights for the operation",
    339: "IP-addresses blocked",
    341: "Required parameter is incorrectly specified or absent in the request",
    700: "Monthly limit on operations is exceeded",
    774: "QIWI Wallet user account temporarily blocked",
    934: "Region is not supported",
    1001: "Currency is not allowed for the merchant",
    1003: "No convert rate for these currencies",
    1018: "Country is not supported",
    1019: "Unable to determine wireless operator for MNO balance payment",
    1419: "Bill was already payed",
}
BILL_FIELDS = ("user", "amount", "ccy", "comment", "lifetime", "pay_source", "prv_name")
REQUIRED_BILL_FIELDS = ("user", "amount", "ccy", "comment", "lifetime")
CURRENCIES = ("RUB", "EUR", "USD", "KZT")
MAX_BILL_ID = 200
MAX_COMMENT = 255
MAX_PRV_NAME = 100
# "Invoice will be automatically expired when 45 days is passed after the
# invoicing date" (the API page's lifetime row)
MAX_LIFETIME = timedelta(days=45)
# QIWI retries "with increased time intervals within the next 24 hours (50
# attempts in total)" without a schedule: the k-th retry waits 70 k seconds
# (49 retries, 23 h 49 min in all)
DEFAULT_RETRY_DELAYS_MS = tuple(70000 * k for k in range(1, 50))
JSON_TYPES = ("text/json", "application/json", "text/*", "application/*", "*/*")
XML_TYPES = ("text/xml", "application/xml")


class PullError(Exception):
    """A Pull answer with a non-zero result_code (HTTP 401 for 150, else 200)."""

    def __init__(self, code, description=None, status=None):
        super().__init__(description or RESULT_CODES.get(code, "Error"))
        self.code = code
        self.description = description or RESULT_CODES.get(code, "Error")
        self.status = status or (401 if code == 150 else 200)


class ControlFailure(Exception):
    """A control call that cannot be done: HTTP status and a message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def envelope(code, description=None, **objects):
    """The answer {"response": {"result_code", "description"|objects}}."""
    response = {"result_code": code}
    if code != 0:
        response["description"] = description or RESULT_CODES.get(code, "Error")
    response.update(objects)
    return {"response": response}


def render_json(answer):
    return (json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode(),
            "text/json; charset=utf-8")


def xml_element(name, value):
    if isinstance(value, dict):
        return f"<{name}>" + "".join(xml_element(k, v) for k, v in value.items()) + f"</{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"


def render_xml(answer):
    """The documents' XML: <response><result_code>..</result_code><bill>..</bill></response>."""
    return xml_element("response", answer["response"]).encode(), "text/xml; charset=utf-8"


def answer_format(accept):
    """"json", "xml" or None (neither acceptable) for an Accept header; none
    (or an empty one) means any type (RFC 9110 §12.5.1): JSON."""
    if accept is None or not accept.strip():
        return "json"
    allowed = []
    for item in accept.split(","):
        params = [p.strip() for p in item.split(";")]
        weight = 1.0
        for param in params[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > 0:
            allowed.append(params[0].lower())
    if any(t in JSON_TYPES for t in allowed):
        return "json"
    if any(t in XML_TYPES for t in allowed):
        return "xml"
    return None


def basic_credentials(header):
    """(login, password) of "Authorization: Basic <base64>", the scheme in
    any case; None when absent, another scheme or not strict base64 of UTF-8."""
    match = re.fullmatch(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) +([A-Za-z0-9+/=]+)", header or "")
    if not match or match.group(1).lower() != "basic":
        return None
    try:
        decoded = binascii.a2b_base64(match.group(2), strict_mode=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    login, colon, password = decoded.partition(":")
    return (login, password) if colon else None


def pull_signature(password, params):
    """X-Api-Signature: the values of all parameters sorted by name (byte
    order), joined by '|', HMAC-SHA1 keyed with the notification password
    (UTF-8), the raw digest in base64 (§8, §9)."""
    names = sorted(params, key=lambda name: name.encode("utf-8"))
    message = "|".join(params[name] for name in names)
    digest = hmac.new(password.encode("utf-8"), message.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def read_form(headers, body):
    """The form body as a dict: application/x-www-form-urlencoded in UTF-8,
    each name once; '+' is a space."""
    mime, _, rest = (headers.get("Content-Type") or "").partition(";")
    if mime.strip().lower() != "application/x-www-form-urlencoded":
        raise PullError(5, "Content-Type must be application/x-www-form-urlencoded", 415)
    for param in rest.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise PullError(5, "the form's charset must be utf-8", 415)
    if not body:
        return {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                          encoding="utf-8", errors="strict")
    except ValueError:	# UnicodeDecodeError too
        raise PullError(5, "the body is not a UTF-8 form")
    form = {}
    for name, value in pairs:
        if name in form:
            raise PullError(5, f"parameter {name} is given twice")
        form[name] = value
    return form


def parse_amount(text, name):
    """A positive amount written with at most two decimals, as Decimal."""
    if not re.fullmatch(r"[0-9]+(\.[0-9]{1,2})?", text):
        raise PullError(5, f"{name} must be a number with at most two decimals")
    return Decimal(text).quantize(Decimal("0.01"))


def parse_lifetime(text):
    """lifetime: YYYY-MM-DDThh:mm:ss in Moscow time (the documents), or
    YYYY-MM-DDThh:mm:ss.sssZ in UTC (the Node SDK's toISOString(), §8)."""
    match = re.fullmatch(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{3})Z)?", text)
    if not match:
        raise PullError(5, "lifetime must be YYYY-MM-DDThh:mm:ss (Moscow time)")
    try:
        moment = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise PullError(5, "lifetime is not a date")
    if match.group(2) is None:
        return moment.replace(tzinfo=MSK)
    return moment.replace(tzinfo=timezone.utc) + timedelta(milliseconds=int(match.group(2)))


def receiver_accepted(status, payload):
    """Did the merchant accept a notification: HTTP 200 and
    <result><result_code>0</result_code></result>?  (accepted, result_code)."""
    try:
        root = ElementTree.fromstring(payload)
        code = int((root.findtext("result_code") or "").strip()) if root.tag == "result" else None
    except (ElementTree.ParseError, ValueError):
        code = None
    return status == 200 and code == 0, code


def post_notification(url, headers, body):
    """One delivery attempt: (HTTP status or None, the answer's bytes)."""
    request = urllib.request.Request(url, data=body.encode("ascii"), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


class PullSandbox:
    """The Pull projects, their bills, refunds and notifications."""

    def __init__(self, prv_id, api_password):
        # a project from the start (when --site-id is numeric, as a prv_id
        # is): API_ID = prv_id, both passwords --secret, no notification URL
        self.default_project = {"prv_id": prv_id, "api_id": prv_id, "api_password": api_password,
                                "notification_password": api_password} if prv_id.isdigit() else None
        self.lock = threading.RLock()
        self.generation = 0
        self.reset()
        threading.Thread(target=self.ticker, daemon=True).start()

    def reset(self):
        with self.lock:
            self.generation += 1
            self.projects = {}
            if self.default_project:
                self.configure_project(dict(self.default_project))
            self.bills = {}
            self.refunds = {}
            self.notifications = []
            self.expiries = []
            self.requests = 0
            self.methods = {}

    def configure_project(self, args):
        prv_id, api_id = str(args.get("prv_id", "")), str(args.get("api_id", ""))
        if not prv_id.isdigit() or not api_id.isdigit():
            raise ControlFailure(400, "prv_id and api_id are numbers (the documents: Integer)")
        if not isinstance(args.get("api_password"), str) or not args["api_password"]:
            raise ControlFailure(400, "api_password is required")
        auth = args.get("notification_auth", "basic")
        if auth not in ("basic", "signature"):
            raise ControlFailure(400, "notification_auth is basic or signature")
        delays = args.get("retry_delays_ms", list(DEFAULT_RETRY_DELAYS_MS))
        if not isinstance(delays, list) or len(delays) > 49 or \
                any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in delays):
            raise ControlFailure(400, "retry_delays_ms is a list of at most 49 delays in ms (50 attempts)")
        try:
            limits = [Decimal(str(args.get(name, default))) for name, default in
                      (("min_amount", "0.01"), ("max_amount", "999999.99"))]
        except ArithmeticError:	# decimal.InvalidOperation
            raise ControlFailure(400, "min_amount and max_amount are amounts")
        currencies = args.get("currencies", list(CURRENCIES))
        if not isinstance(currencies, list) or not all(isinstance(x, str) for x in currencies):
            raise ControlFailure(400, "currencies is a list of codes")
        duplicates = args.get("duplicates", 0)
        if isinstance(duplicates, bool) or not isinstance(duplicates, int) or duplicates < 0:
            raise ControlFailure(400, "duplicates is a count")
        project = {
            "prv_id": prv_id, "api_id": api_id, "api_password": args["api_password"],
            "notification_password": args.get("notification_password") or args["api_password"],
            "notification_url": args.get("notification_url"), "notification_auth": auth,
            "prv_name": args.get("prv_name", "Sandbox shop"),
            "currencies": currencies, "min_amount": limits[0], "max_amount": limits[1],
            "retry_delays_ms": delays, "duplicates": duplicates,
        }
        with self.lock:
            self.projects[prv_id] = project
        return project

    # ---- time ----

    def ticker(self):
        while True:
            time.sleep(0.05)
            with self.lock:
                self.expire_due()

    def expire_due(self):
        """Bills whose lifetime has passed become expired (and are notified)."""
        moment = datetime.now(MSK)
        while self.expiries and self.expiries[0][0] <= moment:
            _, key = heapq.heappop(self.expiries)
            bill = self.bills.get(key)
            if bill is not None and bill["status"] == "waiting" and bill["expires"] <= moment:
                self.set_status(bill, "expired")

    # ---- requests ----

    @staticmethod
    def fault_keys(path):
        """What a fault may be narrowed by: {"prv", "bill"} of a request's path."""
        segments = [unquote(s) for s in path[len(PULL_PREFIX):].split("/")]
        return {"prv": segments[0], "bill": segments[2] if len(segments) > 2 else None}

    @staticmethod
    def renderer(accept):
        return render_xml if answer_format(accept) == "xml" else render_json

    @staticmethod
    def fault_answer(fault):
        """A fault's answer when it has a status or body: its result_code (300 by default)."""
        return envelope(int((fault or {}).get("result_code", 300)))

    def call(self, method, path, headers, body, fault):
        """One API request: (HTTP status, answer); a "result_code" fault
        answers its code instead, without taking the request."""
        if fault and "result_code" in fault and not fault.get("applied"):
            code = int(fault["result_code"])
            return PullError(code).status, envelope(code)
        with self.lock:
            self.requests += 1
            self.methods[method] = self.methods.get(method, 0) + 1
            self.expire_due()
            try:
                return 200, envelope(0, **self.route(method, path, headers, body))
            except PullError as e:
                return e.status, envelope(e.code, e.description)

    def route(self, method, path, headers, body):
        segments = [unquote(s) for s in path[len(PULL_PREFIX):].split("/")]
        project = self.authorize(segments[0], headers.get("Authorization"))
        if answer_format(headers.get("Accept")) is None:
            raise PullError(5, "Accept must allow JSON (text/json, application/json) or XML", 406)
        rest = segments[1:]
        if len(rest) == 2 and rest[0] == "bills":
            if method == "PUT":
                return {"bill": self.bill_json(self.create_bill(project, rest[1], read_form(headers, body)))}
            if method == "GET":
                return {"bill": self.bill_json(self.bill(project, rest[1]))}
            if method == "PATCH":
                return {"bill": self.bill_json(self.reject_bill(project, rest[1], read_form(headers, body)))}
            raise PullError(5, f"{method} is not a method of a bill", 405)
        if len(rest) == 4 and rest[0] == "bills" and rest[2] == "refund":
            if method == "PUT":
                return {"refund": self.refund_json(self.refund(project, rest[1], rest[3], read_form(headers, body)))}
            if method == "GET":
                return {"refund": self.refund_json(self.get_refund(project, rest[1], rest[3]))}
            raise PullError(5, f"{method} is not a method of a refund", 405)
        raise PullError(5, "no such resource", 404)

    def authorize(self, prv_id, header):
        """The project whose prv_id is in the path, if the credentials are its own."""
        project = self.projects.get(prv_id)
        if project is None or basic_credentials(header) != (project["api_id"], project["api_password"]):
            raise PullError(150, "Authorization failed")
        return project

    # ---- bills ----

    def bill(self, project, bill_id):
        bill = self.bills.get((project["prv_id"], bill_id))
        if bill is None:
            raise PullError(210)
        return bill

    def create_bill(self, project, bill_id, form):
        if not bill_id or len(bill_id) > MAX_BILL_ID:
            raise PullError(5, "bill_id must be 1 to 200 characters")
        unknown = sorted(set(form) - set(BILL_FIELDS))
        if unknown:
            raise PullError(5, f"unknown parameter {unknown[0]}")
        for name in REQUIRED_BILL_FIELDS:
            if not form.get(name):
                raise PullError(341, f"{name} is required")
        if not re.fullmatch(r"tel:\+[0-9]{1,15}", form["user"]):
            raise PullError(303, "user must be tel:+ and the phone number's digits (at most 20 characters)")
        amount = parse_amount(form["amount"], "amount")
        if amount < project["min_amount"]:
            raise PullError(241)
        if amount > project["max_amount"]:
            raise PullError(242)
        if not re.fullmatch(r"[A-Z]{3}", form["ccy"]):
            raise PullError(5, "ccy must be an ISO 4217 alpha-3 code")
        if form["ccy"] not in project["currencies"]:
            raise PullError(1001)
        if len(form["comment"]) > MAX_COMMENT:
            raise PullError(5, "comment must be at most 255 characters")
        lifetime = parse_lifetime(form["lifetime"])
        if form.get("pay_source", "qw") not in ("qw", "mobile"):
            raise PullError(5, "pay_source must be qw or mobile")
        if len(form.get("prv_name", "")) > MAX_PRV_NAME:
            raise PullError(5, "prv_name must be at most 100 characters")
        existing = self.bills.get((project["prv_id"], bill_id))
        if existing is not None:
            # "on two consecutive requests with the same prv_id, bill_id and
            # amount parameters the same response code is returned"
            if existing["amount"] != amount:
                raise PullError(215)
            return existing
        created = datetime.now(MSK)
        if lifetime <= created:
            raise PullError(5, "lifetime must be in the future")
        bill = {
            "prv_id": project["prv_id"], "bill_id": bill_id, "amount": amount,
            "ccy": form["ccy"], "user": form["user"], "comment": form["comment"],
            "prv_name": form.get("prv_name"), "pay_source": form.get("pay_source", "qw"),
            "status": "waiting", "created": created,
            "expires": min(lifetime, created + MAX_LIFETIME), "origin": None,
        }
        self.bills[(project["prv_id"], bill_id)] = bill
        heapq.heappush(self.expiries, (bill["expires"], (project["prv_id"], bill_id)))
        return bill

    def reject_bill(self, project, bill_id, form):
        if "status" not in form:
            raise PullError(341, "status is required")
        if form != {"status": "rejected"}:
            raise PullError(5, "the body must be status=rejected")
        bill = self.bill(project, bill_id)
        if bill["status"] == "rejected":
            return bill
        if bill["status"] == "paid" or bill["origin"] is not None:
            raise PullError(1419, "Bill was already payed (or is being paid)")
        if bill["status"] != "waiting":
            raise PullError(78, f"Operation is forbidden: the bill is {bill['status']}")
        self.set_status(bill, "rejected")
        return bill

    @staticmethod
    def bill_json(bill):
        body = {"bill_id": bill["bill_id"], "amount": f"{bill['amount']:.2f}"}
        if bill["origin"] is not None:
            body["originAmount"] = f"{bill['origin'][0]:.2f}"
        body["ccy"] = bill["ccy"]
        if bill["origin"] is not None:
            body["originCcy"] = bill["origin"][1]
        body.update({"status": bill["status"], "error": 0, "user": bill["user"],
                     "comment": bill["comment"]})
        return body

    # ---- refunds ----

    def refund(self, project, bill_id, refund_id, form):
        bill = self.bill(project, bill_id)
        if not re.fullmatch(r"[0-9A-Za-z]{1,9}", refund_id):
            raise PullError(5, "refund_id must be 1 to 9 of 0-9, A-Z, a-z")
        unknown = sorted(set(form) - {"amount"})
        if unknown:
            raise PullError(5, f"unknown parameter {unknown[0]}")
        if not form.get("amount"):
            raise PullError(341, "amount is required")
        amount = parse_amount(form["amount"], "amount")
        if amount <= 0:
            raise PullError(5, "amount must be positive")
        key = (project["prv_id"], bill_id, refund_id)
        existing = self.refunds.get(key)
        if existing is not None:
            if existing["amount"] != amount:
                raise PullError(215, "A refund with this refund_id already exists with another amount")
            return existing
        if bill["status"] != "paid":
            raise PullError(78, f"Operation is forbidden: the bill is {bill['status']}")
        # a failed refund gave nothing back: it does not count
        refunded = sum(r["amount"] for (p, b, _), r in self.refunds.items()
                       if (p, b) == key[:2] and r["status"] != "fail")
        if refunded + amount > bill["amount"]:
            raise PullError(242, "The refund exceeds what is left of the bill's amount")
        refund = {"refund_id": refund_id, "amount": amount, "status": "processing", "error": 0}
        self.refunds[key] = refund
        return refund

    def get_refund(self, project, bill_id, refund_id):
        self.bill(project, bill_id)
        if not re.fullmatch(r"[0-9A-Za-z]{1,9}", refund_id):
            raise PullError(5, "refund_id must be 1 to 9 of 0-9, A-Z, a-z")
        refund = self.refunds.get((project["prv_id"], bill_id, refund_id))
        if refund is None:
            raise PullError(210, "Refund not found")
        return refund

    @staticmethod
    def refund_json(refund):
        return {"refund_id": refund["refund_id"], "amount": f"{refund['amount']:.2f}",
                "status": refund["status"], "error": refund["error"]}

    # ---- notifications ----

    def set_status(self, bill, status):
        bill["status"] = status
        project = self.projects.get(bill["prv_id"])
        if project and project["notification_url"]:
            self.notify(project, bill)

    def notify(self, project, bill):
        """POST the bill to the project's URL, form-encoded, signed or with Basic auth."""
        params = {"command": "bill", "bill_id": bill["bill_id"], "status": bill["status"],
                  "error": "0", "amount": f"{bill['amount']:.2f}", "user": bill["user"],
                  "prv_name": bill["prv_name"] or project["prv_name"], "ccy": bill["ccy"],
                  "comment": bill["comment"]}
        headers = {"Accept": "text/xml",
                   "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        if project["notification_auth"] == "signature":
            headers["X-Api-Signature"] = pull_signature(project["notification_password"], params)
        else:
            login = f"{project['prv_id']}:{project['notification_password']}".encode("utf-8")
            headers["Authorization"] = "Basic " + base64.b64encode(login).decode("ascii")
        record = {"prv_id": project["prv_id"], "bill_id": bill["bill_id"], "status": bill["status"],
                  "url": project["notification_url"], "headers": headers,
                  "body": urlencode(params), "attempts": [], "delivered": False}
        self.notifications.append(record)
        threading.Thread(target=self.deliver, daemon=True, args=(
            record, list(project["retry_delays_ms"]), project["duplicates"], self.generation)).start()

    def deliver(self, record, delays, duplicates, generation):
        """Post until the merchant answers HTTP 200 with result_code 0, waiting
        delays[k] ms before retry k+1; then send the duplicates asked for."""
        for attempt in range(len(delays) + 1):
            if generation != self.generation:
                return
            status, payload = post_notification(record["url"], record["headers"], record["body"])
            accepted, code = receiver_accepted(status, payload)
            with self.lock:
                record["attempts"].append({"status": status, "result_code": code})
                record["delivered"] = accepted
            if accepted:
                for _ in range(duplicates):
                    post_notification(record["url"], record["headers"], record["body"])
                return
            if attempt < len(delays):
                time.sleep(delays[attempt] / 1000.0)

    # ---- control ----

    def control(self, method, parts, args):
        """/sandbox/pull/...: projects, the buyer, refunds' outcomes; (status, JSON)."""
        with self.lock:
            self.expire_due()
            try:
                return 200, self.control_call(method, parts, args)
            except ControlFailure as e:
                return e.status, {"error": str(e)}

    def control_call(self, method, parts, args):
        if parts == ["projects"] and method == "POST":
            return {key: (str(value) if isinstance(value, Decimal) else value)
                    for key, value in self.configure_project(args).items()}
        if parts == ["notifications"] and method == "GET":
            # a copy: deliveries append to the records after the lock is left
            return json.loads(json.dumps(self.notifications))
        if parts == ["stats"] and method == "GET":
            return {"requests": self.requests, "byMethod": dict(self.methods),
                    "projects": len(self.projects), "bills": len(self.bills),
                    "refunds": len(self.refunds), "notifications": len(self.notifications)}
        if parts == ["reset"] and method == "POST":
            self.reset()
            return {"ok": True}
        if method == "POST" and len(parts) == 5 and parts[0] == "projects" and parts[2] == "bills":
            return self.bill_json(self.buyer(self.control_bill(parts), parts[4], args))
        if method == "POST" and len(parts) == 7 and parts[0] == "projects" and parts[2] == "bills" \
                and parts[4] == "refunds":
            refund = self.refunds.get((parts[1], parts[3], parts[5]))
            if refund is None:
                raise ControlFailure(404, "no such refund")
            return self.refund_json(self.refund_outcome(refund, parts[6], args))
        raise ControlFailure(404, "unknown control endpoint")

    def control_bill(self, parts):
        bill = self.bills.get((parts[1], parts[3]))
        if bill is None:
            raise ControlFailure(404, "no such bill")
        return bill

    def buyer(self, bill, action, args):
        """The buyer (or time) acts on a waiting bill: start, pay, reject, fail, expire."""
        if action not in ("start", "pay", "reject", "fail", "expire"):
            raise ControlFailure(404, "unknown action")
        if bill["status"] != "waiting":
            raise ControlFailure(409, f"bill is {bill['status']}")
        if action in ("start", "pay"):
            if bill["origin"] is None or "origin_amount" in args or "origin_ccy" in args:
                bill["origin"] = (Decimal(str(args.get("origin_amount", bill["amount"]))),
                                  args.get("origin_ccy", bill["ccy"]))
            if action == "start":
                return bill
        self.set_status(bill, {"pay": "paid", "reject": "rejected", "fail": "unpaid",
                               "expire": "expired"}[action])
        return bill

    @staticmethod
    def refund_outcome(refund, action, args):
        if action not in ("complete", "fail"):
            raise ControlFailure(404, "unknown action")
        if refund["status"] != "processing":
            raise ControlFailure(409, f"refund is {refund['status']}")
        refund["status"] = "success" if action == "complete" else "fail"
        if action == "fail":
            refund["error"] = int(args.get("error", 300))
        return refund
