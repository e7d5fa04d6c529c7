#!/usr/bin/env bash
# Slow clients cannot take the server (issue "hostile clients": ~1,100
# connections each sending a header line every 5 s made /health time out
# for 40 s, and a body sent at 1 byte/s kept its connection 40 s). With
# small configured limits: a header must be whole 2 s after its connection
# opened and a body 3 s after its request started, however steadily the
# bytes come; a kept-alive connection may still wait up to idle_timeout
# between requests. Then a slowloris from five loopback addresses
# (127.0.0.1, .3 to .6; Linux routes all of 127/8 to lo) holds more
# connections than the caps allow, sending a header line every second and
# reopening what the server closes; meanwhile /health must answer 200
# within 2 s from 127.0.0.2 and from 127.0.0.1 (an attacking address: the
# reserve), no attacking connection may live past the header deadline, and
# afterwards a normal client is served. About 20 s.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
tmp=$(mktemp -d)
trap 'serve_stop; rm -rf "$tmp"' EXIT
status=0
port=$(serve_free_port)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "http": {"max_connections": 24, "max_connections_per_address": 6,
          "header_timeout": 2, "body_timeout": 3, "idle_timeout": 4},
 "services": [{"id": 1, "tokens": ["tok-one"], "storage": {"plugin": "local", "root": "$tmp"}}]}
JSON
serve_start "$tmp/cfg.json" "$tmp/log" "http://127.0.0.1:$port" ||
    { echo "FAIL api_slow/setup: the server did not start: $(tail -3 "$tmp/log")"; exit 1; }
timeout 50 python3 - "$port" <<'PY'; rc=$?
import http.client, random, select, socket, sys, threading, time
port = int(sys.argv[1])
HEADER, BODY, IDLE = 2.0, 3.0, 4.0
ok = True
def check(name, cond, why):
    global ok
    if cond:
        print("ok api_slow/" + name)
    else:
        print("FAIL api_slow/%s: %s" % (name, why))
        ok = False

