/**
 * Where a node's datapath lives in bpffs:
 *   <bpffs>/tendril/<node>/maps/<map>                 node-wide maps
 *   <bpffs>/tendril/<node>/endpoints/<id>/<ingress|egress>   the endpoint's TCX links
 * Pinned links keep programs attached while no agent runs.
 */
import { join } from 'node:path';

export class PinPaths {
  constructor(
    readonly bpffs: string,
    readonly node: string,
  ) {}

  get root(): string {
    return join(this.bpffs, 'tendril', this.node);
  }

  get maps(): string {
    return join(this.root, 'maps');
  }

  endpointDir(id: number): string {
    return join(this.root, 'endpoints', String(id));
  }

  endpointLink(id: number, direction: 'ingress' | 'egress'): string {
    return join(this.endpointDir(id), direction);
  }
}
