/**
 * The agent's tendril-docker routes:
 *   POST /v1/docker/plugin                     one remote plugin call, {"method", "body"} -> Docker's answer
 *   GET  /v1/docker/pending                    endpoints whose container's labels are not applied yet
 *   POST /v1/docker/endpoints/:id/activate     {"labels": {...}}: applied, traffic let through
 */
import { invalid } from '../common/errors.js';
import { normalizeLabels } from '../common/labels.js';
import type { ApiServer } from '../api/server.js';
import { runPlugin } from './commands.js';
import type { AgentDockerBackend } from './agent-backend.js';

export function registerDockerRoutes(api: ApiServer, backend: AgentDockerBackend): void {
  api
    .route('POST', '/v1/docker/plugin', ({ body }) => {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('POST /v1/docker/plugin needs {"method": "NetworkDriver.Join", "body": "..."}');
      const { method, body: text } = body as Record<string, unknown>;
      if (typeof method !== 'string') throw invalid('POST /v1/docker/plugin: "method" must be a string');
      if (typeof text !== 'string') throw invalid('POST /v1/docker/plugin: "body" must be a string (the call\'s JSON as Docker sent it)');
      return runPlugin(backend, method, text);
    })
    .route('GET', '/v1/docker/pending', () => backend.pending())
    .route('POST', '/v1/docker/endpoints/:id/activate', ({ params, body }) => {
      const labels = (body as { labels?: unknown } | undefined)?.labels;
      if (typeof labels !== 'object' || labels === null || Array.isArray(labels) || Object.values(labels).some((v) => typeof v !== 'string'))
        throw invalid('POST /v1/docker/endpoints/ID/activate needs {"labels": {"key": "value", ...}}');
      return backend.activate(params.id!, normalizeLabels(labels as Record<string, string>));
    });
}
