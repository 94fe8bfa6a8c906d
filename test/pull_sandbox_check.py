#!/usr/bin/env python3
"""Self-check of the sandbox's QIWI Wallet Pull REST API 2.1
(test/pull_sandbox.py) against QIWI's documents: authentication, the
envelope in JSON and XML, every field of a bill and each refusal with its
result code, cancels, refunds, the buyer's control calls, faults,
notifications in both authentication modes with their retries, and the
signature vectors of shared/qiwi-api.md §3, §8 and §9 through the
sandbox's own signer.

It starts no sandbox: --url names a running one (http://127.0.0.1:PORT).
It adds its own projects with fresh prv_ids, so it does not disturb other
users of the same sandbox, and runs a small notification receiver on a free
port.  Prints "ok N - ..." or "not ok N - ..." per check and exits non-zero
when any check fails.  Python standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import secrets
import sys
import time
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from pull_sandbox import basic_credentials, pull_signature
import sandbox_checks

MSK = timezone(timedelta(hours=3))
FORM = "application/x-www-form-urlencoded; charset=utf-8"
NOTIFICATION_FIELDS = {"command", "bill_id", "status", "error", "amount", "user", "prv_name", "ccy", "comment"}

# Signature vectors of shared/qiwi-api.md: (password, parameters, X-Api-Signature)
VECTORS = [
    ("qwe123", {"a": "foo", "b": "bar", "comment": "Заказ №101", "some": "param"},
     "7nHZIf/w6DLq+CuvzV2BmhT71xA="),	# §8, onrik/pyqiwi's tests
    ("qwe123", {"foo": "bar", "commend": "Заказ №102"}, "4C8pyw0rweDE0gZDYWT3E1B92aQ="),	# §8
    ("notifypwd", {"command": "bill", "bill_id": "LocalTest17", "status": "paid", "error": "0",
                   "amount": "0.01", "user": "tel:+78000005122", "prv_name": "Test", "ccy": "RUB",
                   "comment": "Some Descriptor"}, "GsXcAe4AW4CLe7YS1StlxvNDe2Y="),	# §3, the docs' sample body
]
NEGATIVE_SIGNATURE = "W18ltrPJoSb2N7AEM5Iik02wE10="	# §9


def sha1_base64(key, message):
    """An independent HMAC-SHA1 in base64, to check the sandbox's signer."""
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha1).digest()).decode()


def basic(login, password):
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def moscow(delta):
    """A lifetime: Moscow time, YYYY-MM-DDThh:mm:ss, delta from now."""
    return (datetime.now(MSK) + delta).strftime("%Y-%m-%dT%H:%M:%S")


class Receiver(sandbox_checks.Receiver):
    """A merchant's notification endpoint: /ok/... answers result_code 0;
    /code/N/K/... answers N the first K times; /http/S/K/... HTTP S the first K times."""

    def record(self, headers, raw):
        raw = raw.decode()
        return {"raw": raw, "headers": dict(headers.items()),
                "params": dict(parse_qsl(raw, keep_blank_values=True))}

    def answer(self, parts, seen):
        status, code = 200, 0
        if parts[1] == "code" and seen < int(parts[3]):
            code = int(parts[2])
        if parts[1] == "http" and seen < int(parts[3]):
            status = int(parts[2])
        payload = f'<?xml version="1.0"?>\n<result>\n<result_code>{code}</result_code>\n</result>'.encode()
        return status, "text/xml", payload

    def wait(self, path, count=1, timeout=8.0):
        """The posts to path, once there are count of them (or at the timeout)."""
        return self.posts_where(lambda p: p["path"] == path, count, timeout)


class Check(sandbox_checks.Checks):
    def http(self, method, path, body=None, headers=None):
        """(HTTP status or None when the connection closed unanswered, headers, bytes)."""
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            connection.request(method, path, body=body.encode() if isinstance(body, str) else body,
                               headers={k: v for k, v in (headers or {}).items() if v is not None})
            answer = connection.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read()
        except (http.client.HTTPException, ConnectionError):
            return None, {}, b""
        finally:
            connection.close()

    def control(self, method, path, body=None):
        status, _, raw = self.http(method, "/sandbox" + path, json.dumps(body) if body is not None else None,
                                   {"Content-Type": "application/json"})
        return status, json.loads(raw) if raw else None


