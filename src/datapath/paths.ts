/**
 * Where a node's datapath lives in bpffs:
 *   <bpffs>/tendril/<node>/maps/<map>     node-wide maps
 *   <bpffs>/tendril/<node>/links/<name>   links of node-wide programs (socket LB)
 * Pinned maps keep their state (endpoints, connections) while no agent runs;
 * endpoint programs are held by their tc filters.
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

  get links(): string {
    return join(this.root, 'links');
  }

}
