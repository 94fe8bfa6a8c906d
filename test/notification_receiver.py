#!/usr/bin/env python3
"""A merchant's notification endpoint, as small as it gets: every POST is
stored, signature header and body, into a table through psql; the database
decides whether to believe it (the qiwi_notification_verify trigger).

    notification_receiver.py --port 8081 --dbname 'host=/tmp port=5432 dbname=shop'

Payin notifications carry their signature in another header and do not name
their site: give QIWI one URL per site, ending with the siteId, and run

    notification_receiver.py --port 8082 --dbname ... --table qiwi_payin_notifications \
        --signature-header Signature --site-from-path
"""

import argparse
import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INSERT = "INSERT INTO {table} (signature, body) VALUES (:'signature', :'body');\n"
INSERT_WITH_SITE = ("INSERT INTO {table} (site_id, signature, body)"
                    " VALUES (:'site_id', :'signature', :'body');\n")


def make_handler(dbname, table, signature_header, site_from_path):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            signature = self.headers.get(signature_header, "")
            # psql quotes the values itself (:'name'), so nothing is spliced into SQL
            command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname,
                       "-v", f"signature={signature}", "-v", f"body={body.decode('utf-8', 'replace')}"]
            insert = INSERT
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

    return Handler


def main():
    parser = argparse.ArgumentParser(description="store QIWI notifications into PostgreSQL")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dbname", required=True, help="psql connection string")
    parser.add_argument("--table", default="qiwi_notifications")
    parser.add_argument("--signature-header", default="X-Api-Signature-SHA256")
    parser.add_argument("--site-from-path", action="store_true",
                        help="store the URL's last path segment as site_id")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port),
                                 make_handler(args.dbname, args.table, args.signature_header,
                                              args.site_from_path))
    server.daemon_threads = True
    print(f"receiving notifications on http://127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