class Project:
    """A fresh Pull project in the sandbox, with helpers for its API."""

    def __init__(self, check, receiver=None, hook=None, **options):
        self.c = check
        self.prv = str(secrets.randbelow(10 ** 9) + 10 ** 9)
        self.api_id = str(secrets.randbelow(10 ** 8) + 10 ** 8)
        self.password = "api-" + secrets.token_hex(8)
        self.npassword = "notify-" + secrets.token_hex(8)
        self.hook = f"/{hook or 'ok'}/{self.prv}"
        conf = {"prv_id": self.prv, "api_id": self.api_id, "api_password": self.password,
                "notification_password": self.npassword, "retry_delays_ms": [20, 20, 20]}
        if receiver:
            conf["notification_url"] = receiver.url + self.hook
        conf.update(options)
        status, answer = check.control("POST", "/pull/projects", conf)
        if status != 200:
            raise RuntimeError(f"cannot configure a project: {status} {answer}")

    def api(self, method, rest, form=None, accept="text/json", auth=None, ctype=FORM, prv=None, raw=None):
        """(HTTP status, the parsed answer, headers, bytes)."""
        # auth None: the project's own credentials; "": no Authorization header
        headers = {"Accept": accept, "Authorization": basic(self.api_id, self.password) if auth is None else auth or None}
        body = raw if raw is not None else (urlencode(form) if form is not None else None)
        if body is not None:
            headers["Content-Type"] = ctype
        status, answer_headers, payload = self.c.http(method, f"/api/v2/prv/{prv or self.prv}/{rest}", body, headers)
        parsed = None
        # a fault's own answer (with "status", "body" or "applied") is application/json
        if answer_headers.get("Content-Type", "").startswith(("text/json", "application/json")):
            parsed = json.loads(payload)
        return status, parsed, answer_headers, payload

    def create(self, bill_id=None, **fields):
        form = {"user": "tel:+79161234567", "amount": "10.00", "ccy": "RUB", "comment": "test",
                "lifetime": moscow(timedelta(days=1))}
        form.update(fields)
        form = {k: v for k, v in form.items() if v is not None}
        bill_id = bill_id or "bill-" + secrets.token_hex(6)
        status, answer, _, _ = self.api("PUT", f"bills/{quote(bill_id, safe='')}", form)
        return bill_id, status, answer

    def buyer(self, bill_id, action, body=None):
        return self.c.control("POST", f"/pull/projects/{self.prv}/bills/{quote(bill_id, safe='')}/{action}", body or {})

    def paid(self, amount="10.00"):
        bill_id, _, _ = self.create(amount=amount)
        self.buyer(bill_id, "pay")
        return bill_id


def code_of(answer):
    return answer["response"]["result_code"] if isinstance(answer, dict) else None


def refused(result, code, http_status=200):
    """An answer (status, envelope) with this result_code and a description."""
    status, answer = result[0], result[1]
    return status == http_status and code_of(answer) == code and bool(answer["response"].get("description"))


def check_signatures(c):
    for password, params, signature in VECTORS:
        c.ok(pull_signature(password, params) == signature, f"vector: {signature} (key {password})")
    for password, params, _ in VECTORS[:2]:
        c.ok(pull_signature(password, params) != NEGATIVE_SIGNATURE,
             f"negative vector: {NEGATIVE_SIGNATURE} does not sign {sorted(params)}")
    c.ok(pull_signature("qwe123", {"foo": "111"}) != NEGATIVE_SIGNATURE,
         f"negative vector: {NEGATIVE_SIGNATURE} does not sign foo=111 (pyqiwi's own negative case)")
    c.ok(pull_signature("k", {"a": "", "b": "x"}) == sha1_base64("k", "|x"),
         "empty values are kept in the signed string (|x, not x)")
    c.ok(pull_signature("k", {"a": "1", "B": "2"}) == sha1_base64("k", "2|1"),
         "names are sorted in byte order (B before a)")
    c.ok(basic_credentials("Basic MTIzOnF3ZTEyMw==") == ("123", "qwe123"),
         "Basic MTIzOnF3ZTEyMw== is 123:qwe123 (§9)")
    c.ok(basic_credentials("Basic MTExOjIyMg==") != ("123", "qwe123"), "Basic MTExOjIyMg== is not (§9)")
    c.ok(basic_credentials("Basic MjA0Mjp0ZXN0Cg==") == ("2042", "test\n"),
         "the docs' MjA0Mjp0ZXN0Cg== carries a newline: 2042:test\\n is not 2042:test")


