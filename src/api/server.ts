/**
 * The agent's REST API: JSON over HTTP on a Unix socket (mode 0600, root only).
 * Errors are `{ error: { code, message } }` with a status that matches the code.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { TendrilError, statusOf } from '../common/errors.js';

export interface RequestContext {
  params: Record<string, string>;
  query: Record<string, string>;
  body: unknown;
  req: IncomingMessage;
  res: ServerResponse;
}

/** A handler returns the JSON body, or `undefined` once it has answered itself (streams). */
export type Handler = (ctx: RequestContext) => Promise<unknown> | unknown;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

const MAX_BODY = 16 << 20; // policy files travel in bodies

export class ApiServer {
  private readonly routes: Route[] = [];
  private server: Server | undefined;

  route(method: string, path: string, handler: Handler): this {
    const pattern = new RegExp('^' + path.replace(/:(\w+)/g, '(?<$1>[^/]+)') + '$');
    this.routes.push({ method, pattern, handler });
    return this;
  }

  /** Refuses a socket another agent serves (checked before an agent touches any state, and again at listen). */
  static async assertFree(socketPath: string): Promise<void> {
    await assertSocketFree(socketPath, 'agent');
  }

  async listen(socketPath: string): Promise<void> {
    const server = createServer((req, res) => void this.dispatch(req, res));
    this.server = server;
    await listenOnSocket(server, socketPath, 'agent');
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await closeServer(server);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    try {
      let matchedPath = false;
      for (const route of this.routes) {
        const m = route.pattern.exec(url.pathname);
        if (!m) continue;
        matchedPath = true;
        if (route.method !== req.method) continue;
        const body = await readBody(req);
        const result = await route.handler({
          params: decodeParams(m.groups ?? {}),
          query: Object.fromEntries(url.searchParams),
          body,
          req,
          res,
        });
        if (result !== undefined) sendJson(res, req.method === 'POST' ? 201 : 200, result);
        return;
      }
      throw new TendrilError(matchedPath ? 'invalid-argument' : 'not-found', matchedPath ? `${req.method} is not allowed on ${url.pathname}` : `no such API route: ${url.pathname}`);
    } catch (err) {
      const e = err instanceof TendrilError ? err : new TendrilError('internal', (err as Error).message ?? String(err));
      if (!(err instanceof TendrilError)) console.error(`agent: ${req.method} ${url.pathname}:`, err);
      if (!res.headersSent) sendJson(res, statusOf(e.code), { error: { code: e.code, message: e.message } });
      else res.end();
    }
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new TendrilError('invalid-argument', `request body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new TendrilError('invalid-argument', 'request body is not valid JSON');
  }
}

/** Refuses a socket that another process (`who`) still serves. */
async function assertSocketFree(socketPath: string, who: string): Promise<void> {
  if (existsSync(socketPath) && (await socketAnswers(socketPath))) throw new TendrilError('conflict', `another ${who} is serving ${socketPath}: stop it first`);
}

/**
 * Serves `server` on a Unix socket only root can use. A socket file nothing
 * answers on (left by a killed process) is replaced; one that answers is
 * another `who`'s, and refused.
 */
export async function listenOnSocket(server: Server, socketPath: string, who: string): Promise<void> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  await assertSocketFree(socketPath, who);
  if (existsSync(socketPath)) unlinkSync(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
}

/** Stops serving, open connections included. */
export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Path parameters arrive percent-encoded ("shop%2Fweb"); a malformed escape is left as written. */
function decodeParams(groups: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(groups)) {
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}
