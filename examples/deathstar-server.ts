/**
 * The deathstar of the demo: a small HTTP service a pod runs on port 80.
 *   POST /v1/request-landing   200 "Ship landed"
 *   PUT  /v1/exhaust-port      503 "Panic: deathstar exploded" (the weakness
 *                              an L7 policy is there to protect)
 *   GET  /v1                   what the API offers
 * Usage: node deathstar-server.js [PORT] [NAME]; prints "listening" when ready.
 */
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 80);
const name = process.argv[3] ?? 'deathstar';

const routes: Record<string, { status: number; body: string }> = {
  'POST /v1/request-landing': { status: 200, body: 'Ship landed\n' },
  'PUT /v1/exhaust-port': { status: 503, body: 'Panic: deathstar exploded\n' },
  'GET /v1': { status: 200, body: JSON.stringify({ name, api: ['POST /v1/request-landing', 'PUT /v1/exhaust-port'] }) + '\n' },
};

const server = createServer((req, res) => {
  // Drain the body (ships may send one); answer when the request is complete.
  req.resume();
  req.on('end', () => {
    const route = routes[`${req.method} ${(req.url ?? '').split('?')[0]}`] ?? { status: 404, body: 'Not found\n' };
    res.writeHead(route.status, { 'content-type': 'text/plain', 'x-served-by': name });
    res.end(route.body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, () => process.stdout.write(`listening on ${port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
