#!/usr/bin/env python3
"""A merchant's notification endpoint, as small as it gets: every POST is
stored, signature header and body, into a table through psql; the database
decides whether to believe it (the qiwi_notification_verify trigger).

    notification_receiver.py --port 8081 --dbname 'host=/tmp port=5432 dbname=shop'

Payin notifications carry their signature in another header and do not name
their site: give QIWI one URL per site, ending with the siteId, and run

    notification_receiver.py --port 8082 --dbname ... --table qiwi_payin_notifications \
        --signature-header Signature --site-from-path

Pull notifications are form-encoded and signed (X-Api-Signature) or sent
with Basic authorization; QIWI expects an XML answer.  One URL per project,
ending with its prv_id:

    notification_receiver.py --port 8083 --dbname ... --pull

Wallet webhooks are a JSON body whose hash is a field of its own; QIWI wants
a 200 within 1-2 s:

    notification_receiver.py --port 8084 --dbname ... --wallet
"""

import argparse
import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

INSERT = "INSERT INTO {table} (signature, body) VALUES (:'signature', :'body');\n"
INSERT_WITH_SITE = ("INSERT INTO {table} (site_id, signature, body)"
                    " VALUES (:'site_id', :'signature', :'body');\n")
# a Pull notification: stored, and answered 0 if the trigger verified it, else 151
INSERT_PULL = ("WITH n AS (INSERT INTO qiwi_pull_notifications (prv_id, credential, body)"
               " VALUES (:'site_id', :'signature', :'body') RETURNING verified)"
               " SELECT qiwi_pull_notification_answer(CASE WHEN verified THEN 0 ELSE 151 END) FROM n;\n")


# a Wallet webhook: its body stored; the trigger verifies the hash inside it
INSERT_WALLET = "INSERT INTO qiwi_wallet_webhooks (body) VALUES (:'body');\n"


def pull_request(headers, body, path):
    """(credential, JSON body, prv_id) of a Pull notification: the form's
    parameters ('+' a space, empty values kept) as a JSON object."""
    credential = headers.get("X-Api-Signature") or headers.get("Authorization", "")
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return credential, json.dumps(params, ensure_ascii=False), path.rstrip("/").rsplit("/", 1)[-1]


def make_handler(dbname, table, signature_header, site_from_path, pull=False, wallet=False):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if pull:
                return self.store_pull(body)
            signature = self.headers.get(signature_header, "")
            # psql quotes the values itself (:'name'), so nothing is spliced into SQL
            command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname,
                       "-v", f"signature={signature}", "-v", f"body={body.decode('utf-8', 'replace')}"]
            insert = INSERT_WALLET if wallet else INSERT
            if site_from_path:
                command += ["-v", "site_id=" + self.path.rstrip("/").rsplit("/", 1)[-1]]
                insert = INSERT_WITH_SITE
            stored = subprocess.run(command, input=insert.format(table=table), text=True,
                                    capture_output=True)
            if stored.returncode == 0:
                answer, status = {"error": "0"}, 200
            else:
                sys.stderr.write(stored.stderr)
                answer, status = {"error": "1"}, 500
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def store_pull(self, body):
            credential, params, prv_id = pull_request(self.headers, body, self.path)
            command = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dbname,
                       "-v", f"signature={credential}", "-v", f"body={params}",
                       "-v", f"site_id={prv_id}"]
            stored = subprocess.run(command, input=INSERT_PULL, text=True, capture_output=True)
            if stored.returncode == 0:
                payload, status = stored.stdout.strip().encode(), 200
            else:
                sys.stderr.write(stored.stderr)
                payload = b'<?xml version="1.0"?><result><result_code>300</result_code></result>'
                status = 200
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def main():
    parser = argparse.ArgumentParser(description="store QIWI notifications into PostgreSQL")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dbname", required=True, help="psql connection string")
    parser.add_argument("--table", default="qiwi_notifications")
    parser.add_argument("--signature-header", default="X-Api-Signature-SHA256")
    parser.add_argument("--site-from-path", action="store_true",
                        help="store the URL's last path segment as site_id")
    parser.add_argument("--pull", action="store_true",
                        help="Pull notifications: form bodies, the URL's last segment is the prv_id, XML answers")
    parser.add_argument("--wallet", action="store_true",
                        help="Wallet webhooks: the JSON body into qiwi_wallet_webhooks, 200 out")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port),
                                 make_handler(args.dbname, args.table, args.signature_header,
                                              args.site_from_path, args.pull, args.wallet))
    server.daemon_threads = True
    print(f"receiving notifications on http://127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
