// Prints what the validating relay (proxy.js) recorded for one server, in
// the tests' line format (tests/exec/lib_serve.sh calls it from
// serve_stop): one `FAIL TEST/openapi: ...` line per answer that does not
// conform to docs/openapi.yaml (at most 20, then a count), or one
// `ok TEST/openapi` line saying how many answers were checked.
// Exits 1 when there was a violation or the record has no summary (the
// relay did not stop cleanly).
//
// Usage: node report.js OUT TEST
'use strict';

const fs = require('fs');

const [outFile, test] = process.argv.slice(2);
const MAX_SHOWN = 20;
let text = '';
try {
  text = fs.readFileSync(outFile, 'utf8');
} catch (e) {
  // no record at all: reported below
}
const violations = [];
let summary = null;
for (const line of text.split('\n')) {
  if (line.trim() === '') {
    continue;
  }
  let rec;
  try {
    rec = JSON.parse(line);
  } catch (e) {
    violations.push(`unreadable record line ${JSON.stringify(line.slice(0, 100))}`);
    continue;
  }
  if (rec.summary) {
    summary = rec.summary;
  } else {
    for (const p of rec.problems || []) {
      violations.push(`${rec.request} -> ${rec.status}: ${p}`);
    }
  }
}
// Check names hold no spaces or ": " (tests/exec/lib.sh); the reason may.
const oneLine = (s) => s.replace(/[\r\n]+/g, ' ');
for (const v of violations.slice(0, MAX_SHOWN)) {
  console.log(`FAIL ${test}/openapi: ${oneLine(v)}`);
}
if (violations.length > MAX_SHOWN) {
  console.log(`FAIL ${test}/openapi: and ${violations.length - MAX_SHOWN} more answers that do not conform to docs/openapi.yaml`);
}
if (summary === null) {
  console.log(`FAIL ${test}/openapi: the validating relay left no summary (it did not stop cleanly)`);
  process.exit(1);
}
// KILN_OPENAPI_SEEN=FILE: the answers checked, by route and status, are
// appended to FILE (what the suite covers of the document).
if (process.env.KILN_OPENAPI_SEEN) {
  fs.appendFileSync(process.env.KILN_OPENAPI_SEEN, JSON.stringify({ test, seen: summary.seen }) + '\n');
}
if (violations.length === 0) {
  const unpaired = summary.unpaired ? `, ${summary.unpaired} not read whole` : '';
  console.log(`ok ${test}/openapi (${summary.checked} answers conform to docs/openapi.yaml${unpaired})`);
}
process.exit(violations.length > 0 ? 1 : 0);
