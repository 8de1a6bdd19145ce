/**
 * The proxy's engine: judges every HTTP request of a steered connection and
 * relays the allowed ones to the original destination, byte for byte.
 *
 * One request is in flight per client connection at a time: pipelined
 * requests wait in the connection's buffer (the socket is paused), which
 * returns responses in request order without queueing responses. Bodies and
 * responses stream with backpressure and are never buffered whole. Upstream
 * connections are pooled per original destination, so a keep-alive client
 * costs no connection setup per request. Timeouts are deadlines checked by one
 * sweep per relay, not a timer per request.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { L7Event, L7PolicyTable, ProxyFlow, ProxyStats } from '../common/l7-policy.js';
import { formatHostPort } from '../common/ip.js';
import { markedTcpSocket } from '../sys/socket.js';
import {
  BODY_CLOSE,
  BodyFramer,
  DEFAULT_LIMITS,
  HttpError,
  findHeadEnd,
  parseRequestHead,
  parseResponseHead,
  responseBodyKind,
  type HeadLimits,
  type RequestHead,
} from './http-parse.js';
import { normalizePath } from './normalize.js';
import { ReadBuffers, ReadTarget, onreadServer } from './read-buffers.js';
import { CompiledPolicy, type FlowRules } from './rules.js';

/** TND_MARK_FROM_PROXY: the datapath passes these packets without judging them as the node's. */
export const MARK_FROM_PROXY = 0x7e510000;

export interface FlowKey {
  family: 4 | 6;
  srcAddr: string;
  srcPort: number;
  dstAddr: string;
  dstPort: number;
}

/** Where the proxy learns what the datapath recorded for a flow (the proxy flow map, or a test's table). */
export interface FlowSource {
  lookup(key: FlowKey): ProxyFlow | undefined;
}

export interface Destination {
  address: string;
  port: number;
  family: 4 | 6;
}

export interface RelayOptions {
  flows: FlowSource;
  /**
   * The connection's original destination. Default: the accepted socket's
   * local address, which is the original one on a transparent listener.
   * Tests and benchmarks map it to a server of their own.
   */
  originalDestination?: (socket: net.Socket) => Destination | undefined;
  /** A connecting socket to `dest`, reading through `onread`. Default: a socket marked MARK_FROM_PROXY. */
  connectUpstream?: (dest: Destination, onread: net.OnReadOpts) => net.Socket;
  /** A request head must be complete this long after its first byte (or the connection's start): else 408. */
  headerTimeoutMs?: number;
  /** A keep-alive connection with no request in flight is closed after this long. */
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** From the request sent to the response head received: else 504. */
  responseTimeoutMs?: number;
  limits?: HeadLimits;
  /** Idle upstream connections kept per destination. */
  maxIdlePerDestination?: number;
}

export function localDestination(socket: net.Socket): Destination | undefined {
  const address = socket.localAddress;
  const port = socket.localPort;
  if (!address || !port) return undefined;
  return { address, port, family: net.isIPv6(address) ? 6 : 4 };
}

/** The production upstream socket: marked from its SYN on, so the datapath lets it through as the proxy's. */
export function markedUpstream(dest: Destination, onread: net.OnReadOpts): net.Socket {
  const fd = markedTcpSocket(dest.family, MARK_FROM_PROXY);
  const sock = new net.Socket({ fd, readable: true, writable: true, onread } as net.SocketConstructorOpts);
  sock.setNoDelay(true);
  sock.connect(dest.port, dest.address);
  return sock;
}

export function plainUpstream(dest: Destination, onread: net.OnReadOpts): net.Socket {
  return net.connect({ port: dest.port, host: dest.address, noDelay: true, onread });
}

