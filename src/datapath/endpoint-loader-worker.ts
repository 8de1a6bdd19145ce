/**
 * The worker thread of EndpointProgramLoader: loads lxc.o for one endpoint
 * at a time (libbpf and the kernel's verifier run here, not on the agent's
 * event loop) and hands back its two programs as file descriptors, which
 * are the process's, so the agent's thread attaches them. The object is
 * closed here; the programs live on in the duplicated descriptors.
 */
import { parentPort } from 'node:worker_threads';
import { BpfMap, BpfObject } from '../bpf/index.js';
import { dupFd } from '../sys/index.js';
import type { LoaderReply, LoaderRequest } from './endpoint-loader.js';

parentPort!.on('message', (req: LoaderRequest) => {
  let reply: LoaderReply;
  try {
    const reuseMaps = Object.fromEntries(Object.entries(req.reuseFds).map(([name, fd]) => [name, new BpfMap(fd, false, name)]));
    const obj = BpfObject.open(req.objectPath, { constants: { CONFIG: Buffer.from(req.config) }, innerValueSizes: req.innerValueSizes, reuseMaps });
    try {
      obj.load();
      reply = { seq: req.seq, fds: Object.fromEntries(req.programs.map((name) => [name, dupFd(obj.program(name).fd)])) };
    } finally {
      obj.close();
    }
  } catch (err) {
    const e = err as Error & { errno?: number; verifierLog?: string };
    reply = { seq: req.seq, error: { name: e.name, message: e.message, ...(e.errno !== undefined ? { errno: e.errno } : {}), ...(e.verifierLog ? { verifierLog: e.verifierLog } : {}) } };
  }
  parentPort!.postMessage(reply);
});
