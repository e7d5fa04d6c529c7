#!/usr/bin/python3
"""A real FTP client for tests/exec/storage_ftp.sh: Python's ftplib puts
files on the test server and reads back what kiln wrote.

  storage_ftp_client.py [--tls|--implicit] [--cafile PEM] HOST PORT USER \
      PASSWORD COMMAND...
  commands: put LOCAL REMOTE | get REMOTE LOCAL | find DIR

`find` prints every file under DIR, one path a line, recursively (MLSD).
--tls is explicit FTPS (AUTH TLS, PROT P); --implicit speaks TLS from the
first byte, which ftplib lacks, so it is added here.
"""
import ftplib
import socket
import ssl
import sys


class ImplicitFTP_TLS(ftplib.FTP_TLS):
    def connect(self, host, port, timeout=10):
        self.host, self.port, self.timeout = host, port, timeout
        raw = socket.create_connection((host, port), timeout)
        self.af = raw.family
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


def walk(ftp, d, out):
    for name, facts in ftp.mlsd(d):
        if name in (".", ".."):
            continue
        p = d.rstrip("/") + "/" + name
        if facts.get("type") == "dir":
            walk(ftp, p, out)
        elif facts.get("type") == "file":
            out.append(p)


def main(argv):
    tls = implicit = False
    cafile = None
    while argv and argv[0].startswith("--"):
        opt = argv.pop(0)
        if opt == "--tls":
            tls = True
        elif opt == "--implicit":
            implicit = True
        elif opt == "--cafile":
            cafile = argv.pop(0)
    host, port, user, password = argv[:4]
    cmd = argv[4:]
    if tls or implicit:
        ctx = ssl.create_default_context(cafile=cafile)
        ftp = (ImplicitFTP_TLS if implicit else ftplib.FTP_TLS)(context=ctx)
    else:
        ftp = ftplib.FTP()
    ftp.connect(host, int(port), timeout=10)
    ftp.login(user, password)
    if tls or implicit:
        ftp.prot_p()
    if cmd[0] == "put":
        with open(cmd[1], "rb") as f:
            parts = cmd[2].strip("/").split("/")
            for i in range(1, len(parts)):
                try:
                    ftp.mkd("/" + "/".join(parts[:i]))
                except ftplib.error_perm:
                    pass
            ftp.storbinary("STOR " + cmd[2], f)
    elif cmd[0] == "get":
        with open(cmd[2], "wb") as f:
            ftp.retrbinary("RETR " + cmd[1], f.write)
    elif cmd[0] == "find":
        out = []
        try:
            walk(ftp, cmd[1], out)
        except ftplib.error_perm:
            pass
        for p in sorted(out):
            print(p)
    ftp.quit()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ftplib.all_errors as e:
        print("storage_ftp_client: %s" % e, file=sys.stderr)
        sys.exit(1)
