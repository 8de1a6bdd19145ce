/**
 * tendril-docker's plugin socket: libnetwork's remote plugin protocol over
 * HTTP (each call a POST /Method with a JSON body). Every call goes to the
 * agent as it came (POST /v1/docker/plugin), which parses and answers it:
 * this process keeps no state.
 */
import { createServer, type Server } from 'node:http';
import type { ApiClient } from '../api/client.js';
import { closeServer, listenOnSocket } from '../api/server.js';
import { PLUGIN_CONTENT_TYPE, errorAnswer } from './protocol.js';

const MAX_BODY = 1 << 20;

export class PluginServer {
  private server: Server | undefined;

  constructor(
    readonly agent: ApiClient,
    readonly onAnswer: (method: string, answer: Record<string, unknown>) => void = () => undefined,
  ) {}

  async listen(socketPath: string): Promise<void> {
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
    // A socket file left by a killed tendril-docker is replaced.
    await listenOnSocket(server, socketPath, 'tendril-docker');
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await closeServer(server);
  }
}
