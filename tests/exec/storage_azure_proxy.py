#!/usr/bin/python3
"""A fault-injecting HTTP proxy in front of Azurite, for
tests/exec/storage_azure.sh: it forwards every request and, as told,
answers some with 503 ServerBusy or cuts a Get Blob body short, so that
kiln's retries and resumed reads run against the real emulator. It writes
one line per new client connection ("conn") and per request ("req METHOD
PATH RANGE STATUS", "busy ...", "cut ...") to LOG.

usage: storage_azure_proxy.py PORT UPSTREAM_PORT LOG [--busy N] [--cut BYTES]
  --busy N     answer requests 1, 1+N, 1+2N, ... with 503 ServerBusy
  --cut BYTES  the first whole-blob GET of each blob longer than BYTES
               gets its headers and BYTES of body, then the connection
               closes
"""
import http.client
import http.server
import sys
import threading

BUSY_BODY = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy'
             b'</Code><Message>The server is busy (injected by the test '
             b'proxy).</Message></Error>')
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


def main():
    port, upstream, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    opts = sys.argv[4:]
    busy = int(opts[opts.index("--busy") + 1]) if "--busy" in opts else 0
    cut = int(opts[opts.index("--cut") + 1]) if "--cut" in opts else 0
    lock = threading.Lock()
    state = {"n": 0, "cut": set()}
    log = open(log_path, "a", buffering=1)

    def note(line):
        with lock:
            log.write(line + "\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            note("conn")

        def log_message(self, *args):
            pass

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            rng = self.headers.get("x-ms-range") or "-"
            with lock:
                state["n"] += 1
                n = state["n"]
            if busy and n % busy == 1:
                note(f"busy {self.command} {self.path}")
                self.send_response(503)
                self.send_header("x-ms-error-code", "ServerBusy")
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(BUSY_BODY)))
                self.end_headers()
                self.wfile.write(BUSY_BODY)
                return
            up = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in HOP}
            up.request(self.command, self.path, body=body, headers=headers)
            resp = up.getresponse()
            data = resp.read()
            note(f"req {self.command} {self.path} {rng} {resp.status}")
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            key = self.path.split("?")[0]
            if (cut and self.command == "GET" and rng == "-" and
                    resp.status == 200 and len(data) > cut and
                    key not in state["cut"]):
                state["cut"].add(key)
                note(f"cut {self.path} after {cut} of {len(data)}")
                self.wfile.write(data[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)
            up.close()

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
