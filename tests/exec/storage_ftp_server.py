#!/usr/bin/python3
"""A real FTP server for tests/exec/storage_ftp.sh: pyftpdlib (Debian
python3-pyftpdlib) with one user and a home directory, listening on
127.0.0.1 (a free port chosen by the kernel, written to --port-file once
the server listens), passive data ports on 127.0.0.1. With --cert the
server speaks FTPS and requires TLS on both channels: explicit (AUTH TLS)
by default, implicit (TLS from the first byte) with --implicit. With
--refuse-replace, RNTO onto an existing file fails with 550, as on IIS
and some other servers (pyftpdlib itself replaces the file). With
--silent it is no FTP server at all: it accepts connections and never
answers, for timeout tests.

Run it with /usr/bin/python3: Debian's module is not in a pyenv Python.
"""
import argparse
import logging
import os
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def write_port(port_file, port):
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, port_file)


def silent(port_file):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    write_port(port_file, s.getsockname()[1])
    held = []
    try:
        while True:
            c, _ = s.accept()
            held.append(c)  # kept open, never written to
    except KeyboardInterrupt:
        pass
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert", help="PEM with certificate and key: FTPS")
    ap.add_argument("--implicit", action="store_true")
    ap.add_argument("--refuse-replace", action="store_true")
    ap.add_argument("--silent", action="store_true")
    ap.add_argument("--port", type=int, default=0,
                    help="port to listen on (default: one the kernel picks)")
    ap.add_argument("--read-only", action="append", default=[],
                    help="a directory under the home where the user may "
                    "only list and read")
    a = ap.parse_args()
    if a.silent:
        return silent(a.port_file)

    auth = DummyAuthorizer()
    auth.add_user(a.user, a.password, a.home, perm="elradfmwMT")
    for d in a.read_only:
        path = os.path.join(a.home, d)
        os.makedirs(path, exist_ok=True)
        auth.override_perm(a.user, path, "elr", recursive=True)

    handler = FTPHandler
    if a.cert:
        from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

        class DataTLS(TLS_DTPHandler):
            # pyftpdlib 1.5.7 (Debian 12) closes a data connection that
            # sends bytes before RETR/STOR, and curl >= 7.87 starts the
            # TLS handshake as soon as it connects: stay readable during
            # the handshake (the upstream fix, pyftpdlib PR #612).
            def readable(self):
                return self._ssl_accepting or super().readable()

        class ExplicitTLS(TLS_FTPHandler):
            tls_control_required = True
            tls_data_required = True
            dtp_handler = DataTLS

        class ImplicitTLS(ExplicitTLS):
            # TLS before the banner; PBSZ and PROT stay as the client
            # sends them (curl sends "PROT P" for ftps:// URLs too).
            def handle(self):
                self.secure_connection(self.ssl_context)
                self._ssl_established = True
                super().handle()

        handler = ImplicitTLS if a.implicit else ExplicitTLS
        handler.certfile = a.cert
    if a.refuse_replace:
        base = handler

        class RefuseReplace(base):
            def ftp_RNTO(self, path):
                # pyftpdlib passes the file system path here.
                if self._rnfr and os.path.exists(path):
                    self._rnfr = None
                    self.respond("550 File exists.")
                    return
                return base.ftp_RNTO(self, path)

        handler = RefuseReplace
    handler.authorizer = auth
    handler.banner = "kiln test ftp server ready"
    # A refused login is answered after 3 s by default: keep tests fast.
    handler.auth_failed_timeout = 0.1
    # Passive data connections on the control connection's address
    # (127.0.0.1), on ports the kernel picks: nothing fixed to collide.
    handler.passive_ports = None
    handler.permit_foreign_addresses = False

    logging.basicConfig(filename=a.log, level=logging.INFO,
                        format="%(message)s")
    server = FTPServer(("127.0.0.1", a.port), handler)
    server.max_cons = 64
    write_port(a.port_file, server.address[1])
    try:
        server.serve_forever(handle_exit=True)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