function canned(status: number, reason: string, body: string, close: boolean): Buffer {
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n${body}`,
    'latin1',
  );
}

const DENIED_KEEP = canned(403, 'Forbidden', 'Access denied', false);
const DENIED_CLOSE = canned(403, 'Forbidden', 'Access denied', true);
const ERRORS: Record<number, Buffer> = {
  400: canned(400, 'Bad Request', 'Bad request', true),
  408: canned(408, 'Request Timeout', 'Request timeout', true),
  431: canned(431, 'Request Header Fields Too Large', 'Request header fields too large', true),
  501: canned(501, 'Not Implemented', 'Not implemented', true),
  502: canned(502, 'Bad Gateway', 'Bad gateway', true),
  503: canned(503, 'Service Unavailable', 'Service unavailable', true),
  504: canned(504, 'Gateway Timeout', 'Gateway timeout', true),
  505: canned(505, 'HTTP Version Not Supported', 'HTTP version not supported', true),
};

const EMPTY_POLICY: L7PolicyTable = { revision: 0, endpoints: [], ruleNames: {} };

// Client connection states.
const S_HEAD = 0;
const S_BODY = 1;
const S_WAIT = 2;
const S_TUNNEL = 3;
const S_CLOSED = 4;

// Deadline kinds.
const K_NONE = 0;
const K_HEADER = 1;
const K_IDLE = 2;
const K_BODY = 3;
const K_RESPONSE = 4;
const K_LINGER = 5;

// Upstream states.
const U_IDLE = 0;
const U_HEAD = 1;
const U_BODY = 2;
const U_TUNNEL = 3;


export class Relay {
  readonly stats: ProxyStats = { connections: 0, activeConnections: 0, requests: 0, allowed: 0, denied: 0, errors: 0 };
  /** Build L7Events only while someone watches. */
  monitoring = false;
  policy: CompiledPolicy = new CompiledPolicy(EMPTY_POLICY);
  onEvent: ((e: L7Event) => void) | undefined = undefined;
  /** Coarse clock for deadlines, advanced by the sweep. */
  now = Date.now();
  draining = false;

  readonly flows: FlowSource;
  readonly originalDestination: (socket: net.Socket) => Destination | undefined;
  readonly connectUpstream: (dest: Destination, onread: net.OnReadOpts) => net.Socket;
  readonly reads = new ReadBuffers();
  readonly headerTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly limits: HeadLimits;
  private readonly maxIdle: number;
  private readonly conns = new Set<ClientConn>();
  private readonly pool = new Map<string, Upstream[]>();
  private readonly timer: NodeJS.Timeout;
  private drained: (() => void) | undefined;

  constructor(opts: RelayOptions) {
    this.flows = opts.flows;
    this.originalDestination = opts.originalDestination ?? localDestination;
    this.connectUpstream = opts.connectUpstream ?? markedUpstream;
    this.headerTimeoutMs = opts.headerTimeoutMs ?? 10_000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
    this.responseTimeoutMs = opts.responseTimeoutMs ?? 60_000;
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.maxIdle = opts.maxIdlePerDestination ?? 256;
    const shortest = Math.min(this.headerTimeoutMs, this.idleTimeoutMs, this.connectTimeoutMs, this.responseTimeoutMs);
    const tick = Math.max(5, Math.min(250, Math.floor(shortest / 4)));
    this.timer = setInterval(() => this.sweep(), tick);
    this.timer.unref();
  }

  setPolicy(table: L7PolicyTable): void {
    this.policy = new CompiledPolicy(table);
  }

  /** A server whose connections this relay handles (tests; the worker listens on a transparent fd with it). */
  createServer(): net.Server {
    return onreadServer(this.reads, this.handle);
  }

  /** An accepted connection; `target` is where its reads arrive when it reads through `onread`. */
  readonly handle = (socket: net.Socket, target?: ReadTarget): void => {
    this.stats.connections++;
    const dest = this.originalDestination(socket);
    const srcAddr = socket.remoteAddress;
    const srcPort = socket.remotePort;
    const flow =
      dest && srcAddr && srcPort
        ? this.flows.lookup({ family: dest.family, srcAddr, srcPort, dstAddr: dest.address, dstPort: dest.port })
        : undefined;
    if (!dest || !flow || this.draining) {
      // Not a flow the datapath steered here (or shutting down): refuse it outright.
      this.stats.errors++;
      socket.on('error', () => {});
      socket.resetAndDestroy();
      return;
    }
    this.stats.activeConnections++;
    this.conns.add(new ClientConn(this, socket, flow, dest, target));
  };

  /** Called by a connection once it is closed. */
  forget(c: ClientConn): void {
    if (this.conns.delete(c)) this.stats.activeConnections--;
    if (this.drained && this.conns.size === 0) this.drained();
  }

  emit(e: L7Event): void {
    this.onEvent?.(e);
  }

  acquire(c: ClientConn): Upstream {
    const list = this.pool.get(c.destKey);
    while (list !== undefined && list.length > 0) {
      const u = list.pop()!;
      if (u.dead) continue;
      u.client = c;
      u.reused = true;
      return u;
    }
    return this.connect(c);
  }

  connect(c: ClientConn): Upstream {
    const target = new ReadTarget();
    const u = new Upstream(this, this.connectUpstream(c.dest, this.reads.options(target)), c.destKey, target);
    u.client = c;
    return u;
  }

  release(u: Upstream): void {
    u.client = null;
    u.state = U_IDLE;
    if (u.dead) return;
    let list = this.pool.get(u.key);
    if (list === undefined) this.pool.set(u.key, (list = []));
    if (list.length >= this.maxIdle || this.draining) u.sock.destroy();
    else list.push(u);
  }

  unpool(u: Upstream): void {
    const list = this.pool.get(u.key);
    if (!list) return;
    const i = list.indexOf(u);
    if (i >= 0) list.splice(i, 1);
  }

  private sweep(): void {
    const now = (this.now = Date.now());
    for (const c of this.conns) if (c.deadline !== 0 && c.deadline <= now) c.timeout();
  }

  /**
   * Stops taking requests: idle connections close now, busy ones after their
   * current response. Resolves when none is left (or after `graceMs`, closing the rest).
   */
  drain(graceMs = 10_000): Promise<void> {
    this.draining = true;
    for (const c of [...this.conns]) c.drainNow();
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        for (const c of [...this.conns]) c.destroy();
        resolve();
      }, graceMs);
      t.unref();
      this.drained = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  close(): void {
    clearInterval(this.timer);
    for (const c of [...this.conns]) c.destroy();
    for (const list of this.pool.values()) for (const u of list) u.sock.destroy();
    this.pool.clear();
  }
}

/** One upstream connection; its parsing state lives here, decisions in its client. */
class Upstream {
  client: ClientConn | null = null;
  state = U_IDLE;
  reused = false;
  dead = false;
  connected = false;
  /** Bytes of the response to the current request arrived. */
  got = false;
  /** The connection may carry another request after this response. */
  keepAlive = true;
  pending: Buffer | null = null;
  scanned = 0;
  readonly framer = new BodyFramer();

  constructor(
    readonly relay: Relay,
    readonly sock: net.Socket,
    readonly key: string,
    target: ReadTarget,
  ) {
    target.onBytes = this.onData;
    sock.on('drain', this.onDrain);
    sock.on('end', this.onEnd);
    sock.on('close', this.onClose);
    sock.on('error', this.onError);
    sock.once('connect', this.onConnect);
  }

  send(out: Buffer): void {
    this.state = U_HEAD;
    this.got = false;
    this.pending = null;
    this.scanned = 0;
    this.relay.reads.write(this.sock, out);
  }

  private readonly onConnect = (): void => {
    this.connected = true;
    this.client?.upstreamConnected();
  };

  private readonly onDrain = (): void => {
    this.client?.sock.resume();
  };

  private readonly onData = (chunk: Buffer): void => {
    this.receive(chunk);
    // A partial head waits for more bytes: it outlives this read.
    if (this.pending !== null) this.pending = this.relay.reads.own(this.pending);
  };

  private receive(chunk: Buffer): void {
    const c = this.client;
    if (c === null || this.state === U_IDLE) {
      // Bytes nobody asked for: the connection is out of step, never reuse it.
      this.sock.destroy();
      return;
    }
    this.got = true;
    if (this.state === U_TUNNEL) {
      if (!this.relay.reads.write(c.sock, chunk)) this.sock.pause();
      return;
    }
    if (this.state === U_BODY) {
      let n: number;
      try {
        n = this.framer.advance(chunk, 0, chunk.length);
      } catch {
        c.upstreamBroken();
        return;
      }
      if (n < chunk.length) this.keepAlive = false; // bytes past the response: out of step
      if (!this.relay.reads.write(c.sock, n === chunk.length ? chunk : chunk.subarray(0, n))) this.sock.pause();
      if (this.framer.done) c.responseDone(this.keepAlive);
      return;
    }
    this.headBytes(c, chunk);
  }

  private headBytes(c: ClientConn, chunk: Buffer): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    const limits = this.relay.limits;
    for (;;) {
      let end: number;
      let head;
      try {
        end = findHeadEnd(buf, 0, buf.length, this.scanned, limits.maxHeadSize);
        if (end < 0) {
          this.pending = buf;
          this.scanned = buf.length > 3 ? buf.length - 3 : 0;
          return;
        }
        head = parseResponseHead(buf, 0, end, limits);
      } catch {
        c.upstreamBroken();
        return;
      }
      this.pending = null;
      this.scanned = 0;
      if (head.status === 101) {
        if (!c.upgrade) {
          c.upstreamBroken();
          return;
        }
        this.state = U_TUNNEL;
        c.toTunnel(head.status);
        if (!this.relay.reads.write(c.sock, buf)) this.sock.pause();
        return;
      }
      if (head.status < 200) {
        // 100 Continue and friends: pass on, the final response follows.
        this.relay.reads.write(c.sock, buf.subarray(0, end));
        if (end === buf.length) return;
        buf = buf.subarray(end);
        continue;
      }
      const kind = responseBodyKind(head, c.method);
      this.keepAlive = head.keepAlive && kind !== BODY_CLOSE;
      this.framer.reset(kind, head.contentLength, 502);
      let n: number;
      try {
        n = this.framer.advance(buf, end, buf.length);
      } catch {
        c.upstreamBroken();
        return;
      }
      if (n < buf.length) this.keepAlive = false;
      c.responseHead(head.status, head.keepAlive && kind !== BODY_CLOSE);
      if (!this.relay.reads.write(c.sock, n === buf.length ? buf : buf.subarray(0, n))) this.sock.pause();
      if (this.framer.done) c.responseDone(this.keepAlive);
      else this.state = U_BODY;
      return;
    }
  }

  private readonly onEnd = (): void => {
    if (this.state === U_TUNNEL) this.client?.sock.end();
    this.gone(false);
  };

  private readonly onError = (): void => {
    this.gone(true);
  };

  private readonly onClose = (): void => {
    this.gone(false);
  };

  private gone(error: boolean): void {
    if (this.dead) return;
    this.dead = true;
    this.sock.destroy();
    const c = this.client;
    this.client = null;
    if (c === null) {
      this.relay.unpool(this);
      return;
    }
    c.upstreamGone(this, error);
  }
}

/** One accepted client connection and the request it has in flight. */
class ClientConn {
  state = S_HEAD;
  pending: Buffer | null = null;
  scanned = 0;
  up: Upstream | null = null;
  deadline = 0;
  deadlineKind = K_NONE;
  readonly destKey: string;
  private rules: FlowRules;
  private policy: CompiledPolicy;
  private inLoop = false;
  private clientEnded = false;
  private closeAfter = false;
  /** A request was seen on this connection (a later wait is keep-alive idle time). */
  private served = false;
  // The request in flight.
  private head: RequestHead | null = null;
  method = '';
  upgrade = false;
  private allowed = false;
  private ruleId = -1;
  private readonly framer = new BodyFramer();
  private bodyDone = true;
  private respDone = true;
  private respStarted = false;
  /** The whole request when it arrived in one piece: resent once if a pooled connection was stale. */
  private whole: Buffer | null = null;
  private retried = false;
  private tHead = 0;
  private timeHead = 0;

  constructor(
    readonly relay: Relay,
    readonly sock: net.Socket,
    readonly flow: ProxyFlow,
    readonly dest: Destination,
    target: ReadTarget | undefined,
  ) {
    this.destKey = formatHostPort(dest.address, dest.port);
    this.policy = relay.policy;
    this.rules = this.policy.forFlow(flow, dest.port);
    if (target !== undefined) target.onBytes = this.onData;
    else sock.on('data', this.onData);
    sock.on('drain', this.onDrain);
    sock.on('end', this.onEnd);
    sock.on('close', this.onClose);
    sock.on('error', this.onError);
    this.setDeadline(K_HEADER, relay.headerTimeoutMs);
  }

  private setDeadline(kind: number, ms: number): void {
    this.deadlineKind = kind;
    this.deadline = this.relay.now + ms;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.receive(chunk);
    // Bytes waiting for their turn (a partial head, a pipelined request) outlive this read.
    if (this.pending !== null) this.pending = this.relay.reads.own(this.pending);
  };

  private receive(chunk: Buffer): void {
    switch (this.state) {
      case S_HEAD:
        this.append(chunk);
        this.parseLoop();
        return;
      case S_BODY:
        if (this.pending !== null) this.append(chunk);
        else this.bodyBytes(chunk);
        return;
      case S_WAIT:
        // A pipelined request: it waits until the response in flight is complete.
        this.append(chunk);
        this.sock.pause();
        return;
      case S_TUNNEL:
        if (this.up !== null && !this.relay.reads.write(this.up.sock, chunk)) this.sock.pause();
        return;
    }
  }

  private append(chunk: Buffer): void {
    this.pending = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
  }

  private bodyBytes(chunk: Buffer): void {
    let n: number;
    try {
      n = this.framer.advance(chunk, 0, chunk.length);
    } catch (err) {
      this.fail(err);
      return;
    }
    const up = this.up;
    if (up !== null && n > 0) {
      if (!this.relay.reads.write(up.sock, n === chunk.length ? chunk : chunk.subarray(0, n))) this.sock.pause();
      if (this.deadlineKind === K_BODY) this.deadline = this.relay.now + this.relay.idleTimeoutMs;
    }
    if (n < chunk.length) this.pending = chunk.subarray(n);
    if (this.framer.done) this.bodyFinished();
  }

  private bodyFinished(): void {
    this.bodyDone = true;
    if (this.up === null || this.respDone) this.finishRequest();
    else {
      this.state = S_WAIT;
      if (!this.respStarted) this.setDeadline(K_RESPONSE, this.relay.responseTimeoutMs);
      if (this.pending !== null) this.sock.pause();
    }
  }

  private readonly onDrain = (): void => {
    const up = this.up;
    if (up !== null) up.sock.resume();
  };

  /** Takes every complete request from the buffer, one at a time. */
  private parseLoop(): void {
    if (this.inLoop) return;
    this.inLoop = true;
    try {
      while (this.state === S_HEAD && this.pending !== null) {
        const buf = this.pending;
        let start = 0;
        // Empty lines before a request line are allowed (RFC 9112 2.2).
        while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
        const end = findHeadEnd(buf, start, buf.length, this.scanned, this.relay.limits.maxHeadSize);
        if (end < 0) {
          this.scanned = buf.length > start + 3 ? buf.length - 3 : start;
          if (this.deadlineKind !== K_HEADER) this.setDeadline(K_HEADER, this.relay.headerTimeoutMs);
          break;
        }
        this.scanned = 0;
        this.startRequest(parseRequestHead(buf, start, end, this.relay.limits), buf, start, end);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.inLoop = false;
    }
    if (this.state === S_HEAD) {
      // A client that half-closed gets the responses to what it sent, then the end.
      if (this.clientEnded || (this.pending === null && this.relay.draining)) this.end();
      else if (this.pending === null) this.setDeadline(K_IDLE, this.relay.idleTimeoutMs);
    }
  }

  private startRequest(head: RequestHead, buf: Buffer, start: number, end: number): void {
    const relay = this.relay;
    relay.stats.requests++;
    this.served = true;
    const path = normalizePath(head.target, head.method);
    if (path === undefined) throw new HttpError(400, 'request-target cannot be normalised');
    head.path = path;
    if (relay.policy !== this.policy) {
      // A new table applies from the next request on; the connection stays.
      this.policy = relay.policy;
      this.rules = this.policy.forFlow(this.flow, this.dest.port);
    }
    this.head = head;
    this.method = head.method;
    this.upgrade = head.upgrade && head.connUpgrade;
    this.closeAfter = !head.keepAlive || relay.draining;
    this.respStarted = false;
    this.retried = false;
    if (relay.monitoring) {
      this.tHead = performance.now();
      this.timeHead = Date.now();
    }
    const framer = this.framer;
    framer.reset(head.bodyKind, head.contentLength, 400);
    const ruleId = this.rules.decide(head);
    this.ruleId = ruleId;
    this.allowed = ruleId >= 0;
    const n = framer.advance(buf, end, buf.length);
    this.pending = n < buf.length ? buf.subarray(n) : null;
    this.bodyDone = framer.done;
    if (!this.allowed) {
      relay.stats.denied++;
      // With Expect: 100-continue the client may or may not send the body now: do not guess.
      if (head.expectContinue && !framer.done) this.closeAfter = true;
      this.respDone = true;
      this.sock.write(this.closeAfter ? DENIED_CLOSE : DENIED_KEEP);
      if (relay.monitoring) this.event(403);
      this.up = null;
      if (framer.done) this.finishRequest();
      else if (this.closeAfter) this.end();
      else {
        this.state = S_BODY;
        this.setDeadline(K_BODY, relay.idleTimeoutMs);
      }
      return;
    }
    relay.stats.allowed++;
    this.respDone = false;
    const out = start === 0 && n === buf.length ? buf : buf.subarray(start, n);
    const up = relay.acquire(this);
    // Kept to resend once if the pooled connection turns out stale.
    this.whole = framer.done && up.reused ? this.relay.reads.own(out) : null;
    this.up = up;
    up.send(out);
    if (framer.done) {
      this.state = S_WAIT;
      this.setDeadline(K_RESPONSE, up.connected ? relay.responseTimeoutMs : relay.connectTimeoutMs);
      if (this.pending !== null) this.sock.pause();
    } else {
      this.state = S_BODY;
      this.setDeadline(K_BODY, up.connected ? relay.idleTimeoutMs : relay.connectTimeoutMs);
    }
  }

  upstreamConnected(): void {
    if (this.deadlineKind === K_RESPONSE) this.deadline = this.relay.now + this.relay.responseTimeoutMs;
    else if (this.deadlineKind === K_BODY) this.deadline = this.relay.now + this.relay.idleTimeoutMs;
  }

  /** The response head went (or is going) to the client. */
  responseHead(status: number, keepAlive: boolean): void {
    this.respStarted = true;
    if (!keepAlive) this.closeAfter = true;
    if (this.state === S_WAIT) this.deadlineKind = K_NONE;
    if (this.relay.monitoring) this.event(status);
  }

  responseDone(reusable: boolean): void {
    this.respDone = true;
    const up = this.up;
    this.up = null;
    if (up !== null) {
      if (reusable && this.bodyDone) this.relay.release(up);
      else {
        up.client = null;
        up.sock.destroy();
      }
    }
    if (this.bodyDone) this.finishRequest();
    else {
      // The server answered before the body ended: the rest of the body goes nowhere.
      this.sock.resume();
    }
  }

  /** The request and its response are both complete: next request, or close. */
  private finishRequest(): void {
    this.head = null;
    this.whole = null;
    if (this.closeAfter) {
      this.end();
      return;
    }
    this.state = S_HEAD;
    this.sock.resume();
    this.parseLoop();
  }

  toTunnel(status: number): void {
    this.state = S_TUNNEL;
    this.deadlineKind = K_NONE;
    this.deadline = 0;
    this.respStarted = true;
    if (this.relay.monitoring) this.event(status);
    const up = this.up!;
    up.client = this;
    if (this.pending !== null) {
      this.relay.reads.write(up.sock, this.pending);
      this.pending = null;
    }
    this.sock.resume();
    if (this.clientEnded) up.sock.end();
  }

  /** The upstream sent something that is not HTTP, or a 101 nobody asked for. */
  upstreamBroken(): void {
    const up = this.up;
    this.up = null;
    if (up !== null) {
      up.client = null;
      up.sock.destroy();
    }
    this.relay.stats.errors++;
    if (!this.respStarted) this.reply(502);
    else this.destroy();
  }

  upstreamGone(up: Upstream, error: boolean): void {
    if (this.up !== up) return;
    this.up = null;
    if (this.state === S_TUNNEL) {
      this.end();
      return;
    }
    if (up.state === U_BODY && up.framer.kind === BODY_CLOSE && !error) {
      // A close-delimited response is complete when its connection ends.
      this.closeAfter = true;
      this.respDone = true;
      if (this.bodyDone) this.finishRequest();
      else this.end();
      return;
    }
    if (!up.got && !this.respStarted) {
      if (up.reused && this.whole !== null && !this.retried) {
        // A pooled connection the server had closed: resend once on a fresh one.
        this.retried = true;
        const fresh = this.relay.connect(this);
        this.up = fresh;
        fresh.send(this.whole);
        this.setDeadline(K_RESPONSE, this.relay.connectTimeoutMs);
        return;
      }
      this.relay.stats.errors++;
      this.reply(502);
      return;
    }
    this.relay.stats.errors++;
    this.destroy();
  }

  /** Deadline passed (from the relay's sweep). */
  timeout(): void {
    const kind = this.deadlineKind;
    this.deadline = 0;
    this.deadlineKind = K_NONE;
    switch (kind) {
      case K_HEADER:
        this.relay.stats.errors++;
        if (this.pending !== null || !this.served) this.sockReply(408);
        else this.end();
        return;
      case K_IDLE:
        this.end();
        return;
      case K_LINGER:
        this.destroy();
        return;
      case K_BODY:
        this.relay.stats.errors++;
        this.destroy();
        return;
      case K_RESPONSE:
        this.relay.stats.errors++;
        if (this.up !== null) {
          this.up.client = null;
          this.up.sock.destroy();
          this.up = null;
        }
        if (!this.respStarted) this.reply(504);
        else this.destroy();
        return;
    }
  }

  /** An error response the proxy answers itself for the request in flight, then close. */
  private reply(status: number): void {
    if (this.relay.monitoring && this.head !== null) this.event(status);
    this.sockReply(status);
  }

  private sockReply(status: number): void {
    this.state = S_CLOSED;
    this.pending = null;
    this.sock.end(ERRORS[status] ?? ERRORS[400]);
    this.linger();
  }

  /** After our end, the client has a moment to read it and close; then the socket goes. */
  private linger(): void {
    this.setDeadline(K_LINGER, 2000);
  }

  /** A malformed request: answer and close without reading further. */
  private fail(err: unknown): void {
    this.relay.stats.errors++;
    const status = err instanceof HttpError ? err.status : 400;
    if (this.up !== null) {
      this.up.client = null;
      this.up.sock.destroy();
      this.up = null;
    }
    if (this.state === S_BODY && this.respStarted) {
      this.destroy();
      return;
    }
    this.sock.pause();
    this.sockReply(status);
  }

  private event(status: number): void {
    const head = this.head;
    const flow = this.flow;
    this.relay.emit({
      time: this.timeHead,
      srcIdentity: flow.srcIdentity,
      dstIdentity: flow.dstIdentity,
      srcEndpoint: flow.srcEndpoint,
      dstEndpoint: flow.dstEndpoint,
      source: formatHostPort(this.sock.remoteAddress ?? '', this.sock.remotePort ?? 0),
      destination: this.destKey,
      method: head?.method ?? '',
      path: head?.path ?? '',
      ...(head?.host !== undefined ? { host: head.host } : {}),
      verdict: this.allowed ? 'allow' : 'deny',
      status,
      latencyMs: status === 403 ? 0 : performance.now() - this.tHead,
      ruleId: this.allowed ? this.ruleId : 0,
    });
  }

  drainNow(): void {
    if (this.state === S_HEAD && this.pending === null) this.end();
    else this.closeAfter = true;
  }

  private end(): void {
    if (this.state === S_CLOSED) return;
    this.state = S_CLOSED;
    this.pending = null;
    this.sock.end();
    this.linger();
  }

  destroy(): void {
    this.state = S_CLOSED;
    this.sock.destroy();
  }

  private readonly onEnd = (): void => {
    this.clientEnded = true;
    switch (this.state) {
      case S_HEAD:
        if (!this.inLoop) this.end();
        return;
      case S_BODY:
        if (this.up !== null) this.relay.stats.errors++;
        this.destroy();
        return;
      case S_TUNNEL:
        this.up?.sock.end();
        return;
    }
    // S_WAIT: the response still goes out; parseLoop ends the connection once nothing is left.
  };

  private readonly onError = (): void => {
    this.destroy();
  };

  private readonly onClose = (): void => {
    this.state = S_CLOSED;
    this.deadline = 0;
    const up = this.up;
    this.up = null;
    if (up !== null) {
      up.client = null;
      up.sock.destroy();
    }
    this.relay.forget(this);
  };
}