def check_auth_and_format(c, p):
    bill_id, status, answer = p.create()
    c.ok(status == 200 and code_of(answer) == 0, "a bill is created (result_code 0)", str(answer))
    c.ok(refused(p.api("GET", f"bills/{bill_id}", auth=basic(p.api_id, "wrong")), 150, 401),
         "a wrong API password: HTTP 401, result_code 150")
    c.ok(refused(p.api("GET", f"bills/{bill_id}", auth=""), 150, 401), "no Authorization: HTTP 401, 150")
    other = Project(c)
    c.ok(refused(p.api("GET", f"bills/{bill_id}", auth=basic(other.api_id, other.password)), 150, 401),
         "another project's credentials on this prv_id: 401, 150")
    c.ok(refused(p.api("GET", f"bills/{bill_id}", prv="999"), 150, 401), "an unknown prv_id: 401, 150")
    c.ok(refused(p.api("GET", f"bills/{bill_id}", auth=basic(p.prv, p.password)), 150, 401),
         "the prv_id is not the API_ID: 401, 150")
    status, answer, _, _ = p.api("GET", f"bills/{bill_id}",
                                 auth="basic " + base64.b64encode(f"{p.api_id}:{p.password}".encode()).decode())
    c.ok(status == 200 and code_of(answer) == 0, "the scheme basic in lower case is accepted")
    status, _, headers, payload = p.api("GET", f"bills/{bill_id}", accept="text/xml")
    root = ElementTree.fromstring(payload)
    c.ok(status == 200 and headers["Content-Type"].startswith("text/xml") and root.tag == "response"
         and root.findtext("result_code") == "0" and root.findtext("bill/bill_id") == bill_id
         and root.findtext("bill/amount") == "10.00", "Accept: text/xml answers the documents' XML")
    status, _, _, payload = p.api("GET", f"bills/{bill_id}", accept="application/xml", auth=basic(p.api_id, "x"))
    root = ElementTree.fromstring(payload)
    c.ok(status == 401 and root.findtext("result_code") == "150" and root.findtext("description"),
         "application/xml: the 401 in XML, result_code 150 and a description")
    for accept in (None, "application/json", "*/*"):
        status, answer, headers, _ = p.api("GET", f"bills/{bill_id}", accept=accept)
        c.ok(status == 200 and code_of(answer) == 0 and headers["Content-Type"].startswith("text/json"),
             f"Accept {accept}: JSON (Content-Type text/json)")
    c.ok(refused(p.api("GET", f"bills/{bill_id}", accept="text/html"), 5, 406), "Accept: text/html: HTTP 406")
    status, _, _, payload = p.api("GET", f"bills/{bill_id}")
    c.ok(b"\n" not in payload, "single-line JSON")
    c.ok(refused(p.api("DELETE", f"bills/{bill_id}"), 5, 405), "DELETE of a bill: HTTP 405")
    c.ok(refused(p.api("GET", "bills"), 5, 404), "an unknown resource: HTTP 404")


