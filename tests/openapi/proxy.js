// A validating TCP relay in front of `kiln serve` for the API tests
// (tests/exec/lib_serve.sh starts it): it listens on the address the test
// talks to and relays every connection, byte for byte and as it comes, to
// the server on another port, while it reads a copy of both directions
// as HTTP/1.1 and checks every answer against the OpenAPI document
// (validate.js). Violations are appended to OUT as JSON lines; a summary
// line is appended when the relay stops (SIGTERM).
//
// Byte for byte, so that the tests see what the server sends (status
// line, header names and order, keep-alive, Expect: 100-continue, early
// 413s, closes and resets) and the server sees what they send, at the
// pace they send it (the slow-client deadlines still apply); one server
// connection per client connection (the connection caps still count), and
// from the client's own loopback address (a test connecting from
// 127.0.0.2 is 127.0.0.2 to the server's per-address limits).
//
// Usage: node proxy.js LISTEN_HOST LISTEN_PORT SERVER_PORT SPEC.json OUT
'use strict';

const fs = require('fs');
const net = require('net');
const { load } = require('./validate');

const [host, listenPort, serverPort, specFile, outFile] = process.argv.slice(2);
const validator = load(specFile);
let nChecked = 0;
let nViolations = 0;
let nUnparsed = 0;
const seen = {}; // "METHOD /route STATUS": answers checked

function record(obj) {
  fs.appendFileSync(outFile, JSON.stringify(obj) + '\n');
}

// An HTTP/1.1 message stream read from a copy of one direction of a
// connection. onHead(head) is called when a message's header is whole
// and returns how its body is framed; onMessage(head, body) when the
// message is whole. Anything it cannot read stops it (lost).
class Reader {
  constructor(onHead, onMessage) {
    this.buf = Buffer.alloc(0);
    this.state = 'head';
    this.onHead = onHead;
    this.onMessage = onMessage;
    this.lost = false;
    this.head = null;
    this.body = [];
    this.left = 0; // bytes of the body (or of the current chunk) still to come
  }

  lose(why) {
    this.lost = why;
    this.buf = Buffer.alloc(0);
  }

  feed(data) {
    if (this.lost) {
      return;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    for (;;) {
      if (this.state === 'head') {
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (this.buf.length > 1 << 20) {
            this.lose('a header over 1 MiB');
          }
          return;
        }
        const text = this.buf.subarray(0, end).toString('latin1');
        this.buf = this.buf.subarray(end + 4);
        const lines = text.split('\r\n');
        const headers = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          if (colon <= 0) {
            this.lose('a header line without a colon');
            return;
          }
          const name = line.slice(0, colon).trim().toLowerCase();
          const value = line.slice(colon + 1).trim();
          headers[name] = name in headers ? headers[name] + ', ' + value : value;
        }
        this.head = { start: lines[0], headers };
        const framing = this.onHead(this.head);
        if (framing === null) {
          this.lose('cannot read ' + JSON.stringify(lines[0].slice(0, 80)));
          return;
        }
        this.body = [];
        if (framing === 'chunked') {
          this.state = 'chunk-size';
        } else if (framing === 'close') {
          this.state = 'until-close';
        } else if (framing > 0) {
          this.state = 'body';
          this.left = framing;
        } else {
          this.done();
        }
      } else if (this.state === 'body' || this.state === 'chunk-data') {
        if (this.buf.length === 0) {
          return;
        }
        const n = Math.min(this.left, this.buf.length);
        this.body.push(this.buf.subarray(0, n));
        this.buf = this.buf.subarray(n);
        this.left -= n;
        if (this.left > 0) {
          return;
        }
        if (this.state === 'body') {
          this.done();
        } else {
          this.state = 'chunk-crlf';
        }
      } else if (this.state === 'chunk-size' || this.state === 'chunk-crlf' || this.state === 'trailer') {
        const eol = this.buf.indexOf('\r\n');
        if (eol < 0) {
          return;
        }
        const line = this.buf.subarray(0, eol).toString('latin1');
        this.buf = this.buf.subarray(eol + 2);
        if (this.state === 'chunk-crlf') {
          this.state = 'chunk-size';
        } else if (this.state === 'trailer') {
          if (line === '') {
            this.done();
          }
        } else {
          const size = parseInt(line.split(';')[0], 16);
          if (Number.isNaN(size)) {
            this.lose('a bad chunk size');
            return;
          }
          if (size === 0) {
            this.state = 'trailer';
          } else {
            this.state = 'chunk-data';
            this.left = size;
          }
        }
      } else if (this.state === 'until-close') {
        this.body.push(this.buf);
        this.buf = Buffer.alloc(0);
        return;
      }
    }
  }

  // The stream ended: a body read until the close is whole now.
  end() {
    if (!this.lost && this.state === 'until-close') {
      this.done();
    }
  }

  done() {
    const head = this.head;
    const body = Buffer.concat(this.body);
    this.state = 'head';
    this.head = null;
    this.body = [];
    this.onMessage(head, body);
  }
}

