/**
 * An HTTP client for L7 tests, run inside pod namespaces. Each mode prints one
 * JSON value per response on stdout.
 *   node http.js fetch URL METHOD            Node's fetch (undici): {status, body}
 *   node http.js session HOST PORT           one keep-alive TCP connection; reads
 *                                            "METHOD PATH" lines on stdin, sends each
 *                                            request when its line arrives and prints
 *                                            {status, body, port} for its response
 *                                            (port: the connection's local port, so a
 *                                            test sees it stayed the same), or
 *                                            {closed: true} when the server closed
 *   node http.js raw HOST PORT BASE64        writes those bytes on a fresh connection
 *                                            and prints {text} of everything the server
 *                                            sent until it closed or 3 s passed
 * Exit status 0 unless the connection itself failed.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

interface Response {
  status: number;
  body: string;
}

/** Reads complete responses (Content-Length or chunked) off a socket, in order. */
class ResponseReader {
  private buf = Buffer.alloc(0);
  private waiting: Array<(r: Response | undefined) => void> = [];
  private closed = false;

  constructor(socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.drain();
    });
    const end = () => {
      this.closed = true;
      this.drain();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  next(): Promise<Response | undefined> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.drain();
    });
  }

  private drain(): void {
    while (this.waiting.length) {
      const r = this.parse();
      if (r) this.waiting.shift()!(r);
      else if (this.closed) this.waiting.shift()!(undefined);
      else return;
    }
  }

  private parse(): Response | undefined {
    const headEnd = this.buf.indexOf('\r\n\r\n');
    if (headEnd < 0) return undefined;
    const head = this.buf.subarray(0, headEnd).toString('latin1').split('\r\n');
    const status = Number(head[0]!.split(' ')[1]);
    const header = (name: string) => head.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim();
    let rest = this.buf.subarray(headEnd + 4);
    let body: Buffer;
    if (header('transfer-encoding')?.toLowerCase() === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const nl = rest.indexOf('\r\n');
        if (nl < 0) return undefined;
        const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
        if (rest.length < nl + 2 + size + 2) return undefined;
        parts.push(rest.subarray(nl + 2, nl + 2 + size));
        rest = rest.subarray(nl + 2 + size + 2);
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    } else {
      const length = Number(header('content-length') ?? 0);
      if (rest.length < length) return undefined;
      body = rest.subarray(0, length);
      rest = rest.subarray(length);
    }
    this.buf = rest;
    return { status, body: body.toString('utf8') };
  }
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port }, () => resolve(socket));
    socket.once('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

async function session(host: string, port: number): Promise<void> {
  const socket = await open(host, port);
  const reader = new ResponseReader(socket);
  const hostHeader = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  for await (const line of createInterface({ input: process.stdin })) {
    const [method, path] = line.trim().split(/\s+/);
    if (!method || !path) continue;
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\nContent-Length: 0\r\n\r\n`);
    const r = await reader.next();
    print(r ? { ...r, port: socket.localPort } : { closed: true });
    if (!r) break;
  }
  socket.end();
}

async function raw(host: string, port: number, data: Buffer): Promise<void> {
  const socket = await open(host, port);
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.write(data);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 3000);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  socket.destroy();
  print({ text, closed: socket.readableEnded });
}

async function main(): Promise<void> {
  const [mode, a, b, c] = process.argv.slice(2);
  switch (mode) {
    case 'fetch': {
      const res = await fetch(a!, { method: b ?? 'GET', signal: AbortSignal.timeout(10_000) });
      print({ status: res.status, body: await res.text() });
      break;
    }
    case 'session':
      await session(a!, Number(b));
      break;
    case 'raw':
      await raw(a!, Number(b), Buffer.from(c!, 'base64'));
      break;
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
