#!/usr/bin/env python3
"""Self-check of the sandbox's QIWI Wallet API (test/wallet_sandbox.py) against
QIWI's documents (shared/qiwi-api.md §4, §8, §9): paging without loss or
duplicates, the empty history, the 423 block and its end, 401 against 403,
transfers that a repeated id does not pay twice, webhooks and the two
verified signature vectors.

It starts no sandbox: --url names a running one (http://127.0.0.1:PORT).
It adds wallets with fresh numbers and runs a webhook receiver on a free
port; it moves the Wallet clock and changes the Wallet limits, and begins
and ends with POST /sandbox/wallet/reset (the checks assume QIWI's limits,
whatever a test left).  Prints "ok N - ..." or "not ok N - ..." per
check and exits non-zero when any check fails.  Python standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import sys
import time
from datetime import datetime, timedelta, timezone
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request, urlopen

import sandbox_checks

MSK = timezone(timedelta(hours=3))
# §4 and §9: the webhook doc's key and its two vectors (values in signFields order)
DOC_KEY = "JcyVhjHCvHQwufz+IHXolyqHgEc5MoayBfParl6Guoc="
VECTORS = [("643|1|IN|+79161112233|13353941550", "f05c4e7bdf00620205d47696d77f924bfd3ba4d02b0398ac8a626e737dc27243"),
           ("643|1|IN|+79165238345|13353941550", "76687ffe5c516c793faa46fafba0994e7ca7a6d735966e0e0c0b65eaa43bdca0")]
BLOCKED = {"serviceName": "payment-history", "errorCode": "request.blocked",
           "userMessage": "request blocked, try again later"}


def hmac_hex(key_b64, message):
    return hmac.new(base64.b64decode(key_b64), message.encode(), hashlib.sha256).hexdigest()


def signed_string(payment):
    """The signFields' values, in order, as the body's JSON writes them."""
    values = []
    for field in payment["signFields"].split(","):
        value = payment
        for part in field.split("."):
            value = value[part]
        values.append(json.dumps(value) if not isinstance(value, str) else value)
    return "|".join(values)


class Receiver(sandbox_checks.Receiver):
    """Webhook receiver: /ok answers 200, /fail/N fails N times first."""

    def record(self, headers, raw):
        return {"raw": raw.decode(), "body": json.loads(raw)}

    def answer(self, parts, seen):
        return (500 if parts[1] == "fail" and seen < int(parts[2]) else 200), None, b""

    def wait(self, predicate, count=1, timeout=8.0):
        """The posts matching predicate, once there are count of them (or at the timeout)."""
        return self.posts_where(predicate, count, timeout)


class Check(sandbox_checks.Checks):
    def http(self, method, path, token=None, body=None, raw=None):
        """(status, parsed JSON or None); a connection closed unanswered is (None, None)."""
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            with urlopen(Request(self.url + path, data=data, method=method, headers=headers), timeout=10) as r:
                payload = r.read()
                status = r.status
        except HTTPError as e:
            payload, status = e.read(), e.code
        except (URLError, ConnectionError):
            return None, None
        return status, json.loads(payload) if payload else None

    def control(self, method, path, body=None):
        return self.http(method, "/sandbox/wallet" + path, body=body if body is not None else {})

    def wallet(self, **options):
        number = "79" + "".join(secrets.choice("0123456789") for _ in range(9))
        token = secrets.token_hex(12)
        status, _ = self.control("POST", "/wallets", dict({"number": number, "token": token}, **options))
        assert status == 200, status
        return number, token


def history(c, number, token, **params):
    query = "&".join(f"{k}={quote(str(v), safe='[]')}" for k, v in params.items())
    return c.http("GET", f"/payment-history/v2/persons/{number}/payments?{query}", token)


def transfer_body(client_id, amount, account, **extra):
    return dict({"id": client_id, "sum": {"amount": amount, "currency": "643"},
                 "paymentMethod": {"type": "Account", "accountId": "643"},
                 "fields": {"account": account}}, **extra)


def check_vectors(c):
    for message, expected in VECTORS:
        c.ok(hmac_hex(DOC_KEY, message) == expected, f"vector {expected[:8]}: {message}")
    c.ok(hmac_hex(DOC_KEY, VECTORS[0][0].replace("|1|", "|1.00|")).startswith("ac170d13"),
         "the amount written 1.00 signs to another hash (§4: ac170d13...)")
    raw_key = hmac.new(DOC_KEY.encode(), VECTORS[0][0].encode(), hashlib.sha256).hexdigest()
    c.ok(raw_key.startswith("4856e3d5"), "the key not base64-decoded signs to another hash (§4: 4856e3d5...)")


def check_auth(c):
    number, token = c.wallet()
    other, other_token = c.wallet(scopes=["balance"])
    status, body = history(c, number, "not-a-token", rows=5)
    c.ok(status == 401 and body["errorCode"] == "auth.unauthorized", "a bad token: 401", f"{status} {body}")
    status, _ = c.http("GET", f"/payment-history/v2/persons/{number}/payments?rows=5")
    c.ok(status == 401, "no Authorization: 401", status)
    status, body = history(c, number, other_token, rows=5)
    c.ok(status == 403 and body["errorCode"] == "auth.forbidden", "another wallet's number: 403 auth.forbidden",
         f"{status} {body}")
    status, body = history(c, other, other_token, rows=5)
    c.ok(status == 403 and "history" in body["userMessage"], "a token without the history scope: 403 naming it",
         f"{status} {body}")
    status, body = c.http("GET", f"/funding-sources/v2/persons/{other}/accounts", other_token)
    c.ok(status == 200 and body["accounts"][0]["balance"] == {"amount": 0, "currency": 643},
         "the balance scope is enough for balances", f"{status} {body}")
    status, body = c.http("GET", "/person-profile/v1/profile/current?userInfoEnabled=false", token)
    c.ok(status == 200 and body["authInfo"]["personId"] == int(number) and "userInfo" not in body,
         "the profile, without the part switched off", f"{status} {body}")
    c.control("POST", "/wallets", {"number": number, "token": "a-new-token"})
    status, _ = history(c, number, token, rows=5)
    c.ok(status == 401, "a new token revokes the old one: 401", status)


def collect(c, number, token, first, follow):
    """Every page from the first request's parameters; follow(params, answer) -> next params."""
    seen, pages, params = [], 0, dict(first)
    while params is not None and pages < 100:
        status, body = history(c, number, token, **params)
        if status != 200:
            return seen, pages, (status, body)
        seen.extend(body["data"])
        pages += 1
        params = follow(params, body) if body["nextTxnId"] is not None else None
    return seen, pages, None