function contentLength(headers) {
  if ('content-length' in headers) {
    const n = Number(headers['content-length']);
    return Number.isSafeInteger(n) && n >= 0 ? n : null;
  }
  return 0;
}

function relay(client) {
  const pending = []; // requests whose header is whole, not yet answered
  const requests = new Reader(
    (head) => {
      const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(head.start);
      if (!m) {
        return null;
      }
      const target = m[2];
      const q = target.indexOf('?');
      let path = q >= 0 ? target.slice(0, q) : target;
      try {
        path = decodeURIComponent(path);
      } catch (e) {
        // left as sent
      }
      pending.push({ method: m[1], path, target });
      if (/\bchunked\b/i.test(head.headers['transfer-encoding'] || '')) {
        return 'chunked';
      }
      return contentLength(head.headers);
    },
    () => {}
  );
  const answers = new Reader(
    (head) => {
      const m = /^HTTP\/1\.[01] ([0-9]{3})(?: .*)?$/.exec(head.start);
      if (!m) {
        return null;
      }
      head.status = Number(m[1]);
      if (head.status < 200) {
        return 0; // 100 Continue: an interim answer, not the request's
      }
      head.request = pending.shift();
      if (head.request && head.request.method === 'HEAD') {
        return 0;
      }
      if (head.status === 204 || head.status === 304) {
        return 0;
      }
      if (/\bchunked\b/i.test(head.headers['transfer-encoding'] || '')) {
        return 'chunked';
      }
      if (!('content-length' in head.headers)) {
        return 'close';
      }
      return contentLength(head.headers);
    },
    (head, body) => {
      if (head.status < 200) {
        return;
      }
      const req = head.request;
      if (!req) {
        // An answer to a request that was not read whole (the relay
        // lost track of that direction): nothing to check it against.
        nUnparsed++;
        return;
      }
      nChecked++;
      const key = `${req.method} ${validator.template(req.path)} ${head.status}`;
      seen[key] = (seen[key] || 0) + 1;
      let problems;
      try {
        problems = validator.check({
          method: req.method,
          path: req.path,
          status: head.status,
          headers: head.headers,
          body: body.toString('utf8'),
        });
      } catch (e) {
        problems = ['the validator failed: ' + e.message];
      }
      if (problems.length > 0) {
        nViolations++;
        record({ request: `${req.method} ${req.target}`, status: head.status, problems });
      }
    }
  );

  client.pause();
  const opts = { host, port: Number(serverPort), allowHalfOpen: true };
  const addr = client.remoteAddress || '';
  if (/^(::ffff:)?127\./.test(addr) || addr === '::1') {
    opts.localAddress = addr.replace(/^::ffff:/, '');
  }
  const server = net.connect(opts);
  let ended = false;
  const finish = () => {
    if (!ended) {
      ended = true;
      answers.end();
    }
  };
  // Closes the client once what the server sent has reached it.
  const closeClient = () => {
    if (client.destroyed) {
      return;
    }
    if (client.writableLength === 0) {
      client.destroy();
    } else {
      client.end();
      client.once('finish', () => client.destroy());
    }
  };
  server.on('connect', () => {
    client.pipe(server);
    server.pipe(client);
    client.on('data', (d) => requests.feed(d));
    server.on('data', (d) => answers.feed(d));
    client.resume();
  });
  // A clean end is an end (pipe() passes it on; the other direction stays
  // open: half-close). A reset by the client is a reset of the server
  // connection; a reset by the server (it closes with bytes unread, after
  // an early 413) or a refused connection resets the client, but only
  // once what the server had sent is delivered: a kernel may drop unread
  // bytes on a reset, and the relay must not lose more than a direct
  // connection does.
  server.on('error', () => {
    finish();
    if (client.destroyed) {
      return;
    }
    if (client.writableLength === 0 && client.bytesWritten === 0) {
      client.resetAndDestroy();
    } else {
      closeClient();
    }
  });
  client.on('error', () => {
    if (!server.destroyed) {
      server.resetAndDestroy();
    }
  });
  server.on('end', finish);
  server.on('close', () => {
    finish();
    closeClient();
  });
  client.on('close', () => {
    if (!server.destroyed) {
      server.end();
    }
  });
}

const listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, relay);
listener.on('error', (e) => {
  console.error('openapi proxy: ' + e.message);
  process.exit(1);
});
listener.listen(Number(listenPort), host, () => {
  fs.writeFileSync(outFile + '.ready', String(process.pid));
});

function stop() {
  record({ summary: { checked: nChecked, violations: nViolations, unpaired: nUnparsed, seen } });
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
