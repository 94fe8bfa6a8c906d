"""What the sandbox self-checks (test/*_sandbox_check.py) share: numbered
checks printed as TAP lines, and a receiver of the notifications a sandbox
posts.  Python standard library only."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Checks:
    """Numbered checks against the sandbox at url; failed counts the failures."""

    def __init__(self, url):
        self.url = url.rstrip("/")
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, detail=""):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {name}" + (f"  # {detail}" if detail else ""), flush=True)
        return cond


    def run_groups(self, groups):
        """Run (name, function) groups of checks: a broken answer fails its
        group, not the whole run; 1 if any check failed, else 0, after the
        summary line"""
        for name, run in groups:
            try:
                run()
            except Exception as e:
                self.ok(False, f"{name}: ran to the end", f"{type(e).__name__}: {e}")
        print(f"{self.n - self.failed} passed, {self.failed} failed")
        return 1 if self.failed else 0


class Receiver:
    """A notification endpoint on a free port of 127.0.0.1 that keeps every
    POST: a subclass says what it keeps of one (record) and how it answers
    (answer, given the path's parts and how many posts to that path came
    before)."""

    def __init__(self):
        self.posts = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    seen = sum(1 for p in receiver.posts if p["path"] == self.path)
                    post = {"path": self.path, "at": time.monotonic()}
                    post.update(receiver.record(self.headers, raw))
                    receiver.posts.append(post)
                status, content_type, payload = receiver.answer(self.path.split("/"), seen)
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, headers, raw):
        """What to keep of a post besides its path and time"""
        raise NotImplementedError

    def answer(self, parts, seen):
        """(HTTP status, content type or None, payload bytes) for a post"""
        raise NotImplementedError

    def posts_where(self, predicate, count=1, timeout=8.0):
        """The posts matching predicate, once there are count of them (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [p for p in self.posts if predicate(p)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)