def check_paging(c):
    number, token = c.wallet()
    c.control("POST", f"/wallets/{number}/payments", {"count": 237, "days": 0.002})	# often 2 a second
    now = datetime.now(MSK) + timedelta(seconds=5)
    window = {"startDate": (now - timedelta(days=1)).isoformat(timespec="seconds"),
              "endDate": now.isoformat(timespec="seconds")}
    both = lambda p, b: dict(window, rows=50, nextTxnId=b["nextTxnId"], nextTxnDate=b["nextTxnDate"])
    items, pages, error = collect(c, number, token, dict(window, rows=50), both)
    ids = [i["txnId"] for i in items]
    c.ok(error is None and pages == 5 and len(ids) == 237 and len(set(ids)) == 237,
         "237 items in 5 pages of 50, dates and cursor: none lost, none twice", f"{pages} {len(ids)} {error}")
    keys = [(i["date"], i["txnId"]) for i in items]
    c.ok(keys == sorted(keys, reverse=True), "newest first, ties in a second by txnId")
    alone = lambda p, b: {"rows": 50, "nextTxnId": b["nextTxnId"], "nextTxnDate": b["nextTxnDate"]}
    again, _, error = collect(c, number, token, dict(window, rows=50), alone)
    c.ok([i["txnId"] for i in again] == ids, "the cursor alone continues the same way (the docs' example 6)",
         str(error))
    status, last = history(c, number, token, rows=50, **window)
    c.ok(last["nextTxnId"] is not None and last["nextTxnDate"].endswith("+03:00"), "the cursor is in Moscow time")
    utc = {"startDate": (now - timedelta(days=1)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "endDate": now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    status, body = history(c, number, token, rows=7, **utc)
    c.ok(status == 200 and body["data"][0]["date"].endswith("+00:00") and body["nextTxnDate"].endswith("+03:00"),
         "items in the request's zone (Z), the cursor still in Moscow time", f"{status} {body and body['data'][:1]}")
    items, pages, _ = collect(c, number, token, {"rows": 49}, alone)
    c.ok(len(items) == 237 and pages == 5, "no dates: the last day; 49 a page", f"{len(items)} {pages}")
    middle = datetime.fromisoformat(keys[100][0])
    part = {"startDate": middle.isoformat(), "endDate": window["endDate"]}
    status, body = history(c, number, token, rows=50, **part)
    inside = [i for i in ids if datetime.fromisoformat(dict((t, d) for d, t in keys)[i]) >= middle]
    sub, _, _ = collect(c, number, token, dict(part, rows=50), lambda p, b: dict(part, rows=50, nextTxnId=b["nextTxnId"],
                                                                                    nextTxnDate=b["nextTxnDate"]))
    c.ok([i["txnId"] for i in sub] == inside, "a window ends the paging at its start (null cursor)",
         f"{len(sub)} {len(inside)}")


def check_history_rules(c):
    number, token = c.wallet()
    status, body = history(c, number, token, rows=10)
    c.ok(status == 404 and body["serviceName"] == "payment-history", "an empty history: 404 (§9)", f"{status} {body}")
    paged, paged_token = c.wallet(emptyHistory="page")
    status, body = history(c, paged, paged_token, rows=10)
    c.ok(status == 200 and body == {"data": [], "nextTxnId": None, "nextTxnDate": None},
         "emptyHistory page: an empty page with a null cursor", f"{status} {body}")
    c.control("POST", f"/wallets/{number}/payments", {"amount": "5.00"})
    now = datetime.now(MSK)
    day = lambda d: (now - timedelta(days=d)).isoformat(timespec="seconds")
    bad = [("rows missing", {}), ("rows=0", {"rows": 0}), ("rows=51", {"rows": 51}),
           ("startDate without endDate", {"rows": 5, "startDate": day(1)}),
           ("91 days", {"rows": 5, "startDate": day(91), "endDate": day(0)}),
           ("endDate before startDate", {"rows": 5, "startDate": day(0), "endDate": day(1)}),
           ("two time zones", {"rows": 5, "startDate": day(1),
                               "endDate": (now.astimezone(timezone.utc)).isoformat(timespec="seconds")}),
           ("nextTxnId without nextTxnDate", {"rows": 5, "nextTxnId": 1}),
           ("operation=SOME", {"rows": 5, "operation": "SOME"}),
           ("sources unnumbered", {"rows": 5, "sources": "QW_RUB"}),
           ("sources[1] without sources[0]", {"rows": 5, "sources[1]": "QW_RUB"}),
           ("sources[0]=BANK", {"rows": 5, "sources[0]": "BANK"}),
           ("a date with fractions", {"rows": 5, "startDate": now.isoformat(), "endDate": now.isoformat()})]
    for name, params in bad:
        status, body = history(c, number, token, **params)
        c.ok(status == 400, f"{name}: 400", f"{status} {body}")
    status, _ = c.http("GET", f"/payment-history/v2/persons/{number}/payments?rows=5&startDate={day(1)}&endDate={day(0)}",
                       token)
    c.ok(status == 400, "a + left unencoded in a date is a space: 400", status)
    status, body = history(c, number, token, rows=5, operation="OUT")
    c.ok(status == 404, "operation=OUT on a wallet only paid into: 404", status)
    status, body = history(c, number, token, **{"rows": 5, "sources[0]": "CARD", "sources[1]": "QW_RUB"})
    c.ok(status == 200 and len(body["data"]) == 1, "sources[0], sources[1]: the ruble account's item", status)
    status, body = c.http("GET", f"/payment-history/v2/persons/{number}/payments/total?startDate={quote(day(1))}"
                          f"&endDate={quote(day(-1))}", token)
    c.ok(status == 200 and body == {"incomingTotal": [{"amount": 5, "currency": 643}], "outgoingTotal": []},
         "totals", f"{status} {body}")
    status, page = history(c, number, token, rows=1)
    txn = page["data"][0]["txnId"]
    status, body = c.http("GET", f"/payment-history/v2/transactions/{txn}?type=IN", token)
    c.ok(status == 200 and body["txnId"] == txn and "features" in body, "a transaction by id", status)
    _, other_token = c.wallet()
    status, _ = c.http("GET", f"/payment-history/v2/transactions/{txn}", other_token)
    c.ok(status == 404, "another wallet's transaction: 404", status)


def check_written_as(c):
    """An item added with writtenAs is written so in the history and as a
    transaction; the items beside it are written as ever."""
    number, token = c.wallet()
    c.control("POST", f"/wallets/{number}/payments", {"amount": "1.00"})
    _, odd = c.control("POST", f"/wallets/{number}/payments", {"amount": "2.00", "writtenAs": {"sum": "lots"}})
    c.control("POST", f"/wallets/{number}/payments", {"amount": "3.00"})
    status, body = history(c, number, token, rows=10)
    sums = sorted(str(i["sum"]) for i in body["data"]) if status == 200 else []
    c.ok(sums == ["lots", "{'amount': 1, 'currency': 643}", "{'amount': 3, 'currency': 643}"],
         "writtenAs: that item's sum is written \"lots\", the others' as ever", f"{status} {sums}")
    status, body = c.http("GET", f"/payment-history/v2/transactions/{odd['txnId']}", token)
    c.ok(status == 200 and body["sum"] == "lots" and body["txnId"] == odd["txnId"],
         "writtenAs: and so as a transaction", f"{status} {body}")
    status, body = c.control("POST", f"/wallets/{number}/payments", {"writtenAs": "lots"})
    c.ok(status == 400, "writtenAs that is not an object: 400", f"{status} {body}")


def check_rate_limit(c):
    number, token = c.wallet()
    c.control("POST", f"/wallets/{number}/payments", {"amount": "1.00"})
    statuses = [history(c, number, token, rows=1)[0] for _ in range(100)]
    c.ok(statuses == [200] * 100, "100 history requests in a minute: all answered", str(set(statuses)))
    status, body = history(c, number, token, rows=1)
    c.ok(status == 423 and {k: body.get(k) for k in BLOCKED} == BLOCKED and "dateTime" in body,
         "the 101st: 423 request.blocked, as documented", f"{status} {body}")
    began = body.get("dateTime")
    status, body = c.http("GET", f"/funding-sources/v2/persons/{number}/accounts", token)
    c.ok(status == 423 and body["errorCode"] == "request.blocked", "the block covers every endpoint", status)
    c.ok(body.get("dateTime") == began, "every 423 of a block carries when it began (§9: the end is that + 5 min)",
         f"{began} {body.get('dateTime')}")
    other, other_token = c.wallet()
    status, _ = c.http("GET", f"/funding-sources/v2/persons/{other}/accounts", other_token)
    c.ok(status == 200, "another wallet is not blocked", status)
    c.control("POST", "/clock", {"seconds": 299})
    c.ok(history(c, number, token, rows=1)[0] == 423, "still blocked after 4 min 59 s")
    c.control("POST", "/clock", {"seconds": 2})
    c.ok(history(c, number, token, rows=1)[0] == 200, "the block ends after 5 minutes")
    for _ in range(99):
        history(c, number, token, rows=1)
    c.control("POST", "/clock", {"seconds": 61})
    statuses = [history(c, number, token, rows=1)[0] for _ in range(100)]
    c.ok(statuses == [200] * 100, "the window slides: 100 more a minute later", str(set(statuses)))
    status, limits = c.control("POST", "/limits", {"requests": 3, "blockSeconds": 10})
    fresh, fresh_token = c.wallet()
    c.control("POST", f"/wallets/{fresh}/payments", {"amount": "1.00"})
    statuses = [history(c, fresh, fresh_token, rows=1)[0] for _ in range(4)]
    c.control("POST", "/clock", {"seconds": 10})
    statuses.append(history(c, fresh, fresh_token, rows=1)[0])
    c.ok(statuses == [200, 200, 200, 423, 200], "limits set by control: 3 a window, a 10 s block", str(statuses))
    c.control("POST", "/limits", {"requests": 100, "blockSeconds": 300})


def pay(c, token, body):
    return c.http("POST", "/sinap/api/v2/terms/99/payments", token, body=body)


def balance(c, number, token):
    _, body = c.http("GET", f"/funding-sources/v2/persons/{number}/accounts", token)
    return body["accounts"][0]["balance"]["amount"]


def check_transfers(c):
    payer, token = c.wallet(balance="100.00")
    payee, payee_token = c.wallet()
    first = str(int(time.time() * 1000))
    status, answer = pay(c, token, transfer_body(first, 10.559, "+" + payee, comment="for order 7"))
    c.ok(status == 200 and answer["transaction"]["state"]["code"] == "Accepted" and answer["sum"]["amount"] == 10.55
         and answer["sum"]["currency"] == "643", "a transfer: Accepted, the amount rounded down", f"{status} {answer}")
    status, again = pay(c, token, transfer_body(first, 10.559, "+" + payee, comment="for order 7"))
    c.ok(status == 200 and again == answer, "the same id again: the same answer", f"{status} {again}")
    c.ok(balance(c, payer, token) == 89.45 and balance(c, payee, payee_token) == 10.55,
         "the repeated id paid nothing more")
    _, page = history(c, payer, token, rows=50)
    mine = [i for i in page["data"] if i["trmTxnId"] == first]
    c.ok(len(mine) == 1 and mine[0]["status"] == "SUCCESS" and mine[0]["type"] == "OUT"
         and str(mine[0]["txnId"]) == answer["transaction"]["id"], "one OUT item whose trmTxnId is the id", str(mine))
    status, body = pay(c, token, transfer_body(first, 11, "+" + payee))
    c.ok(status == 400 and body == {"code": "QWPRC-408", "message": body.get("message")} and body["message"],
         "the same id with another body: QWPRC-408", f"{status} {body}")
    cases = [("an id not above the last", transfer_body(str(int(first) - 1), 1, payee), "QWPRC-300"),
             ("more than the balance", transfer_body(str(int(first) + 1), 500, payee), "QWPRC-220"),
             ("less than 1 ruble", transfer_body(str(int(first) + 2), 0.5, payee), "QWPRC-241"),
             ("to itself", transfer_body(str(int(first) + 3), 1, payer), "QWPRC-300"),
             ("an id of 21 digits", transfer_body("1" * 21, 1, payee), "QWPRC-300")]
    for name, body, code in cases:
        status, answer_body = pay(c, token, body)
        c.ok(status == 400 and answer_body.get("code") == code, f"{name}: {code}", f"{status} {answer_body}")
    status, body = pay(c, token, transfer_body(str(int(first) + 4), 1, int(payee)))
    c.ok(status == 400 and "error.expected.jsstring" in body.get("message", ""),
         "fields.account as a number: Json validation error (§8)", f"{status} {body}")
    c.ok(balance(c, payer, token) == 89.45, "refused transfers move no money")
    # a lost answer: applied, then the connection closes
    c.http("POST", "/sandbox/faults", body={"api": "wallet", "drop": "after"})
    lost = str(int(first) + 5)
    status, _ = pay(c, token, transfer_body(lost, 2, payee))
    c.ok(status is None, "a fault drops the answer of an applied transfer", status)
    _, page = history(c, payer, token, rows=50)
    c.ok([i["trmTxnId"] for i in page["data"]].count(lost) == 1, "the history shows it once, by trmTxnId")
    status, answer = pay(c, token, transfer_body(lost, 2, payee))
    c.ok(status == 200 and balance(c, payer, token) == 87.45, "sent again after the loss: answered, paid once",
         f"{status} {answer}")
    c.control("POST", "/limits", {"transferSeconds": 60})
    refusing, _ = c.wallet(refuseIncoming=57)
    waiting = str(int(first) + 6)
    pay(c, token, transfer_body(waiting, 3, payee))
    pay(c, token, transfer_body(str(int(first) + 7), 4, refusing))
    _, page = history(c, payer, token, rows=2)
    c.ok([i["status"] for i in page["data"]] == ["WAITING", "WAITING"], "transfers stay WAITING a while")
    c.control("POST", "/clock", {"seconds": 61})
    _, page = history(c, payer, token, rows=2)
    c.ok([(i["status"], i["errorCode"]) for i in page["data"]] == [("ERROR", 57), ("SUCCESS", 0)],
         "then SUCCESS, or ERROR with the refusal's errorCode", str(page["data"]))
    c.ok(balance(c, payer, token) == 84.45, "an ERROR transfer gives the money back")
    c.control("POST", "/limits", {"transferSeconds": 0})
    # listed late (listSeconds): accepted at once, in the history only later
    c.control("POST", "/limits", {"listSeconds": 60})
    late = str(int(first) + 8)
    status, _ = pay(c, token, transfer_body(late, 1, payee))
    _, page = history(c, payer, token, rows=50)
    c.ok(status == 200 and late not in [i["trmTxnId"] for i in page["data"]],
         "listSeconds: an accepted transfer is not in the history yet", status)
    c.control("POST", "/clock", {"seconds": 61})
    _, page = history(c, payer, token, rows=50)
    c.ok(late in [i["trmTxnId"] for i in page["data"]], "and is once the time has passed")
    c.control("POST", "/limits", {"listSeconds": 0})


def check_webhooks(c, receiver):
    number, token = c.wallet()
    hooks = "/payment-notifier/v1/hooks"
    register = lambda url, hook_type=1, txn_type=2: c.http(
        "PUT", f"{hooks}?hookType={hook_type}&param={quote(url, safe='')}&txnType={txn_type}", token)
    status, _ = register(receiver.url + "/ok/" + "x" * 100)
    c.ok(status == 500, "a URL over 100 characters: 500 (WALD error page)", status)
    status, _ = register(receiver.url + "/ok", hook_type=2)
    c.ok(status == 422, "hookType 2: 422", status)
    status, _ = c.http("GET", f"{hooks}/active", token)
    c.ok(status == 404, "no hook yet: 404", status)
    c.control("POST", "/limits", {"retrySeconds": [0.1, 0.2]})
    url = f"{receiver.url}/fail/2/{number}"
    status, hook = register(url)
    c.ok(status == 200 and hook["hookParameters"] == {"url": url} and hook["hookType"] == "WEB"
         and hook["txnType"] == "BOTH", "registered", f"{status} {hook}")
    status, _ = register(receiver.url + "/ok")
    c.ok(status == 422, "a second hook: 422", status)
    status, key = c.http("GET", f"{hooks}/{hook['hookId']}/key", token)
    c.ok(status == 201 and len(base64.b64decode(key["key"])) == 32, "the key: 201, base64", status)
    status, new = c.http("POST", f"{hooks}/{hook['hookId']}/newkey", token)
    c.ok(status == 201 and new["key"] != key["key"], "a new key: 201, another key", status)
    c.control("POST", f"/wallets/{number}/payments", {"amount": "1.50", "account": "+79160000000"})
    post = receiver.wait(lambda p: p["path"] == f"/fail/2/{number}", count=3)
    c.ok(len(post) == 3, "a failed delivery is retried on the schedule (shortened): 3 attempts", len(post))
    payment = post[-1]["body"]["payment"] if post else {}
    c.ok('"amount":1.5,' in post[-1]["raw"] and signed_string(payment) == f"643|1.5|IN|+79160000000|{payment['txnId']}"
         and post[-1]["body"]["hash"] == hmac_hex(new["key"], signed_string(payment)),
         "signed with the current key over the body's values (1.5)", post[-1]["raw"] if post else "")
    status, body = c.http("GET", f"{hooks}/test", token)
    test = receiver.wait(lambda p: p["path"] == f"/fail/2/{number}" and p["body"].get("test"))
    c.ok(status == 200 and body == {"response": "Webhook sent"} and test and "hash" not in test[0]["body"]
         and "payment" not in test[0]["body"], "the test notification: empty, no hash", f"{status} {body}")
    for n, (message, expected) in enumerate(VECTORS):
        account = message.split("|")[3]
        c.control("POST", f"/wallets/{number}/hook-key", {"key": DOC_KEY})
        c.control("POST", f"/wallets/{number}/payments",
                  {"amount": "1.00", "account": account, "txnId": 13353941550})
        got = receiver.wait(lambda p: p["body"].get("payment", {}).get("account") == account)
        c.ok(got and got[0]["body"]["hash"] == expected and signed_string(got[0]["body"]["payment"]) == message,
             f"the sandbox reproduces vector {n + 1} ({expected[:8]})", got and got[0]["raw"])
    deadline = time.monotonic() + 5
    while True:	# the sandbox marks a delivery once it has read the receiver's answer
        _, deliveries = c.control("GET", "/webhooks")
        mine = [d for d in deliveries if d["url"] == url and not d["body"].get("test")]
        if (mine and all(d["delivered"] for d in mine)) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    c.ok(len(mine) == 3 and all(d["delivered"] for d in mine) and len(mine[0]["attempts"]) == 3,
         "GET /sandbox/wallet/webhooks records the deliveries and their attempts", str(mine)[:300])
    status, body = c.http("DELETE", f"{hooks}/{hook['hookId']}", token)
    c.ok(status == 200 and body == {"response": "Hook deleted"}, "deleted", f"{status} {body}")
    status, _ = c.http("GET", f"{hooks}/active", token)
    c.ok(status == 404, "then no active hook: 404", status)


def check_expiry(c):
    number, token = c.wallet()
    c.control("POST", "/clock", {"seconds": 180 * 86400 - 60})
    c.ok(c.http("GET", f"/funding-sources/v2/persons/{number}/accounts", token)[0] == 200,
         "a token 180 days old less a minute works")
    c.control("POST", "/clock", {"seconds": 61})
    status, body = c.http("GET", f"/funding-sources/v2/persons/{number}/accounts", token)
    c.ok(status == 401 and body["errorCode"] == "auth.unauthorized", "after 180 days: 401", f"{status} {body}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the running sandbox, e.g. http://127.0.0.1:8080")
    args = parser.parse_args()
    c = Check(args.url)
    # the checks assume QIWI's limits: start from them, whatever a test set before
    c.control("POST", "/reset")
    receiver = Receiver()
    groups = [("signature vectors", lambda: check_vectors(c)), ("auth", lambda: check_auth(c)),
              ("paging", lambda: check_paging(c)), ("history rules", lambda: check_history_rules(c)),
              ("items written oddly", lambda: check_written_as(c)),
              ("rate limit", lambda: check_rate_limit(c)), ("transfers", lambda: check_transfers(c)),
              ("webhooks", lambda: check_webhooks(c, receiver)), ("token expiry", lambda: check_expiry(c))]
    failed = c.run_groups(groups)
    c.control("POST", "/reset")
    receiver.server.shutdown()
    return failed


if __name__ == "__main__":
    sys.exit(main())