def connect(src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s

def closed_after(s, step, every, first=b"", limit=10.0):
    """Sends `first`, then `step` every `every` s; returns seconds until
    the server closed the connection (None: still open after limit)."""
    t0 = time.monotonic()
    s.sendall(first)
    s.setblocking(False)
    next_send = t0 + every
    while time.monotonic() - t0 < limit:
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            try:
                if s.recv(4096) == b"":
                    return time.monotonic() - t0
            except OSError:
                return time.monotonic() - t0
        if time.monotonic() >= next_send:
            try:
                s.send(step)
            except OSError:
                return time.monotonic() - t0
            next_send += every
    return None

def get(src, path="/health", token=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=2,
                                           source_address=(src, 0))
    h = {"Authorization": "Bearer " + token} if token else {}
    c.request("GET", path, headers=h)
    r = c.getresponse()
    r.read()
    return r.status, c

# 1. Deadlines, with no attack: a header sent a line at a time, a body
# a byte at a time, and a kept-alive connection idle between requests.
res = {}
def slow_header():
    res["header"] = closed_after(connect("127.0.0.9"), b"X-a: b\r\n", 0.5,
                                 b"GET /health HTTP/1.1\r\nHost: x\r\n")
def slow_body():
    res["body"] = closed_after(connect("127.0.0.7"), b"x", 1.0,
                               b"POST /request HTTP/1.1\r\nHost: x\r\n"
                               b"Authorization: Bearer tok-one\r\n"
                               b"Content-Length: 100\r\n\r\n")
def keep_alive():
    try:
        _, c = get("127.0.0.8")
        time.sleep(HEADER + 1)   # past the header deadline, within idle
        res["keepalive"] = get("127.0.0.8", conn=c)[0]
    except Exception as e:
        res["keepalive"] = repr(e)
ts = [threading.Thread(target=f) for f in (slow_header, slow_body, keep_alive)]
[t.start() for t in ts]
[t.join() for t in ts]
t = res["header"]
check("slow-header-closed", t is not None and HEADER - 0.3 <= t <= HEADER + 1,
      "a header sent a line every 0.5 s was closed after %s s (deadline %s s)" % (t, HEADER))
t = res["body"]
check("slow-body-closed", t is not None and BODY - 0.3 <= t <= BODY + 1,
      "a body sent a byte a second was closed after %s s (deadline %s s)" % (t, BODY))
check("keepalive-idle-kept", res["keepalive"] == 200,
      "a kept-alive connection idle %s s, then GET /health: %r" % (HEADER + 1, res["keepalive"]))

# 2. The attack.
ATTACKERS = ["127.0.0.1", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"]
PER = 12            # each: twice its cap of 6; together 60 > 24 + 16
lifetimes = []      # seconds each attacking connection lived
n_refused = 0       # closed by the server within 0.2 s
stop = threading.Event()
def attack():
    global n_refused
    now = time.monotonic()
    conns = {}      # socket -> [opened, next line]
    wait = [(now, a) for a in ATTACKERS for _ in range(PER)]   # (reopen at, src)
    while not stop.is_set():
        now = time.monotonic()
        for item in [w for w in wait if w[0] <= now]:
            wait.remove(item)
            try:
                s = connect(item[1])
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                s.setblocking(False)
                conns[s] = [time.monotonic(), time.monotonic() + 1, item[1]]
            except OSError:
                lifetimes.append(0.0)
                n_refused += 1
                wait.append((now + 1 + random.random(), item[1]))
        r, _, _ = select.select(list(conns), [], [], 0.05) if conns else ([], [], time.sleep(0.05))
        now = time.monotonic()
        gone = []
        for s in r:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data == b"":
                gone.append(s)
        for s, st in conns.items():
            if s not in gone and now >= st[1]:
                try:
                    s.send(b"X-a: b\r\n")
                    st[1] += 1
                except OSError:
                    gone.append(s)
        for s in gone:
            opened, _, src = conns.pop(s)
            life = now - opened
            lifetimes.append(life)
            n_refused += life < 0.2
            s.close()
            wait.append((now + 1 + random.random(), src))
    for s, st in conns.items():
        lifetimes.append(time.monotonic() - st[0])
        s.close()

health = []         # (source, outcome, seconds)
def monitor():
    time.sleep(1.5)
    i = 0
    while not stop.is_set():
        src = ("127.0.0.2", "127.0.0.1")[i % 2]
        i += 1
        t0 = time.monotonic()
        try:
            code = get(src)[0]
        except Exception as e:
            code = type(e).__name__
        health.append((src, code, time.monotonic() - t0))
        time.sleep(0.5)
ta, tm = threading.Thread(target=attack), threading.Thread(target=monitor)
ta.start(); tm.start()
time.sleep(9)
stop.set()
ta.join(); tm.join()
bad = [h for h in health if h[1] != 200 or h[2] > 2]
for src in ("127.0.0.2", "127.0.0.1"):
    mine = [h for h in health if h[0] == src]
    badm = [h for h in bad if h[0] == src]
    check("health-under-attack-from-" + src, len(mine) >= 5 and not badm,
          "%d of %d checks failed or took over 2 s: %s" % (len(badm), len(mine), badm[:4]))
longest = max(lifetimes) if lifetimes else 0
check("attack-closed-by-deadline", longest <= HEADER + 1,
      "an attacking connection lived %.1f s (header deadline %s s)" % (longest, HEADER))
check("attack-over-the-caps", n_refused > 0 and any(l >= HEADER - 0.3 for l in lifetimes),
      "%d connections refused at once, %d lived to the deadline; the attack did not fill the caps"
      % (n_refused, sum(l >= HEADER - 0.3 for l in lifetimes)))

# 3. After: normal service, from an attacking address too.
time.sleep(0.5)
try:
    after = (get("127.0.0.1")[0], get("127.0.0.1", "/status/x", "tok-one")[0])
except Exception as e:
    after = repr(e)
print("# %d attacking connections, %d refused at once, longest %.2f s; health %s" % (
    len(lifetimes), n_refused, longest, sorted(round(h[2], 3) for h in health)[-3:]))
check("served-after-attack", after == (200, 404), "GET /health, GET /status/x: %r" % (after,))
sys.exit(0 if ok else 1)
PY
[ "$rc" = 0 ] || status=1
[ "$rc" = 124 ] && echo "FAIL api_slow/time: the script ran over 50 s"
serve_stop
[ "$SERVE_RC" = 0 ] || { echo "FAIL api_slow/exit: the server exited with $SERVE_RC: $(tail -3 "$tmp/log")"; status=1; }
exit $status