def check_create(c, p):
    bill_id, status, answer = p.create(amount="10", comment="Заказ №1 a+b", prv_name="Shop",
                                       pay_source="mobile")
    bill = (answer or {}).get("response", {}).get("bill", {})
    c.ok(status == 200 and bill == {"bill_id": bill_id, "amount": "10.00", "ccy": "RUB", "status": "waiting",
                                    "error": 0, "user": "tel:+79161234567", "comment": "Заказ №1 a+b"},
         "the bill: bill_id, amount with two decimals, ccy, waiting, error 0, user, comment", str(answer))
    status, answer, _, _ = p.api("PUT", "bills/plus-" + secrets.token_hex(4), raw=(
        "user=tel%3A%2B79161234567&amount=1.00&ccy=RUB&comment=a+b&lifetime=" + moscow(timedelta(hours=1))))
    c.ok(code_of(answer) == 0 and answer["response"]["bill"]["comment"] == "a b", "+ in a form is a space")
    for name in ("user", "amount", "ccy", "comment", "lifetime"):
        _, status, answer = p.create(**{name: None})
        c.ok(refused((status, answer), 341), f"{name} absent: 341", str(answer))
        _, status, answer = p.create(**{name: ""})
        c.ok(refused((status, answer), 341), f"{name} empty: 341")
    for user in ("79161234567", "tel:79161234567", "tel:+7916abc4567", "tel:+7916123456789012"):
        _, status, answer = p.create(user=user)
        c.ok(refused((status, answer), 303), f"user {user}: 303")
    for amount, code in (("10.001", 5), ("1e3", 5), ("-5.00", 5), ("10,00", 5), (" 10", 5),
                         ("0.00", 241), ("1000000.00", 242)):
        _, status, answer = p.create(amount=amount)
        c.ok(refused((status, answer), code), f"amount {amount!r}: {code}", str(answer))
    _, status, answer = p.create(amount="999999.99")
    c.ok(code_of(answer) == 0, "amount 999999.99 (Number(6.2)) is accepted")
    for ccy, code in (("rub", 5), ("RUBL", 5), ("GBP", 1001)):
        _, status, answer = p.create(ccy=ccy)
        c.ok(refused((status, answer), code), f"ccy {ccy}: {code}")
    for ccy in ("EUR", "USD", "KZT"):
        c.ok(code_of(p.create(ccy=ccy)[2]) == 0, f"ccy {ccy} is accepted")
    c.ok(code_of(p.create(comment="x" * 255)[2]) == 0, "comment of 255 characters is accepted")
    c.ok(refused(p.create(comment="я" * 256)[1:], 5), "comment of 256 characters: 5")
    c.ok(code_of(p.create(prv_name="x" * 100)[2]) == 0, "prv_name of 100 characters is accepted")
    c.ok(refused(p.create(prv_name="x" * 101)[1:], 5), "prv_name of 101 characters: 5")
    c.ok(refused(p.create(pay_source="card")[1:], 5), "pay_source card: 5 (qw or mobile)")
    c.ok(code_of(p.create(pay_source="qw")[2]) == 0, "pay_source qw is accepted")
    c.ok(refused(p.create(extra="1")[1:], 5), "an unknown parameter: 5")
    c.ok(refused(p.create(bill_id="x" * 201)[1:], 5), "bill_id of 201 characters: 5")
    c.ok(code_of(p.create(bill_id="y" * 200)[2]) == 0, "bill_id of 200 characters is accepted")
    c.ok(code_of(p.create(bill_id="a/b ц")[2]) == 0 and code_of(p.api("GET", "bills/a%2Fb%20%D1%86")[1]) == 0,
         "a bill_id with / and a space, URL-encoded in the path")
    lifetime = "user=tel%3A%2B79161234567&amount=1.00&ccy=RUB&comment=c&lifetime="
    c.ok(refused(p.api("PUT", "bills/dup-1", raw=lifetime + moscow(timedelta(hours=1)) + "&ccy=RUB")[:2], 5),
         "a parameter given twice: 5")
    c.ok(refused(p.api("PUT", "bills/json-1", raw='{"amount": "1.00"}', ctype="application/json")[:2], 5, 415),
         "a JSON body: HTTP 415, result_code 5")
    c.ok(code_of(p.api("PUT", "bills/ctype-1", raw=lifetime + moscow(timedelta(hours=1)),
                       ctype="application/x-www-form-urlencoded")[1]) == 0,
         "Content-Type without charset (the Node SDK's) is accepted")
    limited = Project(c, min_amount="10.00", max_amount="100.00", currencies=["RUB"])
    c.ok(refused(limited.create(amount="9.99")[1:], 241), "the project's minimum 10.00: 9.99 is 241")
    c.ok(refused(limited.create(amount="100.01")[1:], 242), "the project's maximum 100.00: 100.01 is 242")
    c.ok(code_of(limited.create(amount="100.00")[2]) == 0, "and 100.00 is accepted")
    c.ok(refused(limited.create(ccy="USD")[1:], 1001), "a project with only RUB: USD is 1001")


def check_lifetime(c, p):
    for lifetime in ("2030-01-01 00:00:00", "2030-01-01T00:00:00+03:00", "2030-01-01T00:00", "2030-02-30T00:00:00",
                     "2030-01-01T00:00:00.000", moscow(timedelta(seconds=-5))):
        c.ok(refused(p.create(lifetime=lifetime)[1:], 5), f"lifetime {lifetime}: 5")
    iso = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    c.ok(code_of(p.create(lifetime=iso)[2]) == 0, f"lifetime {iso} (the Node SDK's toISOString()) is accepted")
    c.ok(code_of(p.create(lifetime=moscow(timedelta(days=60)))[2]) == 0,
         "a lifetime past 45 days is accepted (the bill expires after 45 days)")
    receiver = Receiver()
    q = Project(c, receiver, notification_auth="signature")
    bill_id, _, _ = q.create(lifetime=moscow(timedelta(seconds=2)))
    posts = receiver.wait(q.hook, timeout=6)
    c.ok(len(posts) == 1 and posts[0]["params"]["status"] == "expired", "the lifetime passes: expired, and notified")
    c.ok(q.api("GET", f"bills/{bill_id}")[1]["response"]["bill"]["status"] == "expired", "GET: expired")
    receiver.server.shutdown()


