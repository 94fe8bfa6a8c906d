"""The QIWI Wallet API (edge.qiwi.com) in the sandbox: test/qiwi_sandbox.py
serves it from the same port, under QIWI's paths, as strictly as QIWI's
documents describe it (seed 003; shared/qiwi-api.md §4, corrected by §8 and
§9; where they are silent, docs/sandbox.md "Wallet" says what was chosen).

API (Authorization: Bearer <the wallet's token>; a token carries scopes, the
four permissions of QIWI's token page: profile, balance, history, payments):
  GET  /person-profile/v1/profile/current        profile              (profile)
  GET  /funding-sources/v2/persons/{w}/accounts   balances             (balance)
  GET  /payment-history/v2/persons/{w}/payments   the history, paged   (history)
       rows (1-50, required), operation, sources[n], startDate+endDate (both or
       neither, at most 90 days apart, one zone), nextTxnId+nextTxnDate (both
       or neither; alone they continue without a window); newest first; items
       in the request's zone, the cursor in Moscow time, null on the last page;
       nothing found: 404 (or an empty page, per wallet)
  GET  /payment-history/v2/persons/{w}/payments/total  startDate+endDate  (history)
  GET  /payment-history/v2/transactions/{txnId}[?type=IN|OUT]          (history)
  POST /sinap/api/v2/terms/99/payments            a transfer          (payments)
       the client's id (at most 20 digits, increasing): a repeat with the same
       body answers the first answer and pays nothing; another body: QWPRC-408
  PUT  /payment-notifier/v1/hooks?hookType=1&param=URL&txnType=0|1|2  (payments)
  GET  /payment-notifier/v1/hooks/active | /hooks/test;  DELETE /hooks/{id}
  GET  /payment-notifier/v1/hooks/{id}/key (201);  POST /hooks/{id}/newkey (201)
  Errors: 400 format, 401 bad or expired token (180 days), 403 auth.forbidden
  (another wallet, or a scope missing), 404, 422 webhook, 423 request.blocked:
  more than 100 history requests a minute per wallet block every endpoint of
  that wallet for 5 minutes; transfers refused: 400 {"code":"QWPRC-n","message"}.

Control (no auth), under /sandbox/wallet/:
  POST wallets {"number", "token", "scopes": [...], "balance": "100.00",
                "emptyHistory": "404"|"page", "refuseIncoming": errorCode}
       add a wallet, or give it a new token (the old one is revoked);
  GET  wallets/{w}  its balance, items, hook, block and token expiry
  POST wallets/{w}/payments {"count": N, "days": D} N incoming payments spread
       over the last D days (not notified); or one {"amount", "type", "status",
       "account", "comment", "source", "txnId", "date"} (notified by webhook);
       "writtenAs": {member: value, ...} makes the history and the transaction
       write that one item with those members instead (an item a reader
       cannot understand: {"sum": "lots"}; tap/027)
  POST wallets/{w}/hook-key {"key": base64}  the active hook's key
  POST clock {"seconds": N} time moves on (blocks end, tokens expire,
       transfers settle); GET clock
  POST limits {"requests", "windowSeconds", "blockSeconds", "transferSeconds",
               "retrySeconds": [..], "minAmount", "maxAmount", "listSeconds"}; GET limits
       listSeconds: a transfer shows in the history only so long after it
       was made (QIWI may list one late; tap/025)
  GET  webhooks   every delivery: url, body, attempts, delivered
  GET  stats      requests by service, blocked answers
  POST reset      forget every wallet, hook and setting (so does /sandbox/reset)
  and POST /sandbox/faults with "api": "wallet": the faults of qiwi_sandbox.py
"""

import base64
import bisect
import collections
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation, ROUND_DOWN
from urllib.parse import parse_qsl, unquote, urlsplit

MSK = timezone(timedelta(hours=3))
PREFIXES = ("/person-profile/", "/funding-sources/", "/payment-history/", "/sinap/",
            "/payment-notifier/", "/sandbox/wallet/")
SCOPES = ("profile", "balance", "history", "payments")
TOKEN_LIFETIME = timedelta(days=180)	# seed 003: a token lives 180 days
MAX_SPAN = timedelta(days=90)	# WALD _payment_history: at most 90 days apart
DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2}|Z)")
OPERATIONS = ("ALL", "IN", "OUT", "QIWI_CARD")
SOURCES = ("QW_RUB", "QW_USD", "QW_EUR", "CARD", "MK")
TXN_TYPES = {"0": "IN", "1": "OUT", "2": "BOTH"}
SIGN_FIELDS = "sum.currency,sum.amount,type,account,txnId"
MAX_HOOK_URL = 100
DEFAULTS = {"requests": 100, "windowSeconds": 60, "blockSeconds": 300, "transferSeconds": 0,
            "retrySeconds": [600, 3600], "minAmount": "1.00", "maxAmount": "99999.00",
            "listSeconds": 0}
