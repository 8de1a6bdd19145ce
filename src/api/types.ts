/** Shapes of API answers that have no home in a subsystem. */
import type { MapSummary } from '../datapath/map-views.js';

export interface AgentStatus {
  node: string;
  version: string;
  pid: number;
  uptimeSec: number;
  socket: string;
  stateDir: string;
  podRanges: { ipv4: string; ipv6: string };
  router: { ipv4: string; ipv6: string };
  datapath: { bpffs: string; pinRoot: string; object: string; programsAttached: number };
  maps: MapSummary[];
  endpoints: number;
  monitor: { eventsReceived: number; subscribers: number };
}
