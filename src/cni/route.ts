/**
 * POST /v1/cni: one CNI call as tendril-cni forwards it, {"env": {CNI_*},
 * "stdin": "..."}, answered {"exitCode": N, "output": JSON or null}. The
 * answer's layout is what tendril-cni reads (exitCode first, then output),
 * so it is built here and nowhere else.
 */
import { invalid } from '../common/errors.js';
import type { RequestContext } from '../api/server.js';
import { runCni, type CniBackend, type CniAnswer } from './commands.js';

const ENV_KEYS = new Set(['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH']);

export function cniRoute(backend: CniBackend): (ctx: RequestContext) => Promise<CniAnswer> {
  return async ({ body }) => {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('POST /v1/cni needs {"env": {...}, "stdin": "..."}');
    const { env, stdin } = body as Record<string, unknown>;
    if (typeof stdin !== 'string') throw invalid('POST /v1/cni: "stdin" must be a string');
    if (typeof env !== 'object' || env === null || Array.isArray(env)) throw invalid('POST /v1/cni: "env" must be an object');
    const vars: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) {
      if (!ENV_KEYS.has(k)) throw invalid(`POST /v1/cni: "env" has ${k}; only ${[...ENV_KEYS].join(', ')} are read`);
      if (typeof v !== 'string') throw invalid(`POST /v1/cni: env ${k} must be a string`);
      vars[k] = v;
    }
    const answer = await runCni(backend, vars, stdin);
    return { exitCode: answer.exitCode, output: answer.output };
  };
}