# the WALD error page's texts of the codes the sandbox answers
ERRORS = {4: "Некорректный формат телефона или счета", 5: "Данного номера не существует", 57: "Статус кошелька получателя не позволяет перевести ему деньги",
          220: "Недостаточно средств", 241: "Сумма платежа меньше минимальной",
          242: "Сумма платежа больше максимальной", 300: "Техническая ошибка",
          408: "У вас уже есть такой же платеж"}


class WalletError(Exception):
    """An answer other than 200: its status and body."""

    def __init__(self, status, body):
        super().__init__(str(body))
        self.status = status
        self.body = body


def edge_error(status, service, code, message, when=None):
    """QIWI's edge error body (the 423 sample of §8, with §9's dateTime)."""
    return WalletError(status, {"serviceName": service, "errorCode": code, "userMessage": message,
                                "dateTime": (when or datetime.now(MSK)).isoformat(timespec="milliseconds"),
                                "traceId": secrets.token_hex(8)})


def bad(service, message):
    return edge_error(400, service, "validation.error", message)


def refused(code):
    """A transfer refused: the short body of the payments service (§8)."""
    return WalletError(400, {"code": f"QWPRC-{code}", "message": ERRORS[code]})


def json_invalid(path, expected):
    """The payments service's answer to a field of the wrong JSON type (§8)."""
    return WalletError(400, {"message": f"Json validation error List((obj.{path},List(JsonValidationError("
                                        f"List(error.expected.{expected}),WrappedArray()))))"})


def number(amount):
    """An amount as QIWI's JSON writes it: 1, 1.5, 100.25."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def qiwi_date(ts, zone=MSK):
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def parse_date(text, name, service="payment-history"):
    """YYYY-MM-DDThh:mm:ssTZD, as the history's parameters are documented."""
    if not DATE.fullmatch(text or ""):
        raise bad(service, f"{name} must be YYYY-MM-DDThh:mm:ss+hh:mm")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise bad(service, f"{name} is not a date")


def signature(key_b64, payment):
    """HMAC-SHA256, keyed with the base64-decoded key, of the signFields' values
    joined by | as they appear in the body (amounts as its JSON numbers)."""
    values = []
    for field in payment["signFields"].split(","):
        value = payment
        for part in field.split("."):
            value = value[part]
        values.append(str(value))
    return hmac.new(base64.b64decode(key_b64), "|".join(values).encode(), hashlib.sha256).hexdigest()


# ---- items QIWI writes that a reader cannot understand (issue 23: one item's error, not its page's) ----

def written_as(item, answer):
    """An item's JSON as the history writes it, with the members its
    "writtenAs" control replaces (none for an ordinary item)."""
    answer.update(item.get("writtenAs", {}))
    return answer


class Wallet:
    def __init__(self, number, token, scopes, balance, issued):
        self.number = number
        self.token = token
        self.scopes = set(scopes)
        self.balance = balance
        self.issued = issued
        self.keys = []		# (-ts, -txnId) ascending: newest first
        self.items = []
        self.requests = collections.deque()	# clock times of history requests
        self.blocked_at = None
        self.client_ids = {}	# transfer id -> (body, answer)
        self.last_client_id = 0
        self.hook = None
        self.empty_history = "404"
        self.refuse_incoming = None

    def add(self, item):
        key = (-item["ts"], -item["txnId"])
        at = bisect.bisect_left(self.keys, key)
        self.keys.insert(at, key)
        self.items.insert(at, item)


