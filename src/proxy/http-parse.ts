/**
 * A strict HTTP/1.1 message-head parser and body framer over Buffers (RFC 9112).
 * The proxy judges requests on what it parses here and forwards the bytes it
 * received, so any leniency here is a smuggling hole: whatever is ambiguous
 * (CL+TE, duplicate CL, bare LF, obs-fold, odd chunk sizes) is refused instead
 * of guessed. Heads are parsed in one pass once complete (the caller keeps the
 * scan offset so a trickled head is not rescanned); bodies are framed
 * incrementally and never buffered, only measured.
 */

/** A request or response the proxy refuses: `status` is what it answers with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface HeadLimits {
  /** Bytes from the first byte of the head to the end of its empty line. */
  maxHeadSize: number;
  maxHeaders: number;
}

export const DEFAULT_LIMITS: HeadLimits = { maxHeadSize: 16384, maxHeaders: 100 };

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;
const SEMI = 59;

/** tchar of RFC 9110 5.6.2: what a method, header name or transfer coding may contain. */
const TCHAR = new Uint8Array(256);
for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1;
for (let b = 48; b <= 57; b++) TCHAR[b] = 1;
for (let b = 65; b <= 90; b++) TCHAR[b] = 1;
for (let b = 97; b <= 122; b++) TCHAR[b] = 1;

/** Field-value bytes: VCHAR, SP, HTAB and obs-text; never NUL, CR, LF or other controls. */
const VALUE = new Uint8Array(256);
VALUE[HT] = 1;
for (let b = 32; b < 256; b++) VALUE[b] = b === 127 ? 0 : 1;

/** Request-target bytes: visible ASCII only (no space, controls or obs-text). */
const TARGET = new Uint8Array(256);
for (let b = 33; b < 127; b++) TARGET[b] = 1;

const HEX = new Int8Array(256).fill(-1);
for (let b = 0; b < 10; b++) HEX[48 + b] = b;
for (let b = 0; b < 6; b++) {
  HEX[65 + b] = 10 + b;
  HEX[97 + b] = 10 + b;
}

/**
 * Index just past the head's terminating empty line within buf[start, end), or
 * -1 when it is not there yet. `from` is where scanning may resume (bytes
 * before it were scanned already). Bare LF anywhere in a head is refused
 * (400): RFC 9112 lets a recipient accept it, and that difference between
 * parsers is exactly what smuggling needs. 431 once the head outgrows the limit.
 */
export function findHeadEnd(buf: Buffer, start: number, end: number, from: number, maxHeadSize: number): number {
  let i = from > start ? from : start;
  const stop = end - start > maxHeadSize ? start + maxHeadSize : end;
  for (; i < stop; i++) {
    if (buf[i] !== LF) continue;
    if (i === start || buf[i - 1] !== CR) throw new HttpError(400, 'bare LF in message head');
    // CRLF CRLF: the previous line was empty.
    if (i - 3 >= start && buf[i - 2] === LF && buf[i - 3] === CR) return i + 1;
  }
  if (end - start > maxHeadSize) throw new HttpError(431, 'message head too large');
  return -1;
}

/** Framing a message head declared; the body framer's starting point. */
export const BODY_NONE = 0;
export const BODY_LENGTH = 1;
export const BODY_CHUNKED = 2;
/** A response body that ends when the connection does. */
export const BODY_CLOSE = 3;

/** Header fields of a head: what framing, routing and matching need, plus offsets of all. */
class HeadFields {
  /**
   * The buffer the offsets refer to (the caller's, not copied): read the
   * fields before that buffer is reused (the relay's reads share one).
   */
  buf: Buffer = EMPTY;
  /** name start, name end, value start, value end for every field line. */
  fields: number[] = [];
  host: string | undefined = undefined;
  hostCount = 0;
  contentLength = -1;
  chunked = false;
  /** Transfer-Encoding present (chunked or not). */
  hasTE = false;
  connClose = false;
  connKeepAlive = false;
  connUpgrade = false;
  upgrade = false;
  expectContinue = false;