def check_repeat_and_status(c, p):
    bill_id, _, first = p.create(amount="10.00", comment="first")
    _, status, again = p.create(bill_id=bill_id, amount="10", comment="second")
    c.ok(code_of(again) == 0 and again == first, "the same bill_id and amount: the same bill (result_code 0)")
    c.ok(refused(p.create(bill_id=bill_id, amount="10.01")[1:], 215), "the same bill_id, another amount: 215")
    c.ok(refused(p.api("GET", "bills/nosuch-" + secrets.token_hex(4))[:2], 210), "an unknown bill: 210, HTTP 200")
    status, body = p.buyer(bill_id, "start", {"origin_amount": "0.15", "origin_ccy": "USD"})
    got = p.api("GET", f"bills/{bill_id}")[1]["response"]["bill"]
    c.ok(got["status"] == "waiting" and got["originAmount"] == "0.15" and got["originCcy"] == "USD"
         and list(got) == ["bill_id", "amount", "originAmount", "ccy", "originCcy", "status", "error", "user", "comment"],
         "the buyer starts paying: originAmount and originCcy appear, still waiting", str(got))
    c.ok(refused(p.api("PATCH", f"bills/{bill_id}", {"status": "rejected"})[:2], 1419), "cancel while being paid: 1419")
    p.buyer(bill_id, "pay")
    got = p.api("GET", f"bills/{bill_id}")[1]["response"]["bill"]
    c.ok(got["status"] == "paid" and got["originAmount"] == "0.15", "paid")
    _, _, again = p.create(bill_id=bill_id, amount="10.00")
    c.ok(code_of(again) == 0 and again["response"]["bill"]["status"] == "paid",
         "a repeat of the create after the payment: the bill as it is now (paid)")
    c.ok(p.buyer(bill_id, "pay")[0] == 409, "control: a paid bill cannot be paid again (409)")
    c.ok(p.buyer("nosuch", "pay")[0] == 404, "control: an unknown bill (404)")
    for action, status in (("reject", "rejected"), ("fail", "unpaid"), ("expire", "expired")):
        other, _, _ = p.create()
        p.buyer(other, action)
        c.ok(p.api("GET", f"bills/{other}")[1]["response"]["bill"]["status"] == status, f"control {action}: {status}")


def check_cancel(c, p):
    bill_id, _, _ = p.create()
    c.ok(refused(p.api("PATCH", f"bills/{bill_id}", raw="")[:2], 341), "cancel without status: 341")
    c.ok(refused(p.api("PATCH", f"bills/{bill_id}", {"status": "paid"})[:2], 5), "status=paid: 5")
    c.ok(refused(p.api("PATCH", f"bills/{bill_id}", {"status": "rejected", "x": "1"})[:2], 5), "another parameter: 5")
    status, answer, _, _ = p.api("PATCH", f"bills/{bill_id}", {"status": "rejected"})
    c.ok(status == 200 and code_of(answer) == 0 and answer["response"]["bill"]["status"] == "rejected",
         "PATCH status=rejected cancels a waiting bill")
    status, answer, _, _ = p.api("PATCH", f"bills/{bill_id}", {"status": "rejected"})
    c.ok(code_of(answer) == 0 and answer["response"]["bill"]["status"] == "rejected", "cancelling again: 0, rejected")
    c.ok(refused(p.api("PATCH", f"bills/{p.paid()}", {"status": "rejected"})[:2], 1419), "cancel a paid bill: 1419")
    expired, _, _ = p.create()
    p.buyer(expired, "expire")
    c.ok(refused(p.api("PATCH", f"bills/{expired}", {"status": "rejected"})[:2], 78), "cancel an expired bill: 78")
    c.ok(refused(p.api("PATCH", "bills/nosuch", {"status": "rejected"})[:2], 210), "cancel an unknown bill: 210")


