// Checks HTTP answers against docs/openapi.yaml (as the build converts it
// to JSON): the status must be one the route lists, every required header
// must be there and every declared one must match its schema, the
// Content-Type must be one the answer declares, and a JSON body must match
// its schema (JSON Schema 2020-12, which OpenAPI 3.1 uses, with ajv).
//
// Used by tests/openapi/proxy.js on every answer the API tests receive, and
// on the command line by tests/exec/openapi.sh:
//   node validate.js SPEC.json ANSWER.json
// where ANSWER.json is {"method", "path", "status", "headers": {name:
// value}, "body": "text"}; prints one line per violation and exits 1 when
// there is any.
'use strict';

const fs = require('fs');
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

// What a path that the document does not list may be answered: the
// server's 404 "no endpoint", or what comes before routing (no token, the
// rate limits, the transport's 413 and the reserve's 503).
const UNLISTED_STATUSES = ['401', '404', '413', '429', '503'];
// What a listed path asked with a method it does not list may be
// answered: 405 with Allow (before the token checks), or the transport's
// 413 and 503, which come before it.
const UNLISTED_METHOD_STATUSES = ['405', '413', '503'];

class Validator {
  constructor(spec) {
    this.spec = spec;
    this.ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
    addFormats(this.ajv);
    this.schemaCache = new Map();
    this.routes = [];
    for (const [template, item] of Object.entries(spec.paths || {})) {
      const parts = template.split('/').map((seg) => {
        const m = /^\{([^}]+)\}$/.exec(seg);
        return m ? '([^/]+)' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      });
      const literal = template.split('/').filter((s) => s && !s.startsWith('{')).length;
      this.routes.push({ template, item, re: new RegExp('^' + parts.join('/') + '$'), literal });
    }
    // A literal segment wins over a template (none overlap today).
    this.routes.sort((a, b) => b.literal - a.literal);
    this.components = spec.components || {};
  }

  // Follows a local $ref ("#/a/b") in the document.
  deref(obj) {
    let seen = 0;
    while (obj && typeof obj.$ref === 'string') {
      if (!obj.$ref.startsWith('#/') || ++seen > 20) {
        throw new Error('cannot follow $ref ' + obj.$ref);
      }
      obj = obj.$ref
        .slice(2)
        .split('/')
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce((o, k) => (o == null ? undefined : o[k]), this.spec);
    }
    return obj;
  }

  // A compiled ajv validator for a schema of the document (cached by
  // its location).
  compile(key, schema) {
    let fn = this.schemaCache.get(key);
    if (!fn) {
      // Every schema is compiled together with the document's
      // component schemas as its $defs, its refs pointing there.
      const defs = this.components.schemas || {};
      const fixed = JSON.parse(
        JSON.stringify({ ...schema, $defs: { ...(schema.$defs || {}), ...defs } }).replace(
          /"\$ref":"#\/components\/schemas\//g,
          '"$ref":"#/$defs/'
        )
      );
      fn = this.ajv.compile(fixed);
      this.schemaCache.set(key, fn);
    }
    return fn;
  }

  // The route (template and path item) of a path, or null.
  route(path) {
    for (const r of this.routes) {
      if (r.re.test(path)) {
        return r;
      }
    }
    return null;
  }

  // The document's template for a path ("/status/{id}"), or "(other)".
  template(path) {
    const r = this.route(path);
    return r ? r.template : '(other)';
  }

  // The violations of one answer, as strings (none: it conforms).
  // headers: {lower-case name: value}; body: a string.
  check({ method, path, status, headers, body }) {
    const out = [];
    // The dashboard's static files (plugins/api-http/dashboard.c) are a
    // page, not the API: docs/dashboard.md and tests/exec/dashboard.sh
    // cover them.
    if (path === '/dashboard' || String(path).startsWith('/dashboard/')) {
      return out;
    }
    const m = String(method || '').toLowerCase();
    const code = String(status);
    const r = this.route(path);
    const op = r && METHODS.includes(m) ? r.item[m] : undefined;
    const where = op ? `${method} ${r.template}` : `${method} ${path} (not in the document)`;
    let response;
    if (!op) {
      const statuses = r ? UNLISTED_METHOD_STATUSES : UNLISTED_STATUSES;
      if (!statuses.includes(code)) {
        out.push(`${where}: status ${code}, expected one of ${statuses.join(', ')}`);
        return out;
      }
      response = {
        headers: { 'X-Request-Id': { $ref: '#/components/headers/X-Request-Id' } },
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Message' } } },
      };
      if (code === '429') {
        response.headers['Retry-After'] = { $ref: '#/components/headers/Retry-After' };
      }
      if (code === '401') {
        response = this.deref({ $ref: '#/components/responses/Unauthorized' });
      }
      if (code === '405') {
        // Allow names exactly the methods the document lists for the path.
        const want = METHODS.filter((x) => r.item[x]).map((x) => x.toUpperCase());
        const got = String(headers.allow || '')
          .split(',')
          .map((x) => x.trim().toUpperCase())
          .filter((x) => x);
        if (headers.allow === undefined) {
          out.push(`${where} ${code}: no Allow header`);
        } else if (got.length !== want.length || !want.every((x) => got.includes(x))) {
          out.push(`${where} ${code}: header Allow: ${JSON.stringify(headers.allow)}, expected the methods of ${r.template}: ${want.join(', ')}`);
        }
      }
    } else {
      const responses = op.responses || {};
      response = responses[code] || responses[code[0] + 'XX'] || responses.default;
      if (!response) {
        out.push(`${where}: status ${code} is not one of its responses (${Object.keys(responses).join(', ')})`);
        return out;
      }
      response = this.deref(response);
    }
    const key = `${where} ${code}`;

    // Headers: the required ones present, each present one valid.
    for (const [name, h0] of Object.entries(response.headers || {})) {
      const h = this.deref(h0);
      const value = headers[name.toLowerCase()];
      if (value === undefined) {
        if (h.required) {
          out.push(`${where} ${code}: no ${name} header`);
        }
        continue;
      }
      if (h.schema) {
        const schema = this.deref(h.schema);
        let v = value;
        if ((schema.type === 'integer' || schema.type === 'number') && /^-?[0-9]+(\.[0-9]+)?$/.test(v)) {
          v = Number(v);
        }
        const fn = this.compile(`${key} header ${name}`, schema);
        if (!fn(v)) {
          out.push(`${where} ${code}: header ${name}: ${JSON.stringify(value)} ${this.ajv.errorsText(fn.errors)}`);
        }
      }
    }

    // The body, by its Content-Type; an answer to HEAD has none.
    if (m === 'head') {
      return out;
    }
    const content = response.content || {};
    const types = Object.keys(content);
    if (types.length === 0) {
      if (body && body.length > 0) {
        out.push(`${where} ${code}: a body where none is declared`);
      }
      return out;
    }
    const ctype = headers['content-type'];
    if (ctype === undefined) {
      out.push(`${where} ${code}: no Content-Type (expected ${types.join(' or ')})`);
      return out;
    }
    const essence = ctype.split(';')[0].trim().toLowerCase();
    const mtype = types.find((t) => t.split(';')[0].trim().toLowerCase() === essence);
    if (mtype === undefined) {
      out.push(`${where} ${code}: Content-Type ${JSON.stringify(ctype)} (expected ${types.join(' or ')})`);
      return out;
    }
    const media = content[mtype];
    if (!media.schema) {
      return out;
    }
    let value = body;
    if (essence === 'application/json' || essence.endsWith('+json')) {
      try {
        value = JSON.parse(body);
      } catch (e) {
        out.push(`${where} ${code}: the body is not JSON (${e.message}): ${String(body).slice(0, 200)}`);
        return out;
      }
    }
    const fn = this.compile(`${key} ${mtype}`, this.deref(media.schema));
    if (!fn(value)) {
      const errs = fn.errors
        .slice(0, 5)
        .map((e) => `${e.instancePath || '(body)'} ${e.message}${e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : ''}`)
        .join('; ');
      out.push(`${where} ${code}: body: ${errs}: ${String(body).slice(0, 300)}`);
    }
    return out;
  }
}

function load(file) {
  return new Validator(JSON.parse(fs.readFileSync(file, 'utf8')));
}

module.exports = { Validator, load };

if (require.main === module) {
  const [specFile, answerFile] = process.argv.slice(2);
  if (!specFile || !answerFile) {
    console.error('usage: node validate.js SPEC.json ANSWER.json');
    process.exit(2);
  }
  const v = load(specFile);
  const a = JSON.parse(fs.readFileSync(answerFile, 'utf8'));
  const headers = {};
  for (const [k, val] of Object.entries(a.headers || {})) {
    headers[k.toLowerCase()] = val;
  }
  const problems = v.check({ ...a, headers });
  for (const p of problems) {
    console.log(p);
  }
  process.exit(problems.length > 0 ? 1 : 0);
}
