/**
 * Typed client of the agent's REST API over its Unix socket, used by the CLI,
 * tests and (later) the CNI plugin.
 */
import { request } from 'node:http';
import { TendrilError, codeOfStatus } from '../common/errors.js';
import type { Endpoint } from '../endpoint/endpoint.js';
import type { MonitorEvent } from '../monitor/event.js';
import type { MapSummary } from '../datapath/map-views.js';
import type { AddEndpointBody, AddServiceBody, UpdateServiceBody } from './schemas.js';
import type { ServiceView, AgentStatus, IdentityView, PolicyDeleteResult, PolicyDetail, PolicyImportResult, PolicySummaryView, PolicyTraceResult } from './types.js';

export const DEFAULT_SOCKET = '/run/tendril/agent.sock';

export class ApiClient {
  constructor(readonly socketPath: string = DEFAULT_SOCKET) {}

  status(): Promise<AgentStatus> {
    return this.call('GET', '/v1/status');
  }

  listEndpoints(): Promise<Endpoint[]> {
    return this.call('GET', '/v1/endpoints');
  }

  getEndpoint(id: number | string): Promise<Endpoint> {
    return this.call('GET', `/v1/endpoints/${encodeURIComponent(String(id))}`);
  }

  addEndpoint(body: AddEndpointBody): Promise<Endpoint> {
    return this.call('POST', '/v1/endpoints', body);
  }

  relabelEndpoint(id: number | string, change: { set?: Record<string, string>; remove?: string[] }): Promise<Endpoint> {
    return this.call('POST', `/v1/endpoints/${encodeURIComponent(String(id))}/labels`, change);
  }

  deleteEndpoint(id: number | string): Promise<Endpoint> {
    return this.call('DELETE', `/v1/endpoints/${encodeURIComponent(String(id))}`);
  }

  listMaps(): Promise<MapSummary[]> {
    return this.call('GET', '/v1/maps');
  }

  dumpMap(name: string): Promise<Array<Record<string, unknown>>> {
    return this.call('GET', `/v1/maps/${encodeURIComponent(name)}`);
  }

  importPolicies(files: Array<{ file: string; text: string }>): Promise<PolicyImportResult> {
    return this.call('POST', '/v1/policies', { files });
  }

  listPolicies(): Promise<PolicySummaryView[]> {
    return this.call('GET', '/v1/policies');
  }

  getPolicy(name: string): Promise<PolicyDetail> {
    return this.call('GET', `/v1/policies/${encodeURIComponent(name)}`);
  }

  deletePolicy(name: string): Promise<PolicyDeleteResult> {
    return this.call('DELETE', `/v1/policies/${encodeURIComponent(name)}`);
  }

  deleteAllPolicies(): Promise<PolicyDeleteResult> {
    return this.call('DELETE', '/v1/policies');
  }

  tracePolicy(query: { src: string; dst: string; dport: string }): Promise<PolicyTraceResult> {
    return this.call('POST', '/v1/policy-trace', query);
  }

  listIdentities(): Promise<IdentityView[]> {
    return this.call('GET', '/v1/identities');
  }

  getIdentity(id: number | string): Promise<IdentityView> {
    return this.call('GET', `/v1/identities/${encodeURIComponent(String(id))}`);
  }

  listServices(): Promise<ServiceView[]> {
    return this.call('GET', '/v1/services');
  }

  getService(id: number | string): Promise<ServiceView> {
    return this.call('GET', `/v1/services/${encodeURIComponent(String(id))}`);
  }

  addService(body: AddServiceBody): Promise<ServiceView> {
    return this.call('POST', '/v1/services', body);
  }

  updateService(id: number | string, changes: UpdateServiceBody): Promise<ServiceView> {
    return this.call('PATCH', `/v1/services/${encodeURIComponent(String(id))}`, changes);
  }

  /** Answers the service as it was. */
  deleteService(id: number | string): Promise<ServiceView> {
    return this.call('DELETE', `/v1/services/${encodeURIComponent(String(id))}`);
  }

  /** Streams events until `signal` aborts or the agent goes away. */
  async monitor(query: { type?: string; endpoint?: string }, onEvent: (ev: MonitorEvent) => void, signal?: AbortSignal): Promise<void> {
    const qs = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined) as [string, string][]);
    const res = await this.open('GET', `/v1/monitor${qs.size ? `?${qs}` : ''}`, undefined, signal);
    if (res.statusCode !== 200) throw await errorOf(res);
    let buffered = '';
    await new Promise<void>((resolve, reject) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.trim()) onEvent(JSON.parse(line) as MonitorEvent);
        }
      });
      res.on('end', resolve);
      res.on('close', resolve);
      res.on('error', (err) => (signal?.aborted ? resolve() : reject(err)));
    });
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.open(method, path, body);
    const text = await readAll(res);
    if ((res.statusCode ?? 500) >= 400) throw errorFromBody(res.statusCode ?? 500, text);
    return JSON.parse(text) as T;
  }

  private open(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<import('node:http').IncomingMessage> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        { socketPath: this.socketPath, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}, signal },
        resolve,
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')
          reject(new TendrilError('unavailable', `cannot reach the agent at ${this.socketPath}: is tendril-agent running? (set --socket or TENDRIL_SOCKET)`));
        else if (err.code === 'EACCES') reject(new TendrilError('unavailable', `no permission to use ${this.socketPath}: run as root`));
        else reject(err);
      });
      req.end(payload);
    });
  }
}

function readAll(res: import('node:http').IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}

async function errorOf(res: import('node:http').IncomingMessage): Promise<TendrilError> {
  return errorFromBody(res.statusCode ?? 500, await readAll(res));
}

function errorFromBody(status: number, text: string): TendrilError {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error?.message) return new TendrilError(codeOfStatus(status), body.error.message);
  } catch {
    // fall through
  }
  return new TendrilError(codeOfStatus(status), `agent answered ${status}: ${text.slice(0, 200)}`);
}
