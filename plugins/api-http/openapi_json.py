#!/usr/bin/env python3
"""Converts the OpenAPI document (docs/openapi.yaml) to JSON at build time.

Usage: openapi_json.py YAML JSON HEADER

Writes JSON, the document as GET /openapi.json serves it (compact, in the
YAML's order), and HEADER, a C header defining http_openapi_json[] and
HTTP_OPENAPI_JSON_LEN with the same bytes, and http_openapi_paths[]: each
path template of the document with the methods it lists ("GET, POST", in
the YAML's order), the Allow header of a 405 there. For
plugins/api-http/openapi.c.
Needs PyYAML (Debian's python3-yaml). Fails on anything JSON cannot hold
(an unquoted date, say) rather than serving something else.
"""
import json
import sys

import yaml

# The operations a path item may hold (OpenAPI 3.1), in no particular
# order: a path's own order is the YAML's.
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2])
    src, out_json, out_h = sys.argv[1:]
    with open(src, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1"):
        sys.exit("%s: not an OpenAPI 3.1 document" % src)
    try:
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False)
    except (TypeError, ValueError) as e:
        sys.exit("%s: %s (quote the value in the YAML)" % (src, e))
    data = text.encode("utf-8")
    with open(out_json, "wb") as f:
        f.write(data)
    lines = []
    for i in range(0, len(data), 64):
        # "?" too: -std=c11 reads trigraphs.
        chunk = "".join(
            "\\" + chr(b) if chr(b) in '"\\?'
            else chr(b) if 0x20 <= b < 0x7F else "\\%03o" % b
            for b in data[i:i + 64])
        lines.append('    "%s"' % chunk)
    paths = []
    for path, item in doc.get("paths", {}).items():
        methods = [m.upper() for m in item if m in METHODS]
        if not methods or not all(c.isprintable() and c not in '"\\?' for c in path):
            sys.exit("%s: path %r: no method, or a character the C table "
                     "cannot hold as is" % (src, path))
        paths.append('    {"%s", "%s"},' % (path, ", ".join(methods)))
    with open(out_h, "w", encoding="ascii") as f:
        f.write("/* Generated from %s by %s: do not edit. */\n" % (src, sys.argv[0]))
        f.write("#define HTTP_OPENAPI_JSON_LEN %d\n" % len(data))
        f.write("static const char http_openapi_json[HTTP_OPENAPI_JSON_LEN + 1] =\n")
        f.write("\n".join(lines) + ";\n")
        f.write("static const struct {\n    const char *path;\n"
                "    const char *allow;\n} http_openapi_paths[] = {\n")
        f.write("\n".join(paths) + "\n};\n")


if __name__ == "__main__":
    main()
