#!/usr/bin/python3
"""HTTP/1.1 proxy between kiln and s3rver for tests/exec/storage_s3.sh.

Forwards every request unchanged (Host header included) over one upstream
connection per client connection, and logs one line per client connection
and per request, so the test can count connections and see Range requests
and multipart calls:

    conn 3
    req 3 PUT /kiln-test/out/a.jpg?partNumber=2&uploadId=... range=-
    ifmatch 3 GET /kiln-test/in/big.jpg     (when it carries If-Match)

s3rver does not check V4 signatures, so the proxy does, as S3 would, with
its own implementation of the algorithm (Python's hashlib and hmac, nothing
shared with kiln): for a request signed with access key S3RVER it rebuilds
the canonical request from what arrived on the wire, checks the payload
hash against the body and the signature against the secret in
$KILN_TEST_S3_SECRET, and logs "sig N ok METHOD PATH" or answers 403
SignatureDoesNotMatch (or XAmzContentSHA256Mismatch) and logs "sig N bad".

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
import hashlib
import hmac
import http.client
import http.server
import itertools
import os
import socketserver
import sys
import threading
import urllib.parse

PORT_FILE, UPSTREAM, LOG, PLAN = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}
ERRORS = {301: "PermanentRedirect", 403: "AccessDenied", 412: "PreconditionFailed",
          500: "InternalError", 502: "BadGateway", 503: "SlowDown"}
SECRET = os.environ.get("KILN_TEST_S3_SECRET")

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


def sigv4_problem(method, target, headers, body):
    """"" when the request is correctly signed, None when it is not ours to
    check (unsigned, or signed with another key), else the S3 error code
    to answer with."""
    auth = headers.get("Authorization", "")
    scheme = "AWS4-HMAC-SHA256 "
    if not auth.startswith(scheme) or SECRET is None:
        return None
    try:
        fields = dict(kv.split("=", 1) for kv in auth[len(scheme):].split(", "))
        akid, date, region, service, term = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        given = fields["Signature"]
    except (KeyError, ValueError):
        return "AuthorizationHeaderMalformed"
    if akid != "S3RVER":
        return None  # s3rver itself refuses unknown keys
    if not {"host", "x-amz-date", "x-amz-content-sha256"} <= set(signed) or signed != sorted(signed):
        return "AuthorizationHeaderMalformed"
    payload = headers.get("x-amz-content-sha256", "")
    if payload != hashlib.sha256(body or b"").hexdigest():
        return "XAmzContentSHA256Mismatch"
    path, _, query = target.partition("?")
    enc = lambda v: urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~")
    pairs = sorted((enc(k), enc(v)) for k, _, v in
                   (p.partition("=") for p in query.split("&") if p))
    creq = "\n".join([
        method, path, "&".join(k + "=" + v for k, v in pairs),
        "".join(h + ":" + " ".join(headers.get(h, "").split()) + "\n" for h in signed),
        ";".join(signed), payload])
    sts = "\n".join(["AWS4-HMAC-SHA256", headers.get("x-amz-date", ""),
                     "/".join([date, region, service, term]),
                     hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + SECRET).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    want = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    return "" if hmac.compare_digest(want, given) else "SignatureDoesNotMatch"


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

    def error(self, status, code, message, extra=()):
        doc = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
               "<Message>%s</Message></Error>" % (code, message)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(doc)))
        self.end_headers()
        self.wfile.write(doc)

    def relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else None
        log("req %d %s %s range=%s" % (self.conn_id, self.command, self.path,
                                       self.headers.get("Range", "-")))
        if "If-Match" in self.headers:
            log("ifmatch %d %s %s" % (self.conn_id, self.command, self.path))
        problem = sigv4_problem(self.command, self.path, self.headers, body)
        if problem == "":
            log("sig %d ok %s %s" % (self.conn_id, self.command, self.path))
        elif problem is not None:
            log("sig %d bad %s %s %s" % (self.conn_id, problem, self.command, self.path))
            self.error(403, problem, "checked by the test proxy")
            return
        action, arg = take_rule(self.command, self.path)
        if action == "fail":
            # A wrong region: S3 names the right one in a header.
            extra = [("x-amz-bucket-region", "eu-west-1")] if arg == 301 else []
            self.error(arg, ERRORS.get(arg, "InternalError"), "injected by the test proxy", extra)
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
