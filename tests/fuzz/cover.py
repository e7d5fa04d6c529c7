#!/usr/bin/env python3
"""Keeps a committed fuzz corpus small: picks at most CAP inputs that
cover the most coverage features, greedily (the classic set-cover
approximation), from a libFuzzer merge control file written with
-set_cover_merge=1 -use_counters=0 -merge_control_file=FILE (whose FT lines
then list every feature of every input), and makes CORPUS hold exactly
those, defect reproducers (crash-*) aside. Ties go to an input already in
CORPUS, then to the smaller one, so the corpus does not churn.

usage: cover.py CONTROL_FILE CORPUS_DIR CAP [--keep-named]
  --keep-named  also keep every input whose name is not one of libFuzzer's
                40-hex-digit hashes (hand-made seeds such as the probe
                images, whose formats libFuzzer cannot tell apart)
Prints one line: inputs kept, added, removed, features covered.
"""
import os
import re
import shutil
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    keep_named = "--keep-named" in sys.argv
    if len(args) != 3:
        sys.exit(__doc__)
    control, corpus, cap = args[0], args[1], int(args[2])
    with open(control, encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().split("\n")
    n = int(lines[0])
    paths = lines[2:2 + n]
    feats = {}
    for line in lines[2 + n:]:
        if line.startswith("FT "):
            parts = line.split()
            feats[int(parts[1])] = set(map(int, parts[2:]))
    hashed = re.compile(r"^[0-9a-f]{40}$")
    committed = set(os.listdir(corpus))
    by_name = {}
    for i, p in enumerate(paths):
        name = os.path.basename(p)
        if i in feats and not name.startswith("crash-"):
            # One entry per name: the same input may sit in both places.
            if name not in by_name or name in committed:
                by_name[name] = (p, feats[i])
    chosen, covered = set(), set()
    for name, (p, fs) in by_name.items():
        if keep_named and not hashed.match(name):
            chosen.add(name)
            covered |= fs
    picked = 0
    while picked < cap:
        best, key = None, None
        for name, (p, fs) in by_name.items():
            if name in chosen:
                continue
            gain = len(fs - covered)
            k = (gain, name in committed, -os.path.getsize(p), name)
            if gain > 0 and (key is None or k > key):
                best, key = name, k
        if best is None:
            break
        chosen.add(best)
        covered |= by_name[best][1]
        picked += 1
    added = removed = 0
    for name in chosen:
        if name not in committed:
            shutil.copy(by_name[name][0], os.path.join(corpus, name))
            added += 1
    for name in committed:
        if name not in chosen and not name.startswith("crash-"):
            os.remove(os.path.join(corpus, name))
            removed += 1
    total = set().union(*(fs for _, fs in by_name.values())) if by_name else set()
    print("%d inputs kept (+%d, -%d), %d of %d features" %
          (len(chosen), added, removed, len(covered), len(total)))


if __name__ == "__main__":
    main()
