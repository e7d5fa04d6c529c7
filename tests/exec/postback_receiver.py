#!/usr/bin/env python3
"""A postback receiver for tests/exec/postback.sh: a real HTTP server on
127.0.0.1 that logs every POST it gets (arrival time, path, signature
and delivery id headers, body) as one JSON line, and answers by path:
  /ok       200 always
  /fail2    500 to the first two posts, then 200
  /never    503 always
  /slow     sleeps 2 s, then 200
Usage: postback_receiver.py PORTFILE LOGFILE (it binds port 0 and writes
the port it got to PORTFILE)."""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, log_file = sys.argv[1], sys.argv[2]
lock = threading.Lock()
seen = {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode()
        now = time.time()
        path = self.path.split("?")[0]
        with lock:
            seen[path] = seen.get(path, 0) + 1
            k = seen[path]
            with open(log_file, "a") as f:
                f.write(json.dumps({"t": now, "path": path,
                                    "sig": self.headers.get("X-Kiln-Signature"),
                                    "delivery": self.headers.get("Kiln-Delivery-Id"),
                                    "type": self.headers.get("Content-Type"),
                                    "body": body}) + "\n")
        if path == "/fail2":
            code = 500 if k <= 2 else 200
        elif path == "/never":
            code = 503
        elif path == "/slow":
            time.sleep(2)
            code = 200
        else:
            code = 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