def check_refunds(c, p):
    waiting, _, _ = p.create()
    c.ok(refused(p.api("PUT", f"bills/{waiting}/refund/r1", {"amount": "1.00"})[:2], 78), "refund of a waiting bill: 78")
    bill_id = p.paid("10.00")
    status, answer, _, _ = p.api("PUT", f"bills/{bill_id}/refund/r1", {"amount": "4"})
    c.ok(status == 200 and code_of(answer) == 0 and answer["response"]["refund"] ==
         {"refund_id": "r1", "amount": "4.00", "status": "processing", "error": 0},
         "a refund: processing, amount with two decimals, error 0", str(answer))
    c.ok(p.api("GET", f"bills/{bill_id}/refund/r1")[1]["response"]["refund"]["status"] == "processing",
         "its status: processing")
    status, body = p.c.control("POST", f"/pull/projects/{p.prv}/bills/{bill_id}/refunds/r1/complete")
    c.ok(status == 200 and p.api("GET", f"bills/{bill_id}/refund/r1")[1]["response"]["refund"]["status"] == "success",
         "control complete: success")
    _, again, _, _ = p.api("PUT", f"bills/{bill_id}/refund/r1", {"amount": "4.00"})
    c.ok(code_of(again) == 0 and again["response"]["refund"]["status"] == "success",
         "the same refund_id and amount: the refund as it is (success)")
    c.ok(refused(p.api("PUT", f"bills/{bill_id}/refund/r1", {"amount": "5.00"})[:2], 215),
         "the same refund_id, another amount: 215")
    c.ok(refused(p.api("PUT", f"bills/{bill_id}/refund/r2", {"amount": "6.01"})[:2], 242),
         "more than what is left (6.01 of 6.00): 242")
    c.ok(code_of(p.api("PUT", f"bills/{bill_id}/refund/r2", {"amount": "5.00"})[1]) == 0, "a second refund (5.00)")
    status, body = p.c.control("POST", f"/pull/projects/{p.prv}/bills/{bill_id}/refunds/r2/fail")
    got = p.api("GET", f"bills/{bill_id}/refund/r2")[1]["response"]["refund"]
    c.ok(got["status"] == "fail" and got["error"] == 300, "control fail: fail, error 300", str(got))
    c.ok(code_of(p.api("PUT", f"bills/{bill_id}/refund/r3", {"amount": "6.00"})[1]) == 0,
         "a failed refund gave nothing back: 6.00 is left")
    c.ok(refused(p.api("PUT", f"bills/{bill_id}/refund/r4", {"amount": "0.01"})[:2], 242),
         "the whole amount refunded: 0.01 more is 242")
    c.ok(p.c.control("POST", f"/pull/projects/{p.prv}/bills/{bill_id}/refunds/r2/complete")[0] == 409,
         "control: a final refund cannot change (409)")
    for refund_id in ("1234567890", "ab-c", "ю"):
        c.ok(refused(p.api("PUT", f"bills/{bill_id}/refund/{quote(refund_id)}", {"amount": "1.00"})[:2], 5),
             f"refund_id {refund_id}: 5")
    c.ok(code_of(p.api("GET", f"bills/{bill_id}/refund/AZaz09xyz")[1]) == 210, "an unknown refund (9 characters): 210")
    other = p.paid()
    for form, code in (({}, 341), ({"amount": "1.234"}, 5), ({"amount": "0"}, 5), ({"amount": "1", "ccy": "RUB"}, 5)):
        c.ok(refused(p.api("PUT", f"bills/{other}/refund/x1", form)[:2], code), f"refund {form}: {code}")
    c.ok(refused(p.api("PUT", "bills/nosuch/refund/x1", {"amount": "1.00"})[:2], 210), "refund of an unknown bill: 210")


def signed_ok(post, password):
    """The post's X-Api-Signature, recomputed independently over its decoded parameters."""
    params = post["params"]
    message = "|".join(params[name] for name in sorted(params, key=lambda n: n.encode()))
    return post["headers"].get("X-Api-Signature") == sha1_base64(password, message)