class WalletSandbox:
    """The wallets, their histories and hooks, the rate limit and the clock."""

    def __init__(self, accepts_json, bearer_token):
        self.accepts_json = accepts_json
        self.bearer_token = bearer_token
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.wallets = {}
        self.offset = 0.0
        self.settings = json.loads(json.dumps(DEFAULTS))
        self.next_txn = 20000000000
        self.deliveries = []
        self.pending = []	# transfers still WAITING: (due ts, wallet, item)
        self.stats = collections.Counter()
        self.generation = getattr(self, "generation", 0) + 1

    @staticmethod
    def owns(path):
        return path.startswith(PREFIXES)

    def clock(self):
        return time.time() + self.offset

    def txn_id(self):
        self.next_txn += 1
        return self.next_txn

    # ---- the plumbing: one request, (status, JSON) ----

    def handle(self, method, target, headers, body):
        split = urlsplit(target)
        path = split.path
        query = parse_qsl(split.query, keep_blank_values=True)
        try:
            args = json.loads(body) if body else {}
        except ValueError:
            args = None
        with self.lock:
            self.settle()
            if path.startswith("/sandbox/wallet/"):
                if not isinstance(args, dict):
                    return 400, {"error": "bad JSON"}
                return self.control(method, [unquote(p) for p in path.split("/")[3:]], args)
            try:
                return self.api(method, path, query, headers, body)
            except WalletError as e:
                return e.status, e.body

    def api(self, method, path, query, headers, body):
        parts = [unquote(p) for p in path.split("/")[1:]]
        service = parts[0]
        self.stats[service] += 1
        wallet = self.authorize(headers.get("Authorization"), service)
        if not self.accepts_json(headers.get("Accept")):
            # seed 003: "any other value leads to a data format error"
            raise bad(service, "Accept must allow application/json")
        self.rate_limit(wallet, service)
        if service == "person-profile" and parts[1:] == ["v1", "profile", "current"] and method == "GET":
            self.need(wallet, "profile", service)
            return 200, self.profile(wallet, self.query(query, service))
        if service == "funding-sources" and parts[1:3] == ["v2", "persons"] and parts[4:] == ["accounts"] \
                and method == "GET":
            self.own(wallet, parts[3], service)
            self.need(wallet, "balance", service)
            return 200, self.balances(wallet)
        if service == "payment-history" and method == "GET":
            if parts[1:3] == ["v2", "persons"] and parts[4:] in (["payments"], ["payments", "total"]):
                self.own(wallet, parts[3], service)
                self.need(wallet, "history", service)
                if parts[5:]:
                    return 200, self.totals(wallet, self.query(query, service))
                return 200, self.history(wallet, self.query(query, service))
            if parts[1:3] == ["v2", "transactions"] and len(parts) == 4:
                self.need(wallet, "history", service)
                return 200, self.transaction(wallet, parts[3], dict(query).get("type"))
        if service == "sinap" and parts[1:4] == ["api", "v2", "terms"] and parts[5:] == ["payments"] \
                and method == "POST":
            self.need(wallet, "payments", service)
            if parts[4] != "99":
                raise edge_error(404, service, "not.found", "the sandbox pays provider 99 only")
            ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise bad(service, "Content-Type must be application/json")
            return 200, self.transfer(wallet, body)
        if service == "payment-notifier" and parts[1:3] == ["v1", "hooks"]:
            self.need(wallet, "payments", service)
            return self.hooks(wallet, method, parts[3:], self.query(query, service))
        raise edge_error(404, service, "not.found", "Not found")

    def authorize(self, header, service):
        """The wallet of a valid, unexpired token; else 401."""
        token = self.bearer_token(header)
        for wallet in self.wallets.values():
            if token is not None and hmac.compare_digest(wallet.token.encode(), token.encode()):
                if self.clock() < wallet.issued + TOKEN_LIFETIME.total_seconds():
                    return wallet
                break
        raise edge_error(401, service, "auth.unauthorized", "Wrong or expired token")

    def rate_limit(self, wallet, service):
        """100 history requests a minute per wallet; beyond, every endpoint is
        blocked for 5 minutes (§8, §9); the 423 carries when the block began."""
        now = self.clock()
        s = self.settings
        if wallet.blocked_at is not None and now < wallet.blocked_at + s["blockSeconds"]:
            self.stats["blocked"] += 1
            raise self.blocked(wallet)
        wallet.blocked_at = None
        if service != "payment-history":
            return
        while wallet.requests and wallet.requests[0] <= now - s["windowSeconds"]:
            wallet.requests.popleft()
        if len(wallet.requests) >= s["requests"]:
            wallet.blocked_at = now
            wallet.requests.clear()
            self.stats["blocked"] += 1
            raise self.blocked(wallet)
        wallet.requests.append(now)

    @staticmethod
    def blocked(wallet):
        return edge_error(423, "payment-history", "request.blocked", "request blocked, try again later",
                          datetime.fromtimestamp(wallet.blocked_at, MSK))

    @staticmethod
    def own(wallet, number, service):
        if number != wallet.number:
            raise edge_error(403, service, "auth.forbidden", "Access denied")

    @staticmethod
    def need(wallet, scope, service):
        if scope not in wallet.scopes:
            raise edge_error(403, service, "auth.forbidden", f"Access denied: the token has no {scope} scope")

    @staticmethod
    def query(pairs, service):
        """The query as a dict; a parameter given twice is a format error."""
        args = {}
        for name, value in pairs:
            if name in args:
                raise bad(service, f"{name} is given twice")
            args[name] = value
        return args

    # ---- profile and balances ----

    def profile(self, wallet, args):
        answer = {}
        for part, flag in (("authInfo", "authInfoEnabled"), ("contractInfo", "contractInfoEnabled"),
                           ("userInfo", "userInfoEnabled")):
            if args.get(flag, "true") not in ("true", "false"):
                raise bad("person-profile", f"{flag} must be true or false")
            if args.get(flag, "true") == "false":
                continue
            created = qiwi_date(wallet.issued)
            answer[part] = {
                "authInfo": {"personId": int(wallet.number), "registrationDate": created,
                             "boundEmail": None, "ip": "127.0.0.1", "lastLoginDate": created},
                "contractInfo": {"contractId": int(wallet.number), "blocked": False, "creationDate": created,
                                 "features": [], "identificationInfo": [
                                     {"bankAlias": "QIWI", "identificationLevel": "VERIFIED",
                                      "passportExpired": False}]},
                "userInfo": {"defaultPayCurrency": 643, "defaultPaySource": 7, "email": None,
                             "firstTxnId": wallet.items[-1]["txnId"] if wallet.items else None,
                             "language": "ru", "operator": "Beeline", "phoneHash": "sandbox",
                             "promoEnabled": None}}[part]
        return answer

    @staticmethod
    def balances(wallet):
        return {"accounts": [
            {"alias": "qw_wallet_rub", "fsAlias": "qb_wallet", "bankAlias": "QIWI", "title": "WALLET",
             "type": {"id": "WALLET", "title": "QIWI Wallet"}, "hasBalance": True,
             "balance": {"amount": number(wallet.balance), "currency": 643}, "currency": 643,
             "defaultAccount": True},
            {"alias": "mc_beeline_rub", "fsAlias": "qb_mc_beeline", "bankAlias": "QIWI", "title": "MC",
             "type": {"id": "MC", "title": "Счет мобильного кошелька"}, "hasBalance": False,
             "balance": None, "currency": 643, "defaultAccount": False}]}

    # ---- the history ----

    def filters(self, args):
        """operation and sources[n], as documented."""
        operation = args.get("operation", "ALL")
        if operation not in OPERATIONS:
            raise bad("payment-history", "operation must be ALL, IN, OUT or QIWI_CARD")
        sources = []
        for name in args:
            if name == "sources" or (name.startswith("sources") and not re.fullmatch(r"sources\[\d+\]", name)):
                raise bad("payment-history", "sources are sent as sources[0], sources[1], ...")
        while f"sources[{len(sources)}]" in args:
            sources.append(args[f"sources[{len(sources)}]"])
        if sum(1 for name in args if name.startswith("sources[")) != len(sources):
            raise bad("payment-history", "sources[n] are numbered from 0 without gaps")
        if any(s not in SOURCES for s in sources):
            raise bad("payment-history", "sources[n] is one of " + ", ".join(SOURCES))
        return lambda item: (operation == "ALL" or item["type"] == operation) and \
            (not sources or item["source"] in sources)

    def window(self, args, required=False):
        """startDate and endDate: (start ts, end ts, zone) or None."""
        start, end = args.get("startDate"), args.get("endDate")
        if (start is None) != (end is None) or (required and start is None):
            raise bad("payment-history", "startDate and endDate go together")
        if start is None:
            return None
        first, last = parse_date(start, "startDate"), parse_date(end, "endDate")
        if first.utcoffset() != last.utcoffset():
            raise bad("payment-history", "startDate and endDate must be in the same time zone")
        if first > last or last - first > MAX_SPAN:
            raise bad("payment-history", "endDate must be after startDate, at most 90 days")
        return first.timestamp(), last.timestamp(), first.tzinfo

    def history(self, wallet, args):
        rows = args.get("rows")
        if rows is None or not re.fullmatch(r"\d{1,2}", rows) or not 1 <= int(rows) <= 50:
            raise bad("payment-history", "rows is required, 1 to 50")
        rows = int(rows)
        wanted = self.filters(args)
        window = self.window(args)
        txn, date = args.get("nextTxnId"), args.get("nextTxnDate")
        if (txn is None) != (date is None):
            raise bad("payment-history", "nextTxnId and nextTxnDate go together")
        if txn is not None and not re.fullmatch(r"\d{1,19}", txn):
            raise bad("payment-history", "nextTxnId is a number")
        zone = window[2] if window else MSK
        if window is None and txn is None:
            # the documented defaults: the last day, Moscow time
            window = (self.clock() - 86400, self.clock(), MSK)
        at = 0
        if window:
            at = bisect.bisect_left(wallet.keys, (-int(window[1]), float("-inf")))
        if txn is not None:
            cursor = (-int(parse_date(date, "nextTxnDate").timestamp()), -int(txn))
            at = max(at, bisect.bisect_left(wallet.keys, cursor))
        page, following = [], None
        for item in wallet.items[at:]:
            if window and item["ts"] < window[0]:
                break
            if not wanted(item) or item.get("listedAt", 0) > self.clock():
                continue
            if len(page) == rows:
                following = item
                break
            page.append(item)
        if not page and wallet.empty_history == "404":
            raise edge_error(404, "payment-history", "not.found", "no payments with such data")
        return {"data": [self.item_json(i, zone) for i in page],
                "nextTxnId": following["txnId"] if following else None,
                "nextTxnDate": qiwi_date(following["ts"]) if following else None}

    def totals(self, wallet, args):
        wanted = self.filters(args)
        start, end, _ = self.window(args, required=True)
        sums = {"IN": collections.Counter(), "OUT": collections.Counter()}
        for item in wallet.items:
            if start <= item["ts"] <= end and item["status"] == "SUCCESS" and wanted(item):
                sums["IN" if item["type"] == "IN" else "OUT"][643] += item["amount"]
        return {"incomingTotal": [{"amount": number(v), "currency": c} for c, v in sums["IN"].items()],
                "outgoingTotal": [{"amount": number(v), "currency": c} for c, v in sums["OUT"].items()]}

    def transaction(self, wallet, txn_id, kind):
        for item in wallet.items:
            if str(item["txnId"]) == txn_id and kind in (None, item["type"]):
                answer = self.item_json(item, MSK)
                answer.update({"paymentExtras": [], "serviceExtras": {}, "view": {}, "features": {
                    "chequeReady": item["status"] == "SUCCESS", "bankDocumentAvailable": False,
                    "bankDocumentReady": False, "repeatPaymentEnabled": False,
                    "favoritePaymentEnabled": False, "regularPaymentEnabled": False}})
                return answer
        raise edge_error(404, "payment-history", "not.found", "Transaction not found")

    @staticmethod
    def item_json(item, zone):
        money = {"amount": number(item["amount"]), "currency": 643}
        provider = {"id": item["provider"], "shortName": "QIWI Wallet", "longName": "QIWI Wallet",
                    "logoUrl": None, "description": None, "keys": None, "siteUrl": None, "extras": []}
        return written_as(item, {"txnId": item["txnId"], "personId": item["personId"], "date": qiwi_date(item["ts"], zone),
                "errorCode": item["errorCode"], "error": ERRORS.get(item["errorCode"]) if item["errorCode"] else None,
                "status": item["status"], "type": item["type"],
                "statusText": {"SUCCESS": "Успешно", "WAITING": "Запрос обрабатывается",
                               "ERROR": "Ошибка"}[item["status"]],
                "trmTxnId": item["trmTxnId"], "account": item["account"], "sum": money,
                "commission": {"amount": 0, "currency": 643}, "total": money,
                "provider": provider, "source": dict(provider, id=7, shortName=item["source"]),
                "comment": item["comment"], "currencyRate": 1})

    def new_item(self, wallet, **fields):
        item = {"txnId": self.txn_id(), "personId": int(wallet.number), "ts": int(self.clock()),
                "errorCode": 0, "status": "SUCCESS", "type": "IN", "trmTxnId": str(secrets.randbelow(10**12)),
                "account": "+79000000000", "provider": 99, "source": "QW_RUB", "comment": ""}
        item.update(fields)
        wallet.add(item)
        return item

    # ---- transfers ----

    def transfer(self, wallet, raw):
        """Provider 99: money moves at once; the history says WAITING until
        transferSeconds pass, then SUCCESS (or ERROR, refunded)."""
        try:
            body = json.loads(raw.decode("utf-8"), parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise WalletError(400, {"message": "Invalid Json"})
        if not isinstance(body, dict):
            raise json_invalid("", "jsobject")
        client_id = body.get("id")
        if not isinstance(client_id, str):
            raise json_invalid("id", "jsstring")
        if not re.fullmatch(r"[0-9]{1,20}", client_id):
            raise refused(300)
        if client_id in wallet.client_ids:
            first_body, answer = wallet.client_ids[client_id]
            if first_body != body:
                raise refused(408)
            return answer	# the same payment again: nothing more is paid
        amount, account = self.transfer_fields(body)
        if int(client_id) <= wallet.last_client_id:
            raise refused(300)	# ids increase (WALD Payment.id)
        if account == wallet.number:
            raise refused(300)
        if amount < Decimal(self.settings["minAmount"]):
            raise refused(241)
        if amount > Decimal(self.settings["maxAmount"]):
            raise refused(242)
        if amount > wallet.balance:
            raise refused(220)
        wallet.last_client_id = int(client_id)
        wallet.balance -= amount
        item = self.new_item(wallet, type="OUT", status="WAITING", trmTxnId=client_id,
                             account="+" + account, amount=amount, comment=body.get("comment") or "",
                             listedAt=self.clock() + self.settings["listSeconds"])
        self.notify(wallet, item)
        self.pending.append((self.clock() + self.settings["transferSeconds"], wallet, item))
        answer = {"id": client_id, "terms": "99", "fields": {"account": body["fields"]["account"]},
                  "sum": {"amount": number(amount), "currency": "643"},
                  "transaction": {"id": str(item["txnId"]), "state": {"code": "Accepted"}},
                  "source": "account_643"}
        if "comment" in body:
            answer["comment"] = body["comment"]
        wallet.client_ids[client_id] = (body, answer)
        self.settle()
        return answer

    @staticmethod
    def transfer_fields(body):
        """sum, paymentMethod, fields.account and comment, typed as documented."""
        total = body.get("sum")
        if not isinstance(total, dict):
            raise json_invalid("sum", "jsobject")
        amount = total.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, (int, Decimal)):
            raise json_invalid("sum.amount", "jsnumber")
        if total.get("currency") != "643":
            raise json_invalid("sum.currency", "jsstring") if not isinstance(total.get("currency"), str) \
                else refused(300)
        method = body.get("paymentMethod")
        if not isinstance(method, dict) or method.get("type") != "Account" or method.get("accountId") != "643":
            raise json_invalid("paymentMethod", "jsobject")
        fields = body.get("fields")
        if not isinstance(fields, dict) or not isinstance(fields.get("account"), str):
            raise json_invalid("fields.account", "jsstring")
        if "comment" in body and not isinstance(body["comment"], str):
            raise json_invalid("comment", "jsstring")
        account = fields["account"].lstrip("+")
        if not re.fullmatch(r"[0-9]{10,15}", account):
            raise refused(4)
        # QIWI rounds an amount down to two decimals (WALD Payment.sum.amount)
        return Decimal(amount).quantize(Decimal("0.01"), rounding=ROUND_DOWN), account

    def settle(self):
        """Transfers whose time has come end SUCCESS, or ERROR when the
        recipient refuses (the money goes back)."""
        now = self.clock()
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        for _, wallet, item in due:
            recipient = self.wallets.get(item["account"].lstrip("+"))
            if recipient is not None and recipient.refuse_incoming:
                item.update(status="ERROR", errorCode=recipient.refuse_incoming)
                wallet.balance += item["amount"]
            else:
                item["status"] = "SUCCESS"
                if recipient is not None:
                    recipient.balance += item["amount"]
                    self.notify(recipient, self.new_item(recipient, amount=item["amount"],
                                                         account="+" + wallet.number, comment=item["comment"]))
            self.notify(wallet, item)

    # ---- webhooks ----

    def hooks(self, wallet, method, rest, args):
        service = "payment-notifier"
        hook = wallet.hook
        if rest == [] and method == "PUT":
            url = args.get("param")
            if args.get("hookType") is None or url is None or args.get("txnType") is None:
                raise bad(service, "hookType, param and txnType are required")
            if len(url) > MAX_HOOK_URL:
                # WALD error page: a webhook URL too long is a 500
                raise edge_error(500, service, "internal.error", "webhook URL is longer than 100 characters")
            split = urlsplit(url)
            if args["hookType"] != "1" or args["txnType"] not in TXN_TYPES or hook is not None \
                    or split.scheme not in ("http", "https") or not split.hostname:
                raise edge_error(422, service, "hook.invalid",
                                 "wrong hook type, transactions type or URL, or a hook already exists")
            wallet.hook = {"hookId": str(uuid.uuid4()), "url": url, "txnType": TXN_TYPES[args["txnType"]],
                           "key": base64.b64encode(secrets.token_bytes(32)).decode()}
            return 200, self.hook_json(wallet.hook)
        if rest == ["active"] and method == "GET" and hook:
            return 200, self.hook_json(hook)
        if rest == ["test"] and method == "GET" and hook:
            # "an empty test notification" (WALD): no payment, no hash
            self.deliver(hook, {"hookId": hook["hookId"], "messageId": str(uuid.uuid4()),
                                "test": True, "version": "1.0.0"})
            return 200, {"response": "Webhook sent"}
        if hook and rest[:1] == [hook["hookId"]]:
            if rest[1:] == [] and method == "DELETE":
                wallet.hook = None
                return 200, {"response": "Hook deleted"}
            if rest[1:] == ["key"] and method == "GET":
                return 201, {"key": hook["key"]}
            if rest[1:] == ["newkey"] and method == "POST":
                hook["key"] = base64.b64encode(secrets.token_bytes(32)).decode()
                return 201, {"key": hook["key"]}
        raise edge_error(404, service, "not.found", "Active webhook not found")

    @staticmethod
    def hook_json(hook):
        return {"hookId": hook["hookId"], "hookParameters": {"url": hook["url"]},
                "hookType": "WEB", "txnType": hook["txnType"]}

    def notify(self, wallet, item):
        """A payment's notification, signed as WALD _webhook says."""
        hook = wallet.hook
        if hook is None or hook["txnType"] not in ("BOTH", item["type"]):
            return
        money = {"amount": number(item["amount"]), "currency": 643}
        payment = {"txnId": str(item["txnId"]), "date": qiwi_date(item["ts"]), "type": item["type"],
                   "status": item["status"], "errorCode": str(item["errorCode"]), "personId": int(wallet.number),
                   "account": item["account"], "comment": item["comment"], "provider": item["provider"],
                   "sum": money, "commission": {"amount": 0, "currency": 643}, "total": money,
                   "signFields": SIGN_FIELDS}
        self.deliver(hook, {"messageId": str(uuid.uuid4()), "hookId": hook["hookId"], "payment": payment,
                            "hash": signature(hook["key"], payment), "version": "1.0.0", "test": False})

    def deliver(self, hook, body):
        record = {"url": hook["url"], "body": body, "attempts": [], "delivered": False}
        self.deliveries.append(record)
        threading.Thread(target=self.post, daemon=True,
                         args=(record, list(self.settings["retrySeconds"]), self.generation)).start()

    def post(self, record, retries, generation):
        """At once, then after each retry delay (QIWI: 10 minutes, then an hour)."""
        payload = json.dumps(record["body"], ensure_ascii=False, separators=(",", ":")).encode()
        for wait in [0] + retries:
            time.sleep(wait)
            if generation != self.generation:
                return
            request = urllib.request.Request(record["url"], data=payload, method="POST", headers={
                "Content-Type": "application/json", "Accept": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    status = answer.status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError as e:
                status = str(e)
            with self.lock:
                record["attempts"].append({"at": qiwi_date(self.clock()), "status": status})
                if status == 200:
                    record["delivered"] = True
                    return

    # ---- control ----

    def control(self, method, parts, args):
        try:
            if parts == ["reset"] and method == "POST":
                self.reset()
                return 200, {"ok": True}
            if parts == ["wallets"] and method == "POST":
                return 200, self.summary(self.add_wallet(args))
            if len(parts) >= 2 and parts[0] == "wallets":
                wallet = self.wallets.get(parts[1])
                if wallet is None:
                    return 404, {"error": "no such wallet"}
                if parts[2:] == [] and method == "GET":
                    return 200, self.summary(wallet)
                if parts[2:] == ["payments"] and method == "POST":
                    return 200, self.add_payments(wallet, args)
                if parts[2:] == ["hook-key"] and method == "POST" and wallet.hook:
                    base64.b64decode(args["key"], validate=True)
                    wallet.hook["key"] = args["key"]
                    return 200, self.hook_json(wallet.hook)
            if parts == ["clock"] and method in ("GET", "POST"):
                self.offset += float(args.get("seconds", 0)) if method == "POST" else 0
                self.settle()
                return 200, {"now": qiwi_date(self.clock()), "movedSeconds": self.offset}
            if parts == ["limits"] and method in ("GET", "POST"):
                for name, value in args.items():
                    if name not in DEFAULTS:
                        return 400, {"error": f"unknown setting {name}"}
                    self.settings[name] = value
                return 200, self.settings
            if parts == ["webhooks"] and method == "GET":
                return 200, self.deliveries
            if parts == ["stats"] and method == "GET":
                return 200, dict(self.stats)
        except (KeyError, TypeError, ValueError, InvalidOperation) as e:
            return 400, {"error": f"bad arguments: {e}"}
        return 404, {"error": "unknown control endpoint"}

    def add_wallet(self, args):
        number = str(args["number"]).lstrip("+")
        if not re.fullmatch(r"[0-9]{10,15}", number) or not args.get("token"):
            raise ValueError("number is 10 to 15 digits; token is required")
        scopes = args.get("scopes", list(SCOPES))
        if any(s not in SCOPES for s in scopes):
            raise ValueError("scopes are " + ", ".join(SCOPES))
        old = self.wallets.get(number)
        wallet = Wallet(number, args["token"], scopes, Decimal(str(args.get("balance", "0"))), self.clock())
        if old is not None:	# a new token: the wallet keeps its money and history
            wallet.balance = Decimal(str(args.get("balance", old.balance)))
            for name in ("keys", "items", "client_ids", "last_client_id", "hook", "requests", "blocked_at"):
                setattr(wallet, name, getattr(old, name))
        wallet.empty_history = args.get("emptyHistory", "404")
        wallet.refuse_incoming = args.get("refuseIncoming")
        if wallet.empty_history not in ("404", "page") or wallet.refuse_incoming not in (None, *ERRORS):
            raise ValueError("emptyHistory is 404 or page; refuseIncoming one of " + str(list(ERRORS)))
        self.wallets[number] = wallet
        return wallet

    def add_payments(self, wallet, args):
        if "count" in args:
            count, days = int(args["count"]), float(args.get("days", 1))
            end = int(self.clock())
            step = days * 86400 / max(count, 1)
            first = self.next_txn + 1
            for n in range(count):	# oldest first, so txnIds grow with dates
                item = {"txnId": self.txn_id(), "personId": int(wallet.number),
                        "ts": int(end - (count - 1 - n) * step), "errorCode": 0, "status": "SUCCESS",
                        "type": "IN", "trmTxnId": str(n), "account": "+79000000000", "provider": 99,
                        "source": "QW_RUB", "comment": "", "amount": Decimal(str(args.get("amount", "1.00")))}
                wallet.items.append(item)
                wallet.balance += item["amount"]
            pairs = sorted(zip(((-i["ts"], -i["txnId"]) for i in wallet.items), wallet.items),
                           key=lambda p: p[0])
            wallet.keys, wallet.items = [p[0] for p in pairs], [p[1] for p in pairs]
            return {"added": count, "firstTxnId": first, "lastTxnId": self.next_txn}
        fields = {"amount": Decimal(str(args.get("amount", "1.00")))}
        for name in ("type", "status", "account", "comment", "source", "writtenAs"):
            if name in args:
                fields[name] = args[name]
        if not isinstance(fields.get("writtenAs", {}), dict):
            raise ValueError("writtenAs is an object of the item's members")
        if "txnId" in args:
            fields["txnId"] = int(args["txnId"])
        if "date" in args:
            fields["ts"] = int(parse_date(args["date"], "date", "sandbox").timestamp())
        if fields.get("type", "IN") == "IN" and fields.get("status", "SUCCESS") == "SUCCESS":
            wallet.balance += fields["amount"]
        item = self.new_item(wallet, **fields)
        self.notify(wallet, item)
        return self.item_json(item, MSK)

    def summary(self, wallet):
        return {"number": wallet.number, "scopes": sorted(wallet.scopes), "balance": f"{wallet.balance:.2f}",
                "items": len(wallet.items), "hook": self.hook_json(wallet.hook) if wallet.hook else None,
                "blockedAt": qiwi_date(wallet.blocked_at) if wallet.blocked_at else None,
                "expires": qiwi_date(wallet.issued + TOKEN_LIFETIME.total_seconds())}
