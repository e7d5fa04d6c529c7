#!/usr/bin/env python3
"""Property tests of op chains: random valid requests over sources of
every kind, run through kiln at every -O level and checked against the
contract.

The generator reads every registered op's parameter specs from
`kiln ops --format json`, so it draws from whatever ops the build (and
any plugin) registers: 1-3 jobs, chains of 1-6 ops, every parameter form
(px, "100px", %, w, h, negative and percentage offsets, every gravity and
"middle", colours with and without alpha, decimals, non-ASCII text), over
the sources tests/chains/sources.sh makes, into every output format.

For every generated job it checks:
  finishes   compiled jobs finish at every level; refused requests are
             refused at compile time, each error "path: message", and the
             run refuses them the same way; no job error is a bare
             libvips message
  size       the written image has the size `kiln compile --source`
             inferred (read back from the file)
  levels     -O1 writes the bytes -O0 writes (exact passes); into PNG or
             TIFF, -O2 writes the same bytes or at least 38 dB PSNR
             (colour premultiplied by alpha where there is alpha), -O3
             at least 30 dB (docs/optimizer.md: the bounds hold on pixels
             before encoding, which a lossless format keeps; a lossy
             encoder's own noise would hide or inflate them); a job under
             the bound with an op that stretches levels (stretches()) is
             run again without those ops and held to it there
  alpha      the output keeps alpha exactly when the chain's result has
             it and the format can hold it: PNG and TIFF always; WebP,
             AVIF and HEIC unless every pixel is opaque; GIF when some
             pixel is under half transparent (the result's pixels come
             from the same job written to PNG at -O0)
  repeat     the same request run twice writes the same bytes
  stream     no source was decoded twice (every op flagged sequential
             honoured it: the "stream restart" lines kiln prints with
             KILN_DEBUG set stay absent; one that does not happen again
             when the request runs alone is counted, not failed)

A failure is shrunk (drop jobs, ops and parameters, simplify values while
the same property still fails) and printed as a minimal request, saved
under --keep. Fixed failures become regression cases in
tests/chains/regressions/, which `replay` checks.

  chains.py run --build build [--seed S] [--requests N] [--keep DIR]
  chains.py replay --build build FILE...
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# Output formats by extension; the ones whose files keep an alpha band.
FORMATS = ["jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "avif", "heic"]
# What each pixel backend writes (docs/backends.md); the others are refused
# when submitted.
BACKEND_FORMATS = {"magick": ["jpg", "jpeg", "png", "webp", "gif", "tif",
                              "tiff"]}
KEEPS_ALPHA = {"png", "webp", "tif", "tiff", "avif", "heic", "gif"}
LOSSY = {"jpg", "jpeg", "webp", "avif", "heic", "gif"}

# Bounds the optimizer's levels are held to against -O0 (docs/optimizer.md).
LEVEL_BOUND_DB = {1: None, 2: 38.0, 3: 30.0}

FONTS = ["DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "Arial",
         "sans-serif", "monospace", "Times New Roman Bold", "DejaVu Sans Bold"]
TEXTS = ["Test text", "kiln", "Größe ½ — naïve café", "日本語のテキスト",
         "مرحبا بالعالم", "Ελληνικά ☃ ✓", "line one\nline two",
         "A", "©2026 \u00a0 tab\there", "emoji 🔥🎉", "x" * 60,
         "CRLF\r\nsecond\rthird"]
GRAVITIES = ["northwest", "north", "northeast", "west", "center", "east",
             "southwest", "south", "southeast", "middle"]


# ------------------------------------------------------------ generator

class Gen:
    """Random values for one request, drawn from the op specs."""

    def __init__(self, rng, ops, sources, marks, formats=None):
        self.rng = rng
        self.ops = [o for o in ops if o.get("executes", True)]
        self.sources = sources
        self.marks = marks
        self.formats = formats or FORMATS

    def number(self, spec):
        r = self.rng
        lo, hi = spec["min"], spec["max"]
        # Most values small and ordinary; the range's ends now and then.
        span = min(hi - lo, 50.0) if hi - lo > 100 else hi - lo
        choice = r.random()
        if choice < 0.08:
            v = lo
        elif choice < 0.14:
            v = hi
        elif choice < 0.2 and lo <= 0 <= hi:
            v = 0
        else:
            v = lo + r.random() * span
            if choice > 0.97:
                v = lo + r.random() * (hi - lo)
        if spec.get("integer") or (spec.get("max_decimals", 0) == 0 and
                                   r.random() < 0.6):
            v = round(v)
        elif spec.get("max_decimals", 0) > 0:
            v = round(v, r.randint(0, spec["max_decimals"]))
        else:
            v = round(v, r.randint(0, 3))
        if spec.get("min_exclusive") and v <= lo:
            v = lo + (1 if spec.get("integer") else 0.5)
        v = max(lo, min(hi, v))
        if spec.get("integer") or float(v).is_integer():
            v = int(v)
        if r.random() < 0.15:
            return str(v)  # the public API's numeric strings
        return v

    def length(self, spec):
        r = self.rng
        units = spec["units"]
        offset = spec["axis"] in ("x", "y")
        unit = r.choice(units)
        if unit == "px" and not offset and r.random() < 0.03:
            # Extreme sizes: one side of thousands of pixels (the other
            # usually small), the largest allowed, one past it.
            return r.choice([4096, 12000, 30000, 65535, 65536])
        if unit == "px":
            if offset:
                v = r.choice([0, 0, 1, 5, 17, -3, -12, 40, 120, -60])
            else:
                v = r.choice([1, 2, 7, 16, 31, 64, 100, 150, 200, 333, 480])
            form = r.random()
            if form < 0.5:
                return v
            if form < 0.75:
                return "%dpx" % v
            return str(v)
        if unit == "%":
            if offset:
                v = r.choice([0, 5, 10, 25, 50, -10, 12.5, 33.3])
            else:
                v = r.choice([1, 10, 25, 33.3, 50, 66.7, 75, 99.5, 100, 120,
                              150, 200])
        else:  # w and h: percent of the input's width or height
            v = r.choice([5, 10, 25, 50, 75, 100, 125, 150])
        return "%s%s" % (("%g" % v), unit)

    def color(self):
        r = self.rng
        c = [r.randrange(256) for _ in range(4)]
        form = r.random()
        if form < 0.4:
            return "#%02x%02x%02x" % tuple(c[:3])
        if form < 0.6:
            return "#%02x%02x%02x%02x" % tuple(c)
        if form < 0.7:
            return "#%x%x%x" % tuple(x >> 4 for x in c[:3])
        if form < 0.78:
            return "#%x%x%x%x" % tuple(x >> 4 for x in c)
        if form < 0.86:
            return "rgba(%d, %d, %d, %g)" % (c[0], c[1], c[2],
                                              round(c[3] / 255, 2))
        if form < 0.92:
            return "rgb(%d,%d,%d)" % tuple(c[:3])
        return r.choice(["black", "white", "red", "navy", "transparent"])

    def string(self, op, spec):
        r = self.rng
        name = spec["name"]
        if name == "font":
            return r.choice(FONTS)
        if name == "text":
            return r.choice(TEXTS)
        if name == "source":
            return r.choice(self.marks)
        lo = max(1, int(spec.get("min_len", 1)))
        return "".join(r.choice("abcdefghij") for _ in range(lo + 3))

    def value(self, op, spec):
        kind = spec["kind"]
        if kind == "bool":
            return self.rng.random() < 0.5
        if kind == "number":
            return self.number(spec)
        if kind == "length":
            return self.length(spec)
        if kind == "color":
            return self.color()
        if kind == "enum":
            return self.rng.choice(spec["values"])
        if kind == "gravity":
            return self.rng.choice(GRAVITIES)
        return self.string(op, spec)

    def op(self, op):
        r = self.rng
        t = {"type": op["name"]}
        params = op["params"]
        group = [p for p in params if p.get("one_of")]
        need = set()
        if group:
            need.add(r.choice(group)["name"])
        for p in params:
            if p["required"] or p["name"] in need or r.random() < 0.45:
                key = p["name"]
                if p.get("alias") and r.random() < 0.2:
                    key = p["alias"]
                t[key] = self.value(op, p)
        return t

    def chain(self):
        r = self.rng
        n = r.choice([1, 1, 2, 2, 3, 3, 4, 5, 6])
        return [self.op(r.choice(self.ops)) for _ in range(n)]

    def request(self, rid):
        r = self.rng
        src = r.choice(self.sources)
        jobs = []
        for k in range(r.choice([1, 1, 1, 2, 2, 3])):
            if jobs and r.random() < 0.35:
                # A shared prefix, so share-chains and the executor's
                # memo of shared nodes are exercised.
                prev = r.choice(jobs)["transformations"]
                chain = json.loads(json.dumps(prev[:r.randint(1, len(prev))]))
                chain += self.chain()[:r.randint(0, 2)]
            else:
                chain = self.chain()
            ext = r.choice(self.formats)
            job = {"destination": "/out/%s/j%d.%s" % (rid, k, ext),
                   "transformations": chain}
            if r.random() < 0.5:
                q = r.randint(0, 100)
                job["quality"] = str(q) if r.random() < 0.2 else q
            if r.random() < 0.2:
                job["background"] = "#%02x%02x%02x" % tuple(
                    r.randrange(256) for _ in range(3))
            jobs.append(job)
        return {"service_id": 1, "source": src["path"], "jobs": jobs}


# ---------------------------------------------------------------- kiln

class Kiln:
    """Runs the kiln binary of one build over a storage root."""

    def __init__(self, build, work, config=None, backend=None):
        self.build = build
        # Every service's pixel backend (kiln run --backend); None: the
        # configuration's (libvips by default).
        self.backend = ["--backend", backend] if backend else []
        # A configuration to load other plugins from (a third party's ops
        # are generated like the shipped ones); its storage root is
        # replaced by each run's.
        self.config = ["--config", config] if config else []
        self.bin = os.path.join(build, "kiln")
        self.imgcheck = os.path.join(build, "tests", "imgcheck")
        self.work = work
        self.env = dict(os.environ)
        self.env.setdefault("KILN_PLUGIN_DIR", os.path.join(build, "plugins"))
        self.env["KILN_DEBUG"] = "1"  # stream restarts are logged
        self.asan = "asan" in os.path.basename(os.path.normpath(build))

    def ops(self):
        out = subprocess.run([self.bin, "ops", "--format", "json"] +
                             self.config,
                             env=self.env, capture_output=True, text=True,
                             check=True)
        return json.loads(out.stdout)

    def compile(self, req_path, source_file):
        p = subprocess.run([self.bin, "compile"] + self.config +
                           ["-O0", "--format", "json", "--source",
                            source_file, req_path],
                           env=self.env, capture_output=True, text=True,
                           timeout=120)
        return p.returncode, p.stdout, p.stderr

    def run(self, root, level, req_paths, timeout):
        """Runs the requests in one process; returns (status, results by
        request path, stderr). status is 'ok', 'crash' or 'timeout'."""
        cmd = [self.bin, "run", "--storage-root", root, "--workers", "2",
               "-O%d" % level] + self.config + self.backend + req_paths
        try:
            p = subprocess.run(cmd, env=self.env, capture_output=True,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return "timeout", {}, (e.stderr or b"").decode(errors="replace") \
                if isinstance(e.stderr, bytes) else (e.stderr or "")
        results = {}
        for line in p.stdout.splitlines():
            try:
                o = json.loads(line)
            except ValueError:
                continue
            results[o.get("request")] = o
        status = "ok" if p.returncode in (0, 1) else "crash"
        if status == "ok" and len(results) != len(req_paths):
            status = "crash"
        return status, results, p.stderr

    def check_images(self, lines):
        """imgcheck over 'A' or 'A\\tB' lines; a list of dicts."""
        if not lines:
            return []
        p = subprocess.run([self.imgcheck], input="\n".join(lines) + "\n",
                           env=self.env, capture_output=True, text=True,
                           timeout=600)
        out = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        if len(out) != len(lines):
            raise RuntimeError("imgcheck answered %d of %d lines: %s" %
                               (len(out), len(lines), p.stderr[-500:]))
        return out


# ----------------------------------------------------------- properties

# A JSON path of the request: a top-level field, or inside jobs[N].
PATH_RE = re.compile(r"^(source|service_id|callback|notify_status|"
                     r"retry_postback|wait_retry_delay|process|"
                     r"fail_on_conversion_error|limits(\.[a-z_]+)?|jobs|"
                     r"jobs\[\d+\](\.[A-Za-z_]+(\[\d+\])?)*): \S")
STREAM_RE = re.compile(r"stream restart")
# Limits only the run can check: annotation's rendered text needs the
# fonts, watermark's derived side needs the mark's proportions.
LIMIT_RE = re.compile(r"above the limit of |"
                      r"the derived (width|height) of \d+ px is outside ")


def error_names_path(msg):
    """A job or compile error names its JSON path first, in our words."""
    return msg is not None and PATH_RE.match(msg) is not None


# An op's or the encoder's libvips failure put in our words has the form
# "PATH: name failed on its input (...); libvips said: ..."; a message
# whose text after the path starts with another "word: " and never says
# so is libvips' own, unwrapped.
BARE_RE = re.compile(r"^[^ ]+: [A-Za-z0-9_]+: ")


def is_bare_libvips(msg):
    return msg is not None and BARE_RE.match(msg) is not None and \
        "libvips said: " not in msg


def normalise(msg):
    msg = re.sub(r"\d+(\.\d+)?", "N", msg or "")
    msg = re.sub(r"\"[^\"]*\"", "\"S\"", msg)
    return msg[:80]


class Failure:
    def __init__(self, prop, job, level, detail):
        self.prop = prop
        self.job = job
        self.level = level
        self.detail = detail

    def signature(self):
        if self.prop == "crash":
            return "crash:" + normalise(self.detail)
        return "%s:%s" % (self.prop, normalise(self.detail)[:40]
                          if self.prop == "finishes" else "")

    def __str__(self):
        where = "job %s" % self.job if self.job is not None else "request"
        lvl = " at -O%d" % self.level if self.level is not None else ""
        return "%s: %s%s: %s" % (self.prop, where, lvl, self.detail)


class Checker:
    """Runs batches of requests and checks every property."""

    def __init__(self, kiln, sources_dir, manifest, work, max_area=24e6,
                 levels=(0, 1, 2, 3), repeat=True):
        self.kiln = kiln
        self.max_area = max_area
        self.levels = levels
        self.repeat = repeat and 2 in levels
        self.sources_dir = sources_dir
        self.by_path = {m["path"]: m for m in manifest}
        self.work = work
        self.batch_no = 0
        self.stats = {"requests": 0, "jobs": 0, "finished": 0,
                      "refused": 0, "ops": 0}

    def _root(self, name):
        root = os.path.join(self.work, name)
        if os.path.exists(root):
            shutil.rmtree(root)
        os.makedirs(root)
        for sub in ("samples", "marks"):
            src = os.path.join(self.sources_dir, sub)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(root, sub),
                                copy_function=os.link)
        return root

    def check(self, reqs):
        """reqs: list of (rid, request dict). Returns {rid: [Failure]}."""
        self.batch_no += 1
        bdir = os.path.join(self.work, "b%d" % self.batch_no)
        os.makedirs(bdir, exist_ok=True)
        fails = {rid: [] for rid, _ in reqs}
        paths, inferred = {}, {}
        skipped = set()
        # Every job writes its own file, whatever the request said.
        reqs = [(rid, unique_destinations(rid, req)) for rid, req in reqs]
        for rid, req in reqs:
            p = os.path.join(bdir, "%s.json" % rid)
            with open(p, "w") as f:
                json.dump(req, f, ensure_ascii=False)
            paths[rid] = p
            src = self.by_path.get(req["source"])
            if src is None:
                fails[rid].append(Failure("setup", None, None,
                                          "unknown source %s" % req["source"]))
                continue
            file = os.path.join(self.sources_dir, req["source"].lstrip("/"))
            rc, out, err = self.kiln.compile(p, file)
            if rc == 0:
                g = json.loads(out)
                shapes = {}
                for n in g["nodes"]:
                    if n["kind"] == "encode":
                        shapes[n["job"]] = n["shape"]
                inferred[rid] = shapes
                area = max(n["shape"]["width"] * n["shape"]["height"]
                           for n in g["nodes"])
                if area > self.max_area:
                    # Valid, but too costly to run five times here.
                    self.stats["skipped_cost"] = \
                        self.stats.get("skipped_cost", 0) + 1
                    skipped.add(rid)
            else:
                lines = [x for x in err.splitlines()
                         if x and not x[0].isspace() and
                         not x.startswith("kiln compile: ")]
                bad = [x for x in lines if not error_names_path(x)]
                if rc != 1 or not lines or bad:
                    fails[rid].append(Failure(
                        "finishes", None, None,
                        "compile exited %d without path-named errors: %s" %
                        (rc, (bad or lines or [err.strip()[:300]])[0])))
                inferred[rid] = None
        runnable = [rid for rid, _ in reqs
                    if not fails[rid] and rid not in skipped]
        # Twins: a job into a format that may drop an opaque alpha band
        # (WebP, AVIF, HEIC) runs again into PNG at -O0, which keeps
        # every band, to tell whether the alpha said anything.
        twins = {}
        for rid, req in reqs:
            if rid not in runnable or not inferred.get(rid):
                continue
            for k, job in enumerate(req["jobs"]):
                ext = job["destination"].rsplit(".", 1)[1]
                if ext in {"webp", "avif", "heic", "gif"} and \
                        inferred[rid][k]["bands"] == 4:
                    twin = json.loads(json.dumps(req))
                    tj = twin["jobs"][k]
                    tj["destination"] = "/twin/%s/j%d.png" % (rid, k)
                    twin["jobs"] = [tj]
                    tid = "%s-twin%d" % (rid, k)
                    p = os.path.join(bdir, "%s.json" % tid)
                    with open(p, "w") as f:
                        json.dump(twin, f, ensure_ascii=False)
                    paths[tid] = p
                    twins[(rid, k)] = (tid, tj["destination"])
        results = {}
        # -O0..-O3, then -O2 again for the repeat property.
        plan = [(0, "o0")] + [(lv, "o%d" % lv) for lv in self.levels
                              if lv != 0]
        if self.repeat:
            plan.append((2, "again"))
        for level, tag in plan:
            root = self._root("%s-%s" % (os.path.basename(bdir), tag))
            extra = [t for t, _ in twins.values()] if tag == "o0" else []
            results[tag] = (root, self._run(level, root, runnable + extra,
                                            paths, fails))
        pending = self._properties(reqs, runnable, inferred, results, fails,
                                   twins)
        if pending:
            self._unstretched(reqs, pending, bdir, fails)
        shutil.rmtree(bdir, ignore_errors=True)
        for _, tag in plan:
            shutil.rmtree(results[tag][0], ignore_errors=True)
        return fails

    def _run(self, level, root, rids, paths, fails):
        """Runs rids at one level: in one process, or one by one when the
        batch crashed or hung, so the culprit is named."""
        if not rids:
            return {}
        per = 60 if not self.kiln.asan else 180
        status, res, err = self.kiln.run(root, level, [paths[r] for r in rids],
                                         timeout=per + 8 * len(rids))
        out = {}
        if status != "ok":
            for rid in rids:
                st, one, err1 = self.kiln.run(root, level, [paths[rid]],
                                              timeout=per)
                if st != "ok":
                    fails.setdefault(rid.split("-twin")[0], []).append(Failure(
                        "crash" if st == "crash" else "timeout", None, level,
                        crash_summary(err1) or st))
                else:
                    out[rid] = one.get(paths[rid])
                    self._stream(rid, level, err1, fails)
            return out
        for rid in rids:
            out[rid] = res.get(paths[rid])
        if STREAM_RE.search(err or ""):
            # Some request decoded its source twice: run them one by one
            # to name it.
            # A restart that does not happen again alone was a thread
            # falling behind on a loaded machine (libvips sizes the
            # loader's cache for its own bounds): correct, slower,
            # counted, not failed.
            root1 = root + "-one"
            named = False
            for rid in rids:
                again = 0
                for _ in range(2):
                    shutil.rmtree(root1, ignore_errors=True)
                    shutil.copytree(root, root1, copy_function=os.link)
                    st, _, err1 = self.kiln.run(root1, level, [paths[rid]],
                                                timeout=per)
                    if not STREAM_RE.search(err1 or ""):
                        break
                    again += 1
                    last = err1
                if again == 2:
                    self._stream(rid, level, last, fails)
                    named = True
            if not named:
                self.stats["stream_flaky"] = \
                    self.stats.get("stream_flaky", 0) + 1
            shutil.rmtree(root1, ignore_errors=True)
        return out

    def _stream(self, rid, level, err, fails):
        for line in (err or "").splitlines():
            if STREAM_RE.search(line):
                fails[rid].append(Failure("stream", None, level, line.strip()))
                return

    def _properties(self, reqs, runnable, inferred, results, fails, twins):
        """Checks the properties; returns the levels checks that wait for
        a run without level-stretching ops (_unstretched)."""
        checks = []  # (rid, job, what, line)
        pending = []
        for rid, req in reqs:
            if rid not in runnable:
                continue
            self.stats["requests"] += 1
            self.stats["jobs"] += len(req["jobs"])
            self.stats["ops"] += sum(len(j["transformations"])
                                     for j in req["jobs"])
            cov = self.stats.setdefault("coverage", {})
            src = self.by_path[req["source"]]["kind"]
            cov.setdefault("sources", {}).setdefault(src, 0)
            cov["sources"][src] += 1
            for j in req["jobs"]:
                ext = j["destination"].rsplit(".", 1)[1]
                cov.setdefault("formats", {}).setdefault(ext, 0)
                cov["formats"][ext] += 1
                for t in j["transformations"]:
                    cov.setdefault("ops", {}).setdefault(t["type"], 0)
                    cov["ops"][t["type"]] += 1
            shapes = inferred.get(rid)
            res = {tag: results[tag][1].get(rid) for tag in results}
            if any(r is None for r in res.values()):
                continue  # crash or timeout, already reported
            if shapes is None:
                self.stats["refused"] += 1
                r0 = res["o0"]
                if r0["status"] != "FAILED":
                    fails[rid].append(Failure(
                        "finishes", None, 0,
                        "compile refused the request but the run %s it" %
                        r0["status"]))
                elif not (r0.get("errors") and all(
                        e.get("path") and e.get("message")
                        for e in r0["errors"])) and \
                        not error_names_path(r0.get("error")):
                    fails[rid].append(Failure(
                        "finishes", None, 0,
                        "refusal without a path: %s %s" %
                        (r0.get("error"), r0.get("errors"))))
                continue
            for k, job in enumerate(req["jobs"]):
                ext = job["destination"].rsplit(".", 1)[1]
                ok = True
                for tag, (root, _) in results.items():
                    jr = res[tag]["jobs"][k]
                    level = {"o0": 0, "o1": 1, "o2": 2, "o3": 3,
                             "again": 2}[tag]
                    if jr["status"] != "FINISHED":
                        ok = False
                        msg = jr.get("error") or res[tag].get("error")
                        if msg and msg.startswith("not written: "):
                            # Another job's failure, reported there.
                            break
                        if error_names_path(msg) and LIMIT_RE.search(msg) \
                                and all(res[t]["jobs"][k].get("error") == msg
                                        for t in res):
                            # A limit only the run can check (LIMIT_RE):
                            # refused the same way at every level.
                            self.stats["refused_limit"] = \
                                self.stats.get("refused_limit", 0) + 1
                            break
                        if not error_names_path(msg):
                            msg = "(no JSON path) " + str(msg)
                        elif is_bare_libvips(msg):
                            msg = "(bare libvips message) " + msg
                        fails[rid].append(Failure("finishes", k, level, msg))
                        break
                if not ok:
                    continue
                self.stats["finished"] += 1
                out = {tag: os.path.join(root, job["destination"].lstrip("/"))
                       for tag, (root, _) in results.items()}
                checks.append((rid, k, "o0", out["o0"]))
                if (rid, k) in twins:
                    tid, tdest = twins[(rid, k)]
                    tres = results["o0"][1].get(tid)
                    if tres and tres["status"] == "FINISHED":
                        checks.append((rid, k, "twin", os.path.join(
                            results["o0"][0], tdest.lstrip("/"))))
                for tag, level in (("o1", 1), ("o2", 2), ("o3", 3)):
                    if tag in out and not same_bytes(out["o0"], out[tag]):
                        checks.append((rid, k, tag,
                                       out["o0"] + "\t" + out[tag]))
                if "again" in out and not same_bytes(out["o2"],
                                                     out["again"]):
                    fails[rid].append(Failure(
                        "repeat", k, 2, "two runs wrote different bytes"))
        answers = self.kiln.check_images([c[3] for c in checks])
        by_job = {}
        for (rid, k, what, _), a in zip(checks, answers):
            by_job.setdefault((rid, k), {})[what] = a
        reqd = dict(reqs)
        for (rid, k), got in by_job.items():
            job = reqd[rid]["jobs"][k]
            ext = job["destination"].rsplit(".", 1)[1]
            shape = inferred[rid][k]
            a = got["o0"]
            if not a["ok"]:
                fails[rid].append(Failure("size", k, 0, a["error"]))
                continue
            if (a["width"], a["height"]) != (shape["width"], shape["height"]):
                fails[rid].append(Failure(
                    "size", k, 0, "wrote %dx%d, compile inferred %dx%d" %
                    (a["width"], a["height"], shape["width"],
                     shape["height"])))
            want_alpha = shape["bands"] == 4 and ext in KEEPS_ALPHA
            twin = got.get("twin")
            if want_alpha and twin is not None and twin.get("ok") and \
                    twin.get("alpha_min", 0) >= 255:
                # An opaque alpha band: the encoder may leave it out.
                want_alpha = a["alpha"]
            if ext == "gif" and shape["bands"] == 4 and twin is not None \
                    and twin.get("ok"):
                # GIF's alpha is one bit: libvips makes pixels under 128
                # transparent, and writes none when there are none.
                want_alpha = twin.get("alpha_min", 255) < 128
            elif ext == "gif" and shape["bands"] == 4:
                want_alpha = a["alpha"]  # no twin to tell
            if a["alpha"] and not want_alpha and \
                    a.get("alpha_min", 0) >= 255:
                pass  # an opaque alpha band (a GIF's unused transparent
                # index reads back as one) shows nothing that is not there
            elif a["alpha"] != want_alpha:
                fails[rid].append(Failure(
                    "alpha", k, 0, "%s output has %s alpha; the chain's result "
                    "has %d bands" % (ext, "an" if a["alpha"] else "no",
                                      shape["bands"])))
            for tag, level in (("o1", 1), ("o2", 2), ("o3", 3)):
                b = got.get(tag)
                if b is None:
                    continue  # identical bytes
                bound = LEVEL_BOUND_DB[level]
                if bound is not None and ext in LOSSY:
                    continue  # the bound is on pixels before encoding
                if bound is None:
                    fails[rid].append(Failure(
                        "levels", k, level, "-O1 is exact, but its bytes "
                        "differ from -O0 (PSNR %s)" % b.get("psnr")))
                elif b.get("psnr") is None:
                    fails[rid].append(Failure(
                        "levels", k, level, "cannot compare with -O0: %s" %
                        b.get("why")))
                elif b["psnr"] < bound and any(
                        stretches(op) for op in job["transformations"]):
                    # The bound holds on what the passes rewrote; an op
                    # that stretches levels stretches the difference too.
                    # Held to the bound without those ops (below).
                    pending.append((rid, k, level, b["psnr"], bound))
                elif b["psnr"] < bound:
                    fails[rid].append(Failure(
                        "levels", k, level, "%.1f dB from -O0, below %g dB" %
                        (b["psnr"], bound)))
        return pending

    def _unstretched(self, reqs, pending, bdir, fails):
        """Runs each request with a pending levels check again without
        its level-stretching ops (every job: another job's output may be
        the intermediate a pass reuses) and holds those jobs to the bound
        there."""
        reqd = dict(reqs)
        paths, levels = {}, {0}
        for rid in sorted({p[0] for p in pending}):
            bare = json.loads(json.dumps(reqd[rid]))
            for job in bare["jobs"]:
                job["transformations"] = [
                    op for op in job["transformations"] if not stretches(op)]
                if not job["transformations"]:
                    flip = {"type": "flip", "direction": "x"}
                    job["transformations"] = [flip, dict(flip)]
            p = os.path.join(bdir, "%s-bare.json" % rid)
            with open(p, "w") as f:
                json.dump(bare, f, ensure_ascii=False)
            paths[rid] = p
        levels |= {p[2] for p in pending}
        roots = {}
        for level in sorted(levels):
            root = self._root("%s-bare-o%d" % (os.path.basename(bdir), level))
            roots[level] = (root, self._run(level, root, sorted(paths), paths,
                                            fails))
        checks = []
        for rid, k, level, psnr, bound in pending:
            self.stats["unstretched"] = self.stats.get("unstretched", 0) + 1
            dest = reqd[rid]["jobs"][k]["destination"].lstrip("/")
            r0, r1 = roots[0][1].get(rid), roots[level][1].get(rid)
            if not r0 or not r1 or r0["status"] != "FINISHED" or \
                    r1["status"] != "FINISHED":
                fails[rid].append(Failure(
                    "levels", k, level, "%.1f dB from -O0, and the chain "
                    "without its level-stretching ops did not finish" % psnr))
                continue
            a = os.path.join(roots[0][0], dest)
            b = os.path.join(roots[level][0], dest)
            if not same_bytes(a, b):
                checks.append(((rid, k, level, psnr, bound), a + "\t" + b))
        for (rid, k, level, psnr, bound), got in zip(
                [c[0] for c in checks],
                self.kiln.check_images([c[1] for c in checks])):
            if got.get("psnr") is None or got["psnr"] < bound:
                fails[rid].append(Failure(
                    "levels", k, level, "%.1f dB from -O0, %s without its "
                    "level-stretching ops, below %g dB" %
                    (psnr, "%.1f dB" % got["psnr"] if got.get("psnr")
                     is not None else got.get("why"), bound)))
        for root, _ in roots.values():
            shutil.rmtree(root, ignore_errors=True)


def stretches(op):
    """Whether an op can stretch a small difference in its input into a
    large one in its output: a gain above 1 (ulb's auto-levels, contrast
    raised, GD's sharpening and edge kernels) or a threshold (bw,
    blurselective, enhance's colour-closeness test). The optimizer's bound
    holds on the ops a pass rewrites; these after them stretch the
    difference with the image (docs/optimizer.md)."""
    t = op.get("type")
    if t in ("ulb", "enhance"):
        return True
    if t == "contrast":
        try:
            return float(op.get("level", 0)) > 0
        except (TypeError, ValueError):
            return True
    if t == "filter":
        f = op.get("filter")
        if f in ("bw", "edgedetect", "emboss", "meanremoval",
                 "blurselective"):
            return True
        if f == "smooth":
            try:
                return float(op.get("weight", 1)) <= 0
            except (TypeError, ValueError):
                return True
    return False


def crash_summary(err):
    """What a crashed run's stderr says went wrong, in one line: the
    sanitizer's report and its first frame in a library, or the last
    lines."""
    lines = (err or "").splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"(ERROR: \w+Sanitizer: .*|runtime error: .*)", line)
        if m:
            frame = next((x.strip() for x in lines[i + 1:i + 12]
                          if re.match(r"\s*#[1-9]", x)), "")
            return "%s %s" % (m.group(1), frame)
    return " ".join(lines[-3:])[-600:]


def unique_destinations(rid, req):
    req = json.loads(json.dumps(req))
    for k, job in enumerate(req.get("jobs", [])):
        ext = job["destination"].rsplit(".", 1)[-1]
        job["destination"] = "/out/%s/j%d.%s" % (rid, k, ext)
    return req


def same_bytes(a, b):
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    except OSError:
        return False


# ------------------------------------------------------------ shrinking

def candidates(req):
    """Smaller or simpler variants of req, most reducing first."""
    jobs = req["jobs"]
    if len(jobs) > 1:
        for k in range(len(jobs)):
            c = json.loads(json.dumps(req))
            del c["jobs"][k]
            yield c
    for k, job in enumerate(jobs):
        chain = job["transformations"]
        if len(chain) > 1:
            for i in range(len(chain)):
                c = json.loads(json.dumps(req))
                del c["jobs"][k]["transformations"][i]
                yield c
    for k, job in enumerate(jobs):
        for key in ("quality", "background"):
            if key in job:
                c = json.loads(json.dumps(req))
                del c["jobs"][k][key]
                yield c
        for i, t in enumerate(job["transformations"]):
            for key in list(t):
                if key == "type":
                    continue
                c = json.loads(json.dumps(req))
                del c["jobs"][k]["transformations"][i][key]
                yield c
            for key, v in t.items():
                if key == "type":
                    continue
                for simpler in simplify(v):
                    c = json.loads(json.dumps(req))
                    c["jobs"][k]["transformations"][i][key] = simpler
                    yield c
        dest = job["destination"]
        for ext in ("png", "jpg"):
            if not dest.endswith("." + ext):
                c = json.loads(json.dumps(req))
                c["jobs"][k]["destination"] = dest.rsplit(".", 1)[0] + \
                    "." + ext
                yield c


def simplify(v):
    if isinstance(v, bool):
        return []
    if isinstance(v, str):
        m = re.match(r"^(-?\d+(?:\.\d+)?)(px|%|w|h)?$", v)
        if m:
            num = float(m.group(1))
            out = []
            if m.group(2) in (None, "px"):
                out.append(int(num) if num.is_integer() else num)
            if not num.is_integer():
                out.append("%d%s" % (round(num), m.group(2) or ""))
            return out
        if len(v) > 1 and v not in GRAVITIES:
            return ["A"]
        if v in GRAVITIES and v != "northwest":
            return ["northwest"]
        return []
    if isinstance(v, float) and not v.is_integer():
        return [round(v)]
    if isinstance(v, int) and v not in (0, 1):
        return [v // 2] if abs(v) > 2 else [0]
    return []


def shrink(checker, req, failure, budget=150, chunk=16):
    """Greedy shrink while the same property fails; returns the minimal
    request and its failure. Candidates are checked in batches (one kiln
    process per level for many of them); the first in order that still
    fails becomes the new best."""
    sig = failure.signature()
    best, best_f = req, failure
    tries = 0
    changed = True
    while changed and tries < budget:
        changed = False
        cands = list(candidates(best))
        for at in range(0, len(cands), chunk):
            batch = cands[at:at + chunk][:max(0, budget - tries)]
            if not batch:
                break
            tries += len(batch)
            ids = [("s%d" % (tries + i), c) for i, c in enumerate(batch)]
            fails = checker.check(ids)
            for rid, c in ids:
                same = [f for f in fails[rid] if f.signature() == sig]
                if same:
                    best, best_f = c, same[0]
                    changed = True
                    break
            if changed:
                break
    return best, best_f


# ----------------------------------------------------------------- main

def make_sources(build, want_dir=None):
    """The fixtures, made once per build directory and script version."""
    if want_dir and os.path.exists(os.path.join(want_dir, "sources.json")):
        with open(os.path.join(want_dir, "sources.json")) as f:
            return want_dir, json.load(f)
    script = os.path.join(HERE, "sources.sh")
    with open(script, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    d = want_dir or os.path.join(build, "tests", "chain-sources-" + digest)
    manifest = os.path.join(d, "sources.json")
    if not os.path.exists(manifest):
        tmp = d + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["bash", script, tmp], check=True,
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)
        os.rename(tmp, d)
    with open(manifest) as f:
        return d, json.load(f)


def report(failures_by_sig, stats, seconds, seed, out):
    print("chains: seed %s: %d requests (%d refused at compile time), %d "
          "jobs finished (%d refused by a limit when run), %d ops, in %.0f s"
          % (seed, stats["requests"], stats["refused"], stats["finished"],
             stats.get("refused_limit", 0), stats["ops"], seconds), file=out)
    if stats.get("skipped_cost"):
        print("chains: %d valid requests not run: an image above the "
              "--max-area cost bound" % stats["skipped_cost"], file=out)
    if stats.get("unstretched"):
        print("chains: %d job(s) under a level's bound after a "
              "level-stretching op, held to it without those ops" %
              stats["unstretched"], file=out)
    if stats.get("stream_flaky"):
        print("chains: %d batch(es) restarted a stream in a way that did "
              "not happen again alone" % stats["stream_flaky"], file=out)
    for what, counts in sorted(stats.get("coverage", {}).items()):
        print("chains: %s: %s" % (what, ", ".join(
            "%s %d" % kv for kv in sorted(counts.items()))), file=out)


def parse_levels(text):
    levels = sorted({int(x) for x in text.split(",")} | {0})
    if any(lv not in (0, 1, 2, 3) for lv in levels):
        raise SystemExit("chains.py: --levels takes 0 to 3")
    return tuple(levels)


def cmd_run(args):
    kiln_work = tempfile.mkdtemp(prefix="kiln-chains-")
    try:
        sources_dir, manifest = make_sources(args.build, args.sources)
        kiln = Kiln(args.build, kiln_work, args.config, args.backend)
        ops = kiln.ops()
        if args.ops:
            want = args.ops.split(",")
            ops = [o for o in ops if o["name"] in want]
        srcs = [m for m in manifest if m["role"] == "source"]
        marks = [m["path"] for m in manifest if m["role"] == "mark"]
        seed = args.seed if args.seed is not None else \
            random.SystemRandom().randrange(1 << 31)
        rng = random.Random(seed)
        gen = Gen(rng, ops, srcs, marks,
                  BACKEND_FORMATS.get(args.backend or "vips"))
        checker = Checker(kiln, sources_dir, manifest, kiln_work,
                          args.max_area, parse_levels(args.levels),
                          not args.no_repeat)
        t0 = time.time()
        found = {}
        n_done = 0
        while n_done < args.requests:
            size = min(args.batch, args.requests - n_done)
            reqs = [("r%d" % (n_done + i), gen.request("r%d" % (n_done + i)))
                    for i in range(size)]
            n_done += size
            fails = checker.check(reqs)
            for rid, req in reqs:
                for f in fails[rid]:
                    sig = f.signature()
                    if sig in found:
                        found[sig]["count"] += 1
                        continue
                    found[sig] = {"count": 1, "request": req, "failure": f}
            if args.progress:
                print("chains: %d/%d requests, %d distinct failures, %.0f s"
                      % (n_done, args.requests, len(found), time.time() - t0),
                      file=sys.stderr)
            if len(found) >= args.max_failures:
                break
        seconds = time.time() - t0
        report(found, checker.stats, seconds, seed, sys.stdout)
        for sig, fd in found.items():
            small, f = (fd["request"], fd["failure"])
            if not args.no_shrink:
                small, f = shrink(checker, fd["request"], fd["failure"],
                                  args.shrink_budget)
            src = checker.by_path[small["source"]]
            print("FAIL chains/seed-%s/%s: %s (%d times) on %s [%s]" %
                  (seed, f.prop, f, fd["count"], small["source"],
                   src["kind"]))
            print("    minimal request: %s" %
                  json.dumps(small, ensure_ascii=False))
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                name = hashlib.sha256(sig.encode()).hexdigest()[:10]
                with open(os.path.join(args.keep, "%s-%s.json" %
                                       (f.prop, name)), "w") as fo:
                    json.dump({"property": f.prop, "failure": str(f),
                               "seed": seed, "request": small}, fo,
                              ensure_ascii=False, indent=1)
        if not found:
            print("ok chains/seed-%s (%d requests, %d jobs checked at -O%s%s)"
                  % (seed, checker.stats["requests"], checker.stats["jobs"],
                     ", -O".join(str(lv) for lv in checker.levels),
                     " and repeated" if checker.repeat else ""))
        return 1 if found else 0
    finally:
        if not args.keep_work:
            shutil.rmtree(kiln_work, ignore_errors=True)


def cmd_replay(args):
    kiln_work = tempfile.mkdtemp(prefix="kiln-chains-")
    try:
        sources_dir, manifest = make_sources(args.build, args.sources)
        kiln = Kiln(args.build, kiln_work, backend=args.backend)
        checker = Checker(kiln, sources_dir, manifest, kiln_work,
                          levels=parse_levels(args.levels),
                          repeat=not args.no_repeat)
        reqs = []
        for i, path in enumerate(args.files):
            with open(path) as f:
                reqs.append(("c%d" % i, json.load(f)["request"]))
        fails = checker.check(reqs)
        status = 0
        for i, path in enumerate(args.files):
            name = os.path.basename(path)
            fs = fails["c%d" % i]
            if fs:
                status = 1
                print("FAIL chains/regression/%s: %s" % (name, fs[0]))
            else:
                print("ok chains/regression/%s" % name)
        return status
    finally:
        shutil.rmtree(kiln_work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--build", default="build")
    r.add_argument("--seed", type=int)
    r.add_argument("--requests", type=int, default=100)
    r.add_argument("--batch", type=int, default=40)
    r.add_argument("--sources")
    r.add_argument("--config", help="kiln configuration (other plugins)")
    r.add_argument("--ops", help="only these ops (comma-separated)")
    r.add_argument("--keep", help="save each minimal failing case here")
    r.add_argument("--keep-work", action="store_true")
    r.add_argument("--max-failures", type=int, default=20)
    r.add_argument("--max-area", type=float, default=24e6,
                   help="requests with a larger image anywhere are not run")
    r.add_argument("--no-shrink", action="store_true")
    r.add_argument("--shrink-budget", type=int, default=150,
                   help="candidate requests tried per failure")
    r.add_argument("--progress", action="store_true")
    for a in (r, sub.add_parser("replay")):
        a.add_argument("--backend", help="every service's pixel backend "
                       "(vips, magick)")
        a.add_argument("--levels", default="0,1,2,3",
                       help="the -O levels to run (-O0 always)")
        a.add_argument("--no-repeat", action="store_true",
                       help="skip the second -O2 run")
    p = sub.choices["replay"]
    p.add_argument("--build", default="build")
    p.add_argument("--sources")
    p.add_argument("files", nargs="+")
    args = ap.parse_args()
    sys.exit(cmd_run(args) if args.cmd == "run" else cmd_replay(args))


if __name__ == "__main__":
    main()
