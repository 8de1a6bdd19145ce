/**
 * tendril-docker's plugin socket: libnetwork's remote plugin protocol over
 * HTTP (each call a POST /Method with a JSON body). Every call goes to the
 * agent as it came (POST /v1/docker/plugin), which parses and answers it:
 * this process keeps no state.
 */
import { createServer, type Server } from 'node:http';
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ApiClient } from '../api/client.js';
import { PLUGIN_CONTENT_TYPE, errorAnswer } from './protocol.js';

const MAX_BODY = 1 << 20;

export class PluginServer {
  private server: Server | undefined;

  constructor(
    readonly agent: ApiClient,
    readonly onAnswer: (method: string, answer: Record<string, unknown>) => void = () => undefined,
  ) {}

  async listen(socketPath: string): Promise<void> {
    mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
    // A socket file left by a killed tendril-docker: nothing answers on it.
    if (existsSync(socketPath)) unlinkSync(socketPath);
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY) chunks.push(c);
      });
      req.on('end', () => {
        const method = (req.url ?? '/').replace(/^\//, '').split('?')[0]!;
        const send = (answer: Record<string, unknown>) => {
          const text = JSON.stringify(answer);
          res.writeHead('Err' in answer ? 500 : 200, { 'content-type': PLUGIN_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
          res.end(text);
          this.onAnswer(method, answer);
        };
        if (req.method !== 'POST') return send(errorAnswer(`${req.method} ${req.url}: plugin calls are POST /Method`));
        if (size > MAX_BODY) return send(errorAnswer(`${method}: the body is larger than ${MAX_BODY} bytes`));
        this.agent
          .call<Record<string, unknown>>('POST', '/v1/docker/plugin', { method, body: Buffer.concat(chunks).toString('utf8') })
          .then(send, (err: Error) => send(errorAnswer(`tendril agent: ${err.message}`)));
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    chmodSync(socketPath, 0o600);
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