def check_notifications(c, receiver):
    p = Project(c, receiver, notification_auth="signature", prv_name="Project name")
    bill_id, _, _ = p.create(comment="Заказ №7 a+b&c=d", amount="5")
    p.buyer(bill_id, "pay")
    posts = receiver.wait(p.hook)
    post = posts[0] if posts else {"params": {}, "headers": {}, "raw": ""}
    c.ok(len(posts) == 1 and set(post["params"]) == NOTIFICATION_FIELDS, "on payment: one POST with the documented fields",
         str(post["params"]))
    c.ok(post["params"] == {"command": "bill", "bill_id": bill_id, "status": "paid", "error": "0", "amount": "5.00",
                            "user": "tel:+79161234567", "prv_name": "Project name", "ccy": "RUB",
                            "comment": "Заказ №7 a+b&c=d"},
         "command=bill, the status, error 0, the amount with two decimals, the project's name", str(post["params"]))
    c.ok(post["headers"].get("Content-Type", "").startswith("application/x-www-form-urlencoded")
         and post["headers"].get("Accept") == "text/xml", "form-encoded, Accept: text/xml")
    c.ok(signed_ok(post, p.npassword) and "Authorization" not in post["headers"],
         "X-Api-Signature: HMAC-SHA1 of the sorted values with the notification password, in base64; no Basic auth")
    c.ok(not signed_ok(post, p.password), "the signature is not keyed with the API password")
    c.ok("+" in post["raw"] and "%2B" in post["raw"], "spaces travel as +, a + as %2B")
    bill_id, _, _ = p.create(prv_name="Bill's own")
    p.api("PATCH", f"bills/{bill_id}", {"status": "rejected"})
    posts = receiver.wait(p.hook, 2)
    c.ok(len(posts) == 2 and posts[1]["params"]["status"] == "rejected"
         and posts[1]["params"]["prv_name"] == "Bill's own" and signed_ok(posts[1], p.npassword),
         "the merchant's cancel is notified too, with the bill's prv_name")
    b = Project(c, receiver)
    bill_id, _, _ = b.create()
    b.buyer(bill_id, "fail")
    posts = receiver.wait(b.hook)
    c.ok(len(posts) == 1 and posts[0]["headers"].get("Authorization") == basic(b.prv, b.npassword)
         and "X-Api-Signature" not in posts[0]["headers"] and posts[0]["params"]["status"] == "unpaid",
         "Basic auth (the default): login the prv_id, password the notification password")
    start = b.create()[0]
    b.buyer(start, "start")
    # the sandbox logs a notification when the status changes, before sending it
    log = [n for n in c.control("GET", "/pull/notifications")[1] if n["bill_id"] == start]
    c.ok(log == [], "starting to pay changes no status: no notification", str(log))


def delivery_log(c, prv, settled, timeout=10.0):
    """The sandbox's log of a project's notifications, once the first one
    is settled (the sandbox records an attempt's answer after the receiver
    has the post), or as it is at the timeout"""
    deadline = time.monotonic() + timeout
    while True:
        log = [n for n in c.control("GET", "/pull/notifications")[1] if n["prv_id"] == prv]
        if (log and settled(log[0])) or time.monotonic() >= deadline:
            return log
        time.sleep(0.05)


def check_delivery(c, receiver):
    p = Project(c, receiver, hook="code/300/2", notification_auth="signature", retry_delays_ms=[50, 150])
    bill_id = p.paid()
    posts = receiver.wait(p.hook, 3)
    gaps = [b["at"] - a["at"] for a, b in zip(posts, posts[1:])]
    c.ok(len(posts) == 3 and all(x["raw"] == posts[0]["raw"] and signed_ok(x, p.npassword) for x in posts),
         "result_code 300 in the answer: sent again, unchanged, until 0", str(len(posts)))
    # only the lower bounds: a loaded machine may add any delay
    c.ok(len(gaps) == 2 and gaps[0] >= 0.05 and gaps[1] >= 0.15, "after the delays of retry_delays_ms",
         str(gaps))
    log = delivery_log(c, p.prv, lambda n: len(n["attempts"]) == 3 and n["delivered"])
    c.ok(len(log) == 1 and log[0]["delivered"] and log[0]["bill_id"] == bill_id
         and [a["result_code"] for a in log[0]["attempts"]] == [300, 300, 0],
         "the sandbox's log: attempts answered 300, 300, 0; delivered", str(log))
    h = Project(c, receiver, hook="http/500/1", retry_delays_ms=[20])
    h.paid()
    posts = receiver.wait(h.hook, 2)
    c.ok(len(posts) == 2, "HTTP 500 with result_code 0 is a failure: sent again")
    dead = Project(c, receiver, hook="code/151/99", retry_delays_ms=[10, 10, 10])
    dead.paid()
    posts = receiver.wait(dead.hook, 4)
    log = delivery_log(c, dead.prv, lambda n: len(n["attempts"]) == 4)
    c.ok(len(posts) == 4 and len(log) == 1 and not log[0]["delivered"] and len(log[0]["attempts"]) == 4,
         "151 every time: 1 + len(retry_delays_ms) attempts, then given up (delivered false)")
    d = Project(c, receiver, duplicates=2)
    d.paid()
    c.ok(len(receiver.wait(d.hook, 3)) == 3, "duplicates 2: the accepted notification comes twice more")
    status, _ = c.control("POST", "/pull/projects", {"prv_id": "12a", "api_id": "1", "api_password": "x"})
    c.ok(status == 400, "control: a prv_id that is not a number is refused")
    status, _ = c.control("POST", "/pull/projects", {"prv_id": "12", "api_id": "1", "api_password": "x",
                                                     "retry_delays_ms": [1] * 50})
    c.ok(status == 400, "control: more than 49 retries (50 attempts) is refused")
    status, _ = c.control("POST", "/pull/projects", {"prv_id": "12", "api_id": "1", "api_password": "x",
                                                     "min_amount": "ten"})
    c.ok(status == 400, "control: a min_amount that is not an amount is refused")


