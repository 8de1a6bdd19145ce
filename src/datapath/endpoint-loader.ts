/**
 * Loads endpoint programs on a worker thread. Loading lxc.o (libbpf, then
 * the kernel's verifier) takes tens of milliseconds; on the agent's event
 * loop it would hold up every request meanwhile. The worker does one load at
 * a time and answers with program descriptors (endpoint-loader-worker.ts).
 * Loads wait here, not in the worker, so an urgent one (an add that could
 * not use a prepared endpoint) goes before the preparations queued.
 */
import { Worker } from 'node:worker_threads';
import { BpfProgram } from '../bpf/index.js';
import { LoadedEndpointPrograms, endpointLoadRequest, ENDPOINT_PROGRAMS, type EndpointDatapathSpec } from './endpoint-programs.js';
import type { NodeMaps } from './node-maps.js';

export interface LoaderRequest {
  seq: number;
  objectPath: string;
  config: Uint8Array;
  innerValueSizes: Record<string, number>;
  reuseFds: Record<string, number>;
  programs: readonly string[];
}

export type LoaderReply =
  | { seq: number; fds: Record<string, number> }
  | { seq: number; error: { name: string; message: string; errno?: number; verifierLog?: string } };

interface Waiter {
  resolve(p: LoadedEndpointPrograms): void;
  reject(err: Error): void;
}

interface Queued extends Waiter {
  req: LoaderRequest;
}

export class EndpointProgramLoader implements Disposable {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Waiter>();
  private readonly queue: Queued[] = [];
  private seq = 0;
  private failure: Error | undefined;

  constructor() {
    this.worker = new Worker(new URL('./endpoint-loader-worker.js', import.meta.url));
    this.worker.unref(); // an idle loader does not keep the agent alive
    this.worker.on('message', (reply: LoaderReply) => this.settle(reply));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`the endpoint program loader exited (${code})`)));
  }

  /** The endpoint's programs, loaded and verified, not attached; `urgent` ones go first. */
  load(maps: NodeMaps, spec: EndpointDatapathSpec, options: { urgent?: boolean } = {}): Promise<LoadedEndpointPrograms> {
    if (this.failure) return Promise.reject(this.failure);
    const r = endpointLoadRequest(maps, spec);
    const req: LoaderRequest = {
      seq: ++this.seq,
      objectPath: r.objectPath,
      config: r.config,
      innerValueSizes: r.innerValueSizes,
      reuseFds: Object.fromEntries(Object.entries(r.reuseMaps).map(([name, map]) => [name, map.fd])),
      programs: ENDPOINT_PROGRAMS,
    };
    return new Promise((resolve, reject) => {
      const queued = { req, resolve, reject };
      if (options.urgent) this.queue.unshift(queued);
      else this.queue.push(queued);
      this.next();
    });
  }

  /** Hands the worker the next load when it has none. */
  private next(): void {
    if (this.waiting.size > 0) return;
    const queued = this.queue.shift();
    if (!queued) {
      this.worker.unref(); // an idle loader does not keep the agent alive
      return;
    }
    this.waiting.set(queued.req.seq, queued);
    this.worker.ref(); // a load under way keeps it
    this.worker.postMessage(queued.req);
  }

  close(): void {
    this.fail(new Error('the endpoint program loader is closed'));
    void this.worker.terminate();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private settle(reply: LoaderReply): void {
    const waiter = this.waiting.get(reply.seq);
    this.waiting.delete(reply.seq);
    this.next();
    if ('error' in reply) {
      waiter?.reject(Object.assign(new Error(reply.error.message), reply.error));
      return;
    }
    const programs = Object.fromEntries(Object.entries(reply.fds).map(([name, fd]) => [name, new BpfProgram(fd, true, name)]));
    const loaded = new LoadedEndpointPrograms(programs);
    if (waiter) waiter.resolve(loaded);
    else loaded.close();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of [...this.waiting.values(), ...this.queue.splice(0)]) w.reject(err);
    this.waiting.clear();
  }
}
