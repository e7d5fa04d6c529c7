#!/usr/bin/python3
"""HTTP/1.1 proxy between kiln and s3rver for tests/exec/storage_s3.sh.

Forwards every request unchanged (Host header included, so signatures stay
valid) over one upstream connection per client connection, and logs one
line per client connection and per request, so the test can count
connections and see Range requests and multipart calls:

    conn 3
    req 3 PUT /kiln-test/out/a.jpg?partNumber=2&uploadId=... range=-

Faults come from the plan file, re-read whenever it changes; each line is

    fail METHOD SUBSTRING COUNT STATUS   answer STATUS with an S3 error
                                         document (503 SlowDown, 500
                                         InternalError) instead of
                                         forwarding, COUNT times
    cut METHOD SUBSTRING COUNT BYTES     forward, but drop the connection
                                         after BYTES of the response body

where SUBSTRING must occur in the request's path and query.

Usage: storage_s3_proxy.py PORT-FILE UPSTREAM-PORT LOG PLAN
Writes the port it listens on (127.0.0.1, chosen by the kernel) to
PORT-FILE once it accepts connections.
"""
import http.client
import http.server
import itertools
import os
import socketserver
import sys
import threading

PORT_FILE, UPSTREAM, LOG, PLAN = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
ERRORS = {500: "InternalError", 502: "BadGateway", 503: "SlowDown"}

lock = threading.Lock()
ids = itertools.count(1)
plan = {"mtime": None, "rules": []}


def log(line):
    with lock, open(LOG, "a") as f:
        f.write(line + "\n")


def take_rule(method, target):
    """The first plan rule that matches and has uses left, used once."""
    with lock:
        try:
            mtime = os.stat(PLAN).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != plan["mtime"]:
            plan["mtime"] = mtime
            plan["rules"] = []
            if mtime is not None:
                with open(PLAN) as f:
                    for line in f:
                        w = line.split()
                        if len(w) == 5:
                            plan["rules"].append([w[0], w[1], w[2], int(w[3]), int(w[4])])
        for r in plan["rules"]:
            if r[1] == method and r[2] in target and r[3] > 0:
                r[3] -= 1
                return r[0], r[4]
    return None, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.conn_id = next(ids)
        self.upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        log("conn %d" % self.conn_id)

    def finish(self):
        try:
            super().finish()
        finally:
            self.upstream.close()

    def log_message(self, fmt, *args):
        pass

    def relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else None
        log("req %d %s %s range=%s" % (self.conn_id, self.command, self.path,
                                       self.headers.get("Range", "-")))
        action, arg = take_rule(self.command, self.path)
        if action == "fail":
            doc = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                   "<Message>injected by the test proxy</Message></Error>"
                   % ERRORS.get(arg, "InternalError")).encode()
            self.send_response(arg)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        self.upstream.request(self.command, self.path, body=body, headers=headers)
        resp = self.upstream.getresponse()
        data = resp.read()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if action == "cut":
            self.wfile.write(data[:arg])
            self.wfile.flush()
            log("cut %d after %d bytes" % (self.conn_id, arg))
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
srv.serve_forever()