def check_faults(c, p):
    c.control("POST", "/faults", {"api": "pull", "prv": p.prv, "result_code": 13})
    bill_id, status, answer = p.create()
    c.ok(refused((status, answer), 13), "a result_code fault: the next request answers 13 (HTTP 200)")
    c.ok(code_of(p.api("GET", f"bills/{bill_id}")[1]) == 210, "and was not taken: no bill")
    c.control("POST", "/faults", {"api": "pull", "prv": p.prv, "result_code": 150})
    c.ok(refused(p.api("GET", f"bills/{bill_id}"), 150, 401), "a 150 fault: HTTP 401")
    c.control("POST", "/faults", {"api": "pull", "prv": p.prv, "result_code": 300, "status": 503})
    status, _, _, payload = p.api("GET", f"bills/{bill_id}")
    c.ok(status == 503 and json.loads(payload)["response"]["result_code"] == 300, "status 503 with result_code 300")
    c.control("POST", "/faults", {"api": "pull", "prv": p.prv, "result_code": 1003, "applied": True})
    bill_id, status, answer = p.create()
    c.ok(code_of(answer) == 1003 and code_of(p.api("GET", f"bills/{bill_id}")[1]) == 0,
         "an applied fault: the bill was created, the answer was 1003")
    c.control("POST", "/faults", {"api": "pull", "prv": p.prv, "drop": "after"})
    bill_id, status, answer = p.create(amount="7.00")
    _, _, again = p.create(bill_id=bill_id, amount="7.00")
    c.ok(status is None and code_of(again) == 0 and again["response"]["bill"]["amount"] == "7.00",
         "drop after: the answer is lost; the same PUT again gives the bill")
    other = Project(c)
    c.control("POST", "/faults", {"api": "pull", "prv": other.prv, "result_code": 300})
    c.ok(code_of(p.create()[2]) == 0, "a fault narrowed to another prv_id does not touch this one")
    c.ok(refused(other.create()[1:], 300), "but that project's next request")
    c.control("POST", "/faults", {"api": "pull", "result_code": 300})
    status, _, _ = c.http("GET", "/partner/bill/v1/bills/some-bill", headers={"Authorization": "Bearer no"})
    c.ok(status == 401 and refused(p.create()[1:], 300), "a Pull fault does not touch Bill Payments")


def check_stats_and_reset(c, p):
    """Run last: it forgets the Pull state."""
    p.create()
    status, stats = c.control("GET", "/pull/stats")
    c.ok(status == 200 and stats["bills"] >= 1 and stats["byMethod"].get("PUT", 0) >= 1
         and stats["requests"] >= stats["byMethod"]["PUT"], "GET stats: requests, byMethod, bills", str(stats))
    c.control("POST", "/pull/reset")
    status, stats = c.control("GET", "/pull/stats")
    c.ok(stats["bills"] == 0 and stats["refunds"] == 0 and stats["notifications"] == 0 and stats["requests"] == 0,
         "POST reset forgets bills, refunds, notifications and counters", str(stats))
    c.ok(refused(p.create()[1:], 150, 401), "and the projects added since")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the running sandbox, e.g. http://127.0.0.1:8080")
    args = parser.parse_args()
    c = Check(args.url)
    receiver = Receiver()
    groups = [
        ("signature vectors", lambda: check_signatures(c)),
        ("auth and format", lambda: check_auth_and_format(c, Project(c))),
        ("create", lambda: check_create(c, Project(c))),
        ("lifetime", lambda: check_lifetime(c, Project(c))),
        ("repeats and status", lambda: check_repeat_and_status(c, Project(c))),
        ("cancel", lambda: check_cancel(c, Project(c))),
        ("refunds", lambda: check_refunds(c, Project(c))),
        ("notifications", lambda: check_notifications(c, receiver)),
        ("delivery", lambda: check_delivery(c, receiver)),
        ("faults", lambda: check_faults(c, Project(c))),
        ("stats and reset", lambda: check_stats_and_reset(c, Project(c))),
    ]
    failed = c.run_groups(groups)
    receiver.server.shutdown()
    return failed


if __name__ == "__main__":
    sys.exit(main())
