#!/usr/bin/env python3
"""Self-check of the sandbox's Bill Payments API (test/qiwi_sandbox.py)
against QIWI's documents and HTTP: a bill is final 45 days after its
creation, the Bearer scheme is case-insensitive, a request without Accept
is answered; /sandbox/writes counts the requests that may change something
by what they name.

It starts no sandbox: --url names a running one (http://127.0.0.1:PORT),
--secret its key.  Its bills have fresh ids, so it does not disturb other
users of the same sandbox.  Prints "ok N - ..." or "not ok N - ..." per
check and exits non-zero when any check fails.  Python standard library only.
"""

import argparse
import sys
import uuid
from datetime import datetime, timedelta

from payin_sandbox_check import MSK, Check

BILLS = "/partner/bill/v1/bills/"


def new_bill(c, secret, days, **kw):
    """PUT a bill of 1.00 RUB expiring in days; (status, answer)."""
    bill_id = "check-" + uuid.uuid4().hex[:12]
    expires = (datetime.now(MSK) + timedelta(days=days)).isoformat(timespec="seconds")
    status, answer, _ = c.http("PUT", BILLS + bill_id, {"amount": {"currency": "RUB", "value": "1.00"},
                                                        "expirationDateTime": expires}, key=secret, **kw)
    return bill_id, expires, status, answer


def check_lifetime(c, secret):
    _, expires, status, bill = new_bill(c, secret, 44)
    c.ok(status == 200 and datetime.fromisoformat(bill["expirationDateTime"]) == datetime.fromisoformat(expires),
         "a bill expiring in 44 days keeps its expirationDateTime", f"{status} {bill}")
    _, expires, status, bill = new_bill(c, secret, 60)
    lifetime = datetime.fromisoformat(bill["expirationDateTime"]) - datetime.fromisoformat(bill["creationDateTime"])
    c.ok(status == 200 and lifetime == timedelta(days=45),
         "a bill asked to expire in 60 days expires 45 days after its creation (seed 001: final after 45 days)",
         f"{status} {bill}")
    _, got, _ = c.http("GET", BILLS + bill["billId"], key=secret)
    c.ok(got["expirationDateTime"] == bill["expirationDateTime"] and got["status"]["value"] == "WAITING",
         "GET answers the same 45-day expiry, the bill WAITING meanwhile", str(got))


def check_headers(c, secret):
    bill_id, _, status, _ = new_bill(c, secret, 1, headers={"Accept": None})
    c.ok(status == 200, "a PUT without Accept is answered (RFC 9110: no Accept means any type)", str(status))
    for accept, expected in [(None, 200), ("application/*", 200), ("*/*", 200),
                             ("text/html", 406), ("application/json;q=0", 406)]:
        status, _, _ = c.http("GET", BILLS + bill_id, key=secret, headers={"Accept": accept})
        c.ok(status == expected, f"GET with Accept {accept or '(none)'}: HTTP {expected}", str(status))
    for scheme in ("bearer", "BEARER", "Bearer"):
        status, got, _ = c.http("GET", BILLS + bill_id, headers={"Authorization": f"{scheme} {secret}"})
        c.ok(status == 200 and got["billId"] == bill_id,
             f"the scheme written \"{scheme}\" is Bearer (RFC 9110: case-insensitive)", str(status))
    for header in (f"Basic {secret}", f"Bearer{secret}", "Bearer wrong-key", secret):
        status, _, _ = c.http("GET", BILLS + bill_id, headers={"Authorization": header})
        c.ok(status == 401, "another scheme, no space, another key or no scheme is HTTP 401", str(status))


def check_writes(c, secret):
    bill_id, _, _, _ = new_bill(c, secret, 1)
    c.http("PUT", BILLS + bill_id, {"amount": {"currency": "RUB", "value": "1.00"}}, key=secret)
    c.http("GET", BILLS + bill_id, key=secret)
    c.http("POST", BILLS + bill_id + "/reject", key=secret)
    _, writes, _ = c.http("GET", "/sandbox/writes")
    c.ok(writes.get("PUT " + BILLS + bill_id) == 2 and writes.get("POST " + BILLS + bill_id + "/reject") == 1
         and "GET " + BILLS + bill_id not in writes,
         "/sandbox/writes counts each request but a GET by its method and path", str(writes))
    client_id = str(uuid.uuid4().int)[:18]
    status, _, _ = c.http("POST", "/sinap/api/v2/terms/99/payments", {"id": client_id}, key="no-such-token")
    _, writes, _ = c.http("GET", "/sandbox/writes")
    c.ok(status == 401 and writes.get(f"POST /sinap/api/v2/terms/99/payments id={client_id}") == 1,
         "a Wallet transfer's is counted by its client id, even one refused", f"{status} {writes}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the running sandbox, e.g. http://127.0.0.1:8080")
    parser.add_argument("--secret", required=True, help="its Bill Payments key (--secret of the sandbox)")
    args = parser.parse_args()
    c = Check(args.url)
    for name, run in [("lifetime", check_lifetime), ("headers", check_headers), ("writes", check_writes)]:
        try:
            run(c, args.secret)
        except Exception as e:	# a broken answer fails its group, not the whole run
            c.ok(False, f"{name}: ran to the end", f"{type(e).__name__}: {e}")
    print(f"{c.n - c.failed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
