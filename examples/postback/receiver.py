#!/usr/bin/env python3
"""A postback receiver that checks kiln's signature: the smallest thing a
client needs to trust a postback. Run it, then submit a request whose
"callback" is http://127.0.0.1:8000/kiln (see examples/postback/README.md).

    KILN_POSTBACK_SECRET=... python3 receiver.py [PORT]

It prints one line per postback: the process id, its status, and whether
the X-Kiln-Signature header matches the HMAC-SHA256 of the raw body. It
answers 200 to a good postback and 401 to a badly signed one (kiln then
retries it after 1, 3, 15 and 600 s). Delivery is at least once: a
postback it has already taken (the same Kiln-Delivery-Id) is answered 200
and dropped."""
import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("KILN_POSTBACK_SECRET", "").encode()
TAKEN = set()  # Kiln-Delivery-Id of each postback acted on: keep it durable


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        # Sign the bytes as received: re-encoding the JSON would change them.
        want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        got = self.headers.get("X-Kiln-Signature", "")
        good = hmac.compare_digest(want, got)
        status = json.loads(body)
        delivery = self.headers.get("Kiln-Delivery-Id", "")
        repeat = good and delivery in TAKEN
        if good:
            TAKEN.add(delivery)
        print("%s %s signature=%s%s" % (status["process_id"], status["status"],
                                        "ok" if good else "BAD",
                                        " (repeated: dropped)" if repeat else ""),
              flush=True)
        self.send_response(200 if good else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
