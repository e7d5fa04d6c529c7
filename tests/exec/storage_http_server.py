#!/usr/bin/python3
"""A small HTTP/1.1 origin for tests/exec/storage_http.sh.

Serves one image and the awkward answers a remote source can give:
redirects (relative, absolute, to refused addresses, in a loop), 403, 404,
500, a slow answer, bodies above a size limit, an empty body. Listens on
127.0.0.1, on a free port it writes to the file named by its first
argument; the second argument is the image to serve. With a third and
fourth (a certificate and its key, PEM) it speaks HTTPS instead. Routes are chosen by
the last path segment, so /ok/img.png and /private/img.png are the same
image (the test uses the first segment for the "allow" setting).
GET /stats answers {"requests": N, "connections": M}, to check that kiln
reuses connections.
"""
import http.server
import json
import os
import ssl
import sys
import threading
import time

IMAGE = b""
LOCK = threading.Lock()
STATS = {"requests": 0, "connections": 0}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connections can be reused

    def setup(self):
        super().setup()
        with LOCK:
            STATS["connections"] += 1

    def log_message(self, fmt, *args):
        pass

    def handle(self):
        # kiln cuts transfers it refuses (size, timeout): not an error here.
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def answer(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with LOCK:
            STATS["requests"] += 1
        path = self.path.split("?", 1)[0]
        name = path.rsplit("/", 1)[-1]
        port = self.server.server_address[1]
        try:
            self.route(name, port)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def route(self, name, port):
        if name == "img.png":
            self.answer(200, IMAGE, [("Content-Type", "image/png")])
        elif name == "redirect":  # relative: stays in the same folder
            self.answer(302, b"moved", [("Location", "img.png")])
        elif name == "redirect-abs":
            self.answer(301, b"", [("Location", "http://127.0.0.1:%d/ok/img.png" % port)])
        elif name == "redirect-twice":
            self.answer(307, b"", [("Location", "/ok/redirect")])
        elif name == "redirect-metadata":
            self.answer(302, b"", [("Location", "http://169.254.169.254/latest/meta-data/")])
        elif name == "redirect-lo2":
            self.answer(302, b"", [("Location", "http://127.0.0.2:%d/ok/img.png" % port)])
        elif name == "redirect-private":
            self.answer(302, b"", [("Location", "/private/img.png")])
        elif name == "redirect-ftp":
            self.answer(302, b"", [("Location", "ftp://127.0.0.1/img.png")])
        elif name == "loop":
            self.answer(302, b"", [("Location", "loop")])
        elif name == "missing":
            self.answer(404, b"not here")
        elif name == "forbidden":
            self.answer(403, b"no")
        elif name == "error":
            self.answer(500, b"oops")
        elif name == "empty":
            self.answer(200, b"", [("Content-Type", "image/png")])
        elif name == "slow-head":  # nothing for 20 s
            time.sleep(20)
            self.answer(200, IMAGE)
        elif name == "slow-body":  # headers and 100 bytes, then 20 s of silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE[:100])
            self.wfile.flush()
            time.sleep(20)
            self.close_connection = True
        elif name == "huge-declared":  # announces 200 MB, sends 1 KiB
            self.send_response(200)
            self.send_header("Content-Length", "200000000")
            self.end_headers()
            self.wfile.write(b"\0" * 1024)
            self.close_connection = True
        elif name == "huge-stream":  # no length: 4 MiB, then close
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(IMAGE[:8])
            for _ in range(64):
                self.wfile.write(b"\0" * 65536)
        elif name == "stats":
            with LOCK:
                body = json.dumps(STATS).encode()
            self.answer(200, body, [("Content-Type", "application/json")])
        else:
            self.answer(404, b"no route")


def main():
    global IMAGE
    with open(sys.argv[2], "rb") as f:
        IMAGE = f.read()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) > 4:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