  /** The first value of a field (name in lower case), latin1; undefined when absent. */
  header(lowerName: string): string | undefined {
    const f = this.fields;
    for (let i = 0; i < f.length; i += 4) {
      if (nameIs(this.buf, f[i]!, f[i + 1]!, lowerName)) return latin1(this.buf, f[i + 2]!, f[i + 3]!);
    }
    return undefined;
  }

  /** Every value of a field, in order. */
  headerAll(lowerName: string): string[] {
    const out: string[] = [];
    const f = this.fields;
    for (let i = 0; i < f.length; i += 4) {
      if (nameIs(this.buf, f[i]!, f[i + 1]!, lowerName)) out.push(latin1(this.buf, f[i + 2]!, f[i + 3]!));
    }
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

/** latin1 keeps every byte as one char, so nothing is lost or merged by decoding. */
function latin1(buf: Buffer, s: number, e: number): string {
  return buf.toString('latin1', s, e);
}

export class RequestHead extends HeadFields {
  method = '';
  /** The request-target as sent (latin1). */
  target = '';
  /** 10 or 11. */
  version = 11;
  /** Index just past the head in `buf`. */
  headEnd = 0;
  bodyKind = BODY_NONE;
  /** The normalised path (normalize.ts), set by the relay before matching. */
  path = '';

  /** The connection stays open after this request's response unless the response says otherwise. */
  get keepAlive(): boolean {
    return this.version === 11 ? !this.connClose : this.connKeepAlive && !this.connClose;
  }
}

export class ResponseHead extends HeadFields {
  status = 0;
  version = 11;
  headEnd = 0;

  get keepAlive(): boolean {
    return this.version === 11 ? !this.connClose : this.connKeepAlive && !this.connClose;
  }
}

/** Compares a field name in buf[s, e) with a lower-case literal, case-insensitively. */
function nameIs(buf: Buffer, s: number, e: number, lower: string): boolean {
  if (e - s !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let b = buf[s + i]!;
    if (b >= 65 && b <= 90) b |= 0x20;
    if (b !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Parses a complete request head in buf[start, headEnd) (headEnd from
 * findHeadEnd). Throws HttpError: 400 for anything malformed or ambiguous,
 * 501 for a transfer coding it does not know, 505 for an HTTP version other
 * than 1.0/1.1, 431 for too many fields.
 */
export function parseRequestHead(buf: Buffer, start: number, headEnd: number, limits: HeadLimits = DEFAULT_LIMITS): RequestHead {
  const h = new RequestHead();
  h.buf = buf;
  h.headEnd = headEnd;
  let i = start;
  // method
  while (TCHAR[buf[i]!]) i++;
  if (i === start || buf[i] !== SP) throw new HttpError(400, 'bad request line: method');
  h.method = latin1(buf, start, i);
  const t0 = ++i;
  while (TARGET[buf[i]!]) i++;
  if (i === t0 || buf[i] !== SP) throw new HttpError(400, 'bad request line: target');
  h.target = latin1(buf, t0, i);
  i++;
  h.version = parseVersion(buf, i);
  i += 8;
  if (buf[i] !== CR || buf[i + 1] !== LF) throw new HttpError(400, 'bad request line: version');
  i = parseFields(buf, i + 2, headEnd, h, limits);
  // Framing (RFC 9112 6.1-6.3): refuse every combination two parsers could read differently.
  if (h.hasTE) {
    if (h.contentLength >= 0) throw new HttpError(400, 'both Transfer-Encoding and Content-Length');
    if (h.version === 10) throw new HttpError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if (!h.chunked) throw new HttpError(400, 'Transfer-Encoding without chunked as the final coding');
    h.bodyKind = BODY_CHUNKED;
  } else if (h.contentLength > 0) h.bodyKind = BODY_LENGTH;
  if (h.version === 11 && h.hostCount === 0) throw new HttpError(400, 'HTTP/1.1 request without Host');
  if (h.hostCount > 1) throw new HttpError(400, 'more than one Host field');
  return h;
}

/**
 * Parses a complete response head. `requestMethod` and the status decide
 * whether a body follows (HEAD, 1xx, 204, 304 have none).
 */
export function parseResponseHead(buf: Buffer, start: number, headEnd: number, limits: HeadLimits = DEFAULT_LIMITS): ResponseHead {
  const h = new ResponseHead();
  h.buf = buf;
  h.headEnd = headEnd;
  h.version = parseVersion(buf, start);
  let i = start + 8;
  if (buf[i] !== SP) throw new HttpError(502, 'bad status line');
  const d0 = buf[i + 1]! - 48;
  const d1 = buf[i + 2]! - 48;
  const d2 = buf[i + 3]! - 48;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new HttpError(502, 'bad status code');
  h.status = d0 * 100 + d1 * 10 + d2;
  i += 4;
  if (buf[i] === SP) {
    i++;
    while (buf[i] !== CR) {
      if (!VALUE[buf[i]!]) throw new HttpError(502, 'bad reason phrase');
      i++;
    }
  } else if (buf[i] !== CR) throw new HttpError(502, 'bad status line');
  if (buf[i + 1] !== LF) throw new HttpError(502, 'bad status line');
  try {
    parseFields(buf, i + 2, headEnd, h, limits);
  } catch (err) {
    if (err instanceof HttpError) throw new HttpError(502, `upstream: ${err.message}`);
    throw err;
  }
  return h;
}

/** How the body of a response to `method` with head `h` is delimited. */
export function responseBodyKind(h: ResponseHead, method: string): number {
  if (method === 'HEAD' || h.status < 200 || h.status === 204 || h.status === 304) return BODY_NONE;
  if (h.hasTE) return h.chunked ? BODY_CHUNKED : BODY_CLOSE;
  if (h.contentLength >= 0) return h.contentLength > 0 ? BODY_LENGTH : BODY_NONE;
  return BODY_CLOSE;
}

/** "HTTP/1.1" at buf[i]: 11 or 10; 505 for another well-formed version, 400 otherwise. */
function parseVersion(buf: Buffer, i: number): number {
  if (buf[i] !== 72 || buf[i + 1] !== 84 || buf[i + 2] !== 84 || buf[i + 3] !== 80 || buf[i + 4] !== 47 || buf[i + 6] !== 46)
    throw new HttpError(400, 'bad HTTP version');
  const major = buf[i + 5]! - 48;
  const minor = buf[i + 7]! - 48;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) throw new HttpError(400, 'bad HTTP version');
  if (major !== 1 || minor > 1) throw new HttpError(505, 'HTTP version not supported');
  return minor === 1 ? 11 : 10;
}

/** Field lines from i to the empty line; fills h. Returns the index past the empty line. */
function parseFields(buf: Buffer, i: number, headEnd: number, h: HeadFields, limits: HeadLimits): number {
  const end = headEnd - 2; // the final CRLF
  let count = 0;
  while (i < end) {
    const b = buf[i]!;
    if (b === SP || b === HT) throw new HttpError(400, 'obs-fold (line folding) in a header');
    const n0 = i;
    while (TCHAR[buf[i]!]) i++;
    if (i === n0 || buf[i] !== COLON) throw new HttpError(400, 'bad header name');
    const n1 = i++;
    while (buf[i] === SP || buf[i] === HT) i++;
    const v0 = i;
    while (VALUE[buf[i]!]) i++;
    if (buf[i] !== CR || buf[i + 1] !== LF) throw new HttpError(400, 'bad header value');
    let v1 = i;
    while (v1 > v0 && (buf[v1 - 1] === SP || buf[v1 - 1] === HT)) v1--;
    i += 2;
    if (++count > limits.maxHeaders) throw new HttpError(431, 'too many header fields');
    h.fields.push(n0, n1, v0, v1);
    classify(buf, n0, n1, v0, v1, h);
  }
  return headEnd;
}

/** Records what the proxy itself needs from a field: framing, Host, connection options. */
function classify(buf: Buffer, n0: number, n1: number, v0: number, v1: number, h: HeadFields): void {
  switch (n1 - n0) {
    case 4:
      if (nameIs(buf, n0, n1, 'host')) {
        h.hostCount++;
        h.host = latin1(buf, v0, v1);
      }
      return;
    case 14:
      if (nameIs(buf, n0, n1, 'content-length')) {
        if (h.contentLength >= 0) throw new HttpError(400, 'more than one Content-Length');
        if (v1 === v0 || v1 - v0 > 15) throw new HttpError(400, 'invalid Content-Length');
        let n = 0;
        for (let i = v0; i < v1; i++) {
          const d = buf[i]! - 48;
          if (d < 0 || d > 9) throw new HttpError(400, 'invalid Content-Length');
          n = n * 10 + d;
        }
        h.contentLength = n;
      }
      return;
    case 17:
      if (nameIs(buf, n0, n1, 'transfer-encoding')) transferCodings(buf, v0, v1, h);
      return;
    case 10:
      if (nameIs(buf, n0, n1, 'connection')) connectionOptions(buf, v0, v1, h);
      return;
    case 7:
      if (nameIs(buf, n0, n1, 'upgrade')) h.upgrade = true;
      return;
    case 6:
      if (nameIs(buf, n0, n1, 'expect') && v1 - v0 === 12 && nameIs(buf, v0, v1, '100-continue')) h.expectContinue = true;
      return;
  }
}

const KNOWN_CODINGS = new Set(['chunked', 'gzip', 'x-gzip', 'deflate', 'compress', 'x-compress']);

/** A Transfer-Encoding list (several fields append): chunked must come last, once. */
function transferCodings(buf: Buffer, v0: number, v1: number, h: HeadFields): void {
  for (const raw of latin1(buf, v0, v1).split(',')) {
    const coding = raw.trim().toLowerCase();
    if (coding === '') continue;
    if (h.chunked) throw new HttpError(400, 'a transfer coding after chunked');
    for (let i = 0; i < coding.length; i++)
      if (!TCHAR[coding.charCodeAt(i)]) throw new HttpError(400, 'bad Transfer-Encoding');
    if (!KNOWN_CODINGS.has(coding)) throw new HttpError(501, `unknown transfer coding "${coding}"`);
    if (coding === 'chunked') h.chunked = true;
  }
  h.hasTE = true;
}

function connectionOptions(buf: Buffer, v0: number, v1: number, h: HeadFields): void {
  // Fast path for the single-option values almost everyone sends.
  if (v1 - v0 === 10 && nameIs(buf, v0, v1, 'keep-alive')) h.connKeepAlive = true;
  else if (v1 - v0 === 5 && nameIs(buf, v0, v1, 'close')) h.connClose = true;
  else
    for (const raw of latin1(buf, v0, v1).split(',')) {
      const opt = raw.trim().toLowerCase();
      if (opt === 'close') h.connClose = true;
      else if (opt === 'keep-alive') h.connKeepAlive = true;
      else if (opt === 'upgrade') h.connUpgrade = true;
    }
}

// Chunked framing states.
const C_SIZE0 = 0;
const C_SIZE = 1;
const C_EXT = 2;
const C_SIZE_LF = 3;
const C_DATA = 4;
const C_DATA_CR = 5;
const C_DATA_LF = 6;
const C_TRAILER0 = 7;
const C_TRAILER = 8;
const C_TRAILER_LF = 9;
const C_FINAL_LF = 10;

/** Bytes of chunk extensions and trailers allowed per message: they are metadata, not data. */
const MAX_CHUNK_META = 16384;

/**
 * Measures a message body as it streams through: tells where it ends without
 * copying it. advance() returns the index just past the body bytes it took from
 * buf[start, end); `done` turns true at the body's last byte.
 */
export class BodyFramer {
  kind = BODY_NONE;
  done = true;
  /** BODY_LENGTH: bytes left; chunked: bytes left in the current chunk. */
  remaining = 0;
  private state = C_SIZE0;
  private digits = 0;
  private meta = 0;
  /** Status for a malformed body: 400 for requests, 502 for responses. */
  private errorStatus = 400;

  reset(kind: number, length: number, errorStatus: number): void {
    this.kind = kind;
    this.errorStatus = errorStatus;
    this.remaining = kind === BODY_LENGTH ? length : 0;
    this.done = kind === BODY_NONE || (kind === BODY_LENGTH && length === 0);
    this.state = C_SIZE0;
    this.digits = 0;
    this.meta = 0;
  }

  advance(buf: Buffer, start: number, end: number): number {
    if (this.done) return start;
    switch (this.kind) {
      case BODY_LENGTH: {
        const n = end - start < this.remaining ? end - start : this.remaining;
        this.remaining -= n;
        if (this.remaining === 0) this.done = true;
        return start + n;
      }
      case BODY_CHUNKED:
        return this.chunked(buf, start, end);
      default:
        return end; // BODY_CLOSE: everything until the connection ends
    }
  }

  private fail(what: string): never {
    throw new HttpError(this.errorStatus, `bad chunked body: ${what}`);
  }

  private chunked(buf: Buffer, i: number, end: number): number {
    let state = this.state;
    while (i < end) {
      const b = buf[i]!;
      switch (state) {
        case C_SIZE0:
        case C_SIZE: {
          const d = HEX[b]!;
          if (d >= 0) {
            if (++this.digits > 12) this.fail('chunk size too large');
            this.remaining = this.remaining * 16 + d;
            state = C_SIZE;
          } else if (state === C_SIZE && (b === SEMI || b === SP || b === HT)) state = C_EXT;
          else if (state === C_SIZE && b === CR) state = C_SIZE_LF;
          else this.fail('bad chunk size');
          i++;
          break;
        }
        case C_EXT:
          if (b === CR) state = C_SIZE_LF;
          else if (!VALUE[b] || ++this.meta > MAX_CHUNK_META) this.fail('bad chunk extension');
          i++;
          break;
        case C_SIZE_LF:
          if (b !== LF) this.fail('CR without LF');
          i++;
          this.digits = 0;
          state = this.remaining === 0 ? C_TRAILER0 : C_DATA;
          break;
        case C_DATA: {
          const n = end - i < this.remaining ? end - i : this.remaining;
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) state = C_DATA_CR;
          break;
        }
        case C_DATA_CR:
          if (b !== CR) this.fail('chunk data longer than its size');
          i++;
          state = C_DATA_LF;
          break;
        case C_DATA_LF:
          if (b !== LF) this.fail('CR without LF');
          i++;
          state = C_SIZE0;
          break;
        case C_TRAILER0:
          if (b === CR) state = C_FINAL_LF;
          else if (TCHAR[b]) state = C_TRAILER;
          else this.fail('bad trailer field');
          if (++this.meta > MAX_CHUNK_META) this.fail('trailers too large');
          i++;
          break;
        case C_TRAILER:
          if (b === CR) state = C_TRAILER_LF;
          else if (!VALUE[b] || ++this.meta > MAX_CHUNK_META) this.fail('bad trailer field');
          i++;
          break;
        case C_TRAILER_LF:
          if (b !== LF) this.fail('CR without LF');
          i++;
          state = C_TRAILER0;
          break;
        case C_FINAL_LF:
          if (b !== LF) this.fail('CR without LF');
          this.state = state;
          this.done = true;
          return i + 1;
      }
    }
    this.state = state;
    return i;
  }
}
