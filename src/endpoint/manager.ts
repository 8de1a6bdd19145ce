/**
 * Endpoint lifecycle: add (addresses, veth, programs, map entries, pod
 * config), delete (every trace removed), and restore after an agent restart,
 * which adopts what is still in place instead of re-creating it.
 *
 * An add must be quick (a runtime waits for it: CNI ADD), and most of its
 * work does not depend on the pod: the endpoint's id, addresses and MACs,
 * its programs (lxc.o specialised with them, verified by the kernel) and an
 * empty policy map in place. So that work is done ahead, for the next few
 * endpoints (prepared slots, loaded on a worker thread), and an add takes a
 * slot and only makes the links, settles identity and policy, and attaches.
 */
import { randomBytes } from 'node:crypto';
import { TendrilError, conflict, invalid, notFound } from '../common/errors.js';
import { parseIP, formatMac, parseMac } from '../common/ip.js';
import { formatLabels, normalizeLabels, type Labels } from '../common/labels.js';
import { keyAddress } from '../common/wire-values.js';
import { Mutex } from '../common/mutex.js';
import { TndEndpointFlags, type TndEndpointKey } from '../bpf/generated/wire.js';
import { ifNameToIndex } from '../sys/index.js';
import { NodeMaps } from '../datapath/node-maps.js';
import { attachEndpointPrograms, endpointDatapathVersion, endpointProgramsAttached, loadAndAttachEndpointPrograms, type LoadedEndpointPrograms } from '../datapath/endpoint-programs.js';
import { EndpointProgramLoader } from '../datapath/endpoint-loader.js';
import { addressPod, createVeth, deleteLink, linkExists, listLinks, netnsInode, setLinkUpWithRoute } from '../link/veth.js';
import { Ipam, type IpamState, type PodRanges } from '../ipam/ipam.js';
import { StateFile } from '../node/state-file.js';
import type { PortMap } from '../common/lb.js';
import { MAX_ENDPOINT_ID, type CniAttachment, type DockerAttachment, type Endpoint } from './endpoint.js';

interface EndpointState {
  version: 1;
  nextId: number;
  ipam: IpamState;
  endpoints: Endpoint[];
}

export interface AddEndpointRequest {
  netns: string;
  labels?: Record<string, string>;
  ifname?: string;
  /** Validated already (parsePortMaps); the hooks make them real. */
  portMaps?: PortMap[];
  /** A CNI ADD's: at most one endpoint per (network, container id, ifname). */
  attachment?: CniAttachment;
  /**
   * Docker's model (tendril-docker): the pod side stays down in the node
   * netns under `ifname`, a temporary name; Docker moves it into the
   * container, renames and addresses it. `netns` is empty then.
   */
  peerInNodeNetns?: boolean;
  /** The pod side's MAC when the runtime chose it (Docker); default random. */
  podMac?: string;
  /** Addresses reserved by reserveAddresses(owner): the endpoint uses them, the reservation keeps owning them. */
  reservation?: string;
  /** tendril-docker's: at most one endpoint per Docker endpoint id. */
  docker?: DockerAttachment;
  /**
   * Made held: it carries nothing (host side down, no endpoints-map entry, so
   * no program delivers to it) until unhold() sets its labels and lets it
   * through. For a runtime that names the container only after attaching it.
   */
  held?: boolean;
}

/**
 * What the rest of the agent does when an endpoint comes and goes (identity,
 * policy, its port maps): attach runs before the endpoint's first packet and
 * returns its identity (a failure fails the add and removes the endpoint);
 * detach undoes it. Both run again for every endpoint kept at a restore.
 */
export interface EndpointHooks {
  attach(ep: Endpoint): Promise<number>;
  detach(endpointId: number): Promise<void>;
  /** The endpoint's labels changed (ep has the new ones): its new identity. */
  relabel(ep: Endpoint): Promise<number>;
}

/** An endpoint made ahead of time, waiting for its pod. */
interface PreparedSlot {
  id: number;
  ipv4: string;
  ipv6: string;
  podMac: string;
  hostMac: string;
  hostIfname: string;
  maglevSize: number;
  /** Its programs once loaded and its empty policy is in place. */
  ready: Promise<LoadedEndpointPrograms>;
  /** Set when `ready` has resolved. */
  loaded: boolean;
}

/**
 * How many endpoints are kept prepared. A load takes 45-70 ms of CPU here
 * and an add with a slot ready about 10 ms, so a burst of adds (a rollout,
 * a runtime starting many containers) lives on the pool; past it, adds wait
 * for loads.
 */
const PREPARED_SLOTS = 8;

export interface RestoreReport {
  adopted: number;
  reattached: number;
  removed: number;
}

export class EndpointManager {
  private readonly endpoints = new Map<number, Endpoint>();
  private readonly mutex = new Mutex();
  private readonly store: StateFile<EndpointState>;
  private ipam: Ipam;
  private nextId = 1;
  private readonly loader = new EndpointProgramLoader();
  private readonly slots: PreparedSlot[] = [];
  private closed = false;

  constructor(
    readonly maps: NodeMaps,
    readonly ranges: PodRanges,
    stateDir: string,
    readonly hooks: EndpointHooks,
    readonly options: { traceAll?: boolean } = {},
  ) {
    this.store = new StateFile(stateDir, 'endpoints.json');
    this.ipam = new Ipam(ranges);
  }

  get routerIPv4(): string {
    return this.ipam.routerIPv4;
  }

  get routerIPv6(): string {
    return this.ipam.routerIPv6;
  }

  list(): Endpoint[] {
    return [...this.endpoints.values()].sort((a, b) => a.id - b.id);
  }

  get(id: number): Endpoint {
    const ep = this.endpoints.get(id);
    if (!ep) throw notFound(`endpoint ${id} does not exist (see "tendril endpoint list")`);
    return ep;
  }

  count(): number {
    return this.endpoints.size;
  }

  add(req: AddEndpointRequest): Promise<Endpoint> {
    return this.mutex.run(() => this.addLocked(req));
  }

  /**
   * Sets and removes labels of an endpoint: it moves to the identity of the
   * new label set and policy follows at once (the datapath reads the
   * identity from the endpoints map, so no program is reloaded).
   */
  relabel(id: number, change: { set: Record<string, string>; remove: string[] }): Promise<Endpoint> {
    return this.mutex.run(async () => {
      const ep = this.get(id);
      for (const key of change.remove) {
        if (!(key in ep.labels)) throw invalid(`endpoint ${id} has no label "${key}" to remove (its labels: ${formatLabels(ep.labels) || 'none'})`);
        if (key in change.set) throw invalid(`label "${key}" is both set and removed`);
      }
      const next: Record<string, string> = { ...ep.labels, ...change.set };
      for (const key of change.remove) delete next[key];
      const labels = normalizeLabels(next);
      const updated: Endpoint = { ...ep, labels };
      updated.identity = await this.hooks.relabel(updated);
      this.endpoints.set(id, updated);
      this.writeMapEntries(updated);
      this.save();
      return updated;
    });
  }

  /**
   * Docker's IPAM hands out addresses before the network driver makes the
   * endpoint: they are held under `owner` (a "kind:" prefix keeps it apart
   * from endpoint ids) until releaseAddresses. Asking again answers the same.
   */
  reserveAddresses(owner: string): Promise<{ ipv4: string; ipv6: string }> {
    return this.mutex.run(async () => {
      if (!/^[a-z]+:/.test(owner)) throw invalid(`reservation owner "${owner}" needs a "kind:" prefix`);
      const held = this.reservedAddresses(owner);
      if (held) return held;
      const addrs = this.ipam.allocate(owner);
      this.save();
      return addrs;
    });
  }

  /** The reservation holding `address` (either family), if any. */
  reservationOf(address: string): string | undefined {
    for (const [owner, addrs] of Object.entries(this.ipam.snapshot().allocations)) if (/^[a-z]+:/.test(owner) && addrs.includes(address)) return owner;
    return undefined;
  }

  /** Ends a reservation; an endpoint still using its addresses keeps it. Nothing held: not an error. */
  releaseAddresses(owner: string): Promise<boolean> {
    return this.mutex.run(async () => {
      for (const ep of this.endpoints.values()) {
        if (ep.reservation === owner) throw conflict(`endpoint ${ep.id} still uses the addresses of ${owner}`);
      }
      if (!this.reservedAddresses(owner)) return false;
      this.ipam.release(owner);
      this.save();
      return true;
    });
  }

  private reservedAddresses(owner: string): { ipv4: string; ipv6: string } | undefined {
    const held = this.ipam.snapshot().allocations[owner];
    return held ? { ipv4: held[0]!, ipv6: held[1]! } : undefined;
  }

  /** Sets a held endpoint's labels, then lets its traffic through (see AddEndpointRequest.held). Not held: as it is. */
  unhold(id: number, labels: Record<string, string>): Promise<Endpoint> {
    return this.mutex.run(async () => {
      const ep = this.get(id);
      if (!ep.held) return ep;
      const { held: _held, ...rest } = ep;
      const updated: Endpoint = { ...rest, labels: normalizeLabels({ ...ep.labels, ...labels }) };
      // Identity and map entries before the link: its first packet meets its own policy.
      updated.identity = await this.hooks.relabel(updated);
      this.writeMapEntries(updated);
      setLinkUpWithRoute(ep.hostIfname, ep.ipv4, ep.ipv6 ? { address: ep.ipv6, podMac: ep.podMac } : undefined);
      this.endpoints.set(id, updated);
      this.save();
      return updated;
    });
  }

  /** The endpoint tendril-docker made for a Docker endpoint id, if any. */
  findDocker(endpointId: string): Endpoint | undefined {
    for (const ep of this.endpoints.values()) if (ep.docker?.endpointId === endpointId) return ep;
    return undefined;
  }

  /**
   * Waits for the adds and deletes asked for before: a runtime whose plugin
   * died mid-ADD cleans up with DEL or GC, which must see that add's outcome.
   */
  settled(): Promise<void> {
    return this.mutex.run(async () => undefined);
  }

  /** The endpoint a CNI ADD made for (network, container id, ifname), if any. */
  findAttachment(network: string, containerId: string, ifname: string): Endpoint | undefined {
    for (const ep of this.endpoints.values()) {
      if (ep.attachment?.network === network && ep.attachment.containerId === containerId && ep.ifname === ifname) return ep;
    }
    return undefined;
  }

  delete(id: number): Promise<Endpoint> {
    return this.mutex.run(async () => {
      const ep = this.get(id);
      await this.teardown(ep, () => {
        // The record goes while the kernel removes the device: if the agent
        // stops in between, the next one removes the device (restore()).
        this.endpoints.delete(id);
        this.ipam.release(String(id));
        this.save();
      });
      // Its address may be what a full range lacked for the pool.
      this.refillSoon();
      return ep;
    });
  }

  /** Reads the state dir and reconciles it with what the kernel holds. */
  restore(): Promise<RestoreReport> {
    return this.mutex.run(async () => {
      const state = this.store.read();
      const report: RestoreReport = { adopted: 0, reattached: 0, removed: 0 };
      if (state) {
        if (state.version !== 1) throw new TendrilError('precondition', `state file ${this.store.path} has version ${state.version}; this agent reads version 1`);
        this.ipam = new Ipam(this.ranges, state.ipam);
        this.nextId = state.nextId;
        for (const ep of state.endpoints) this.endpoints.set(ep.id, ep);
      }
      for (const ep of [...this.endpoints.values()]) {
        const alive = linkExists(ep.hostIfname) && safeIndex(ep.hostIfname) === ep.ifindex;
        if (!alive) {
          // The pod's namespace (and with it the veth) went away while no agent ran.
          await this.teardown(ep);
          this.endpoints.delete(ep.id);
          this.ipam.release(String(ep.id));
          report.removed++;
          continue;
        }
        ep.identity = await this.hooks.attach(ep);
        if (endpointProgramsAttached(ep.ifindex) && ep.datapath === endpointDatapathVersion()) {
          report.adopted++;
        } else {
          // Missing, or built by another version: replaced in place (no packet meets no program).
          loadAndAttachEndpointPrograms(this.maps, this.datapathSpec(ep));
          ep.datapath = endpointDatapathVersion();
          report.reattached++;
        }
        this.writeMapEntries(ep); // idempotent: the same values again
      }
      // Devices of endpoints deleted while an agent stopped before the kernel was done.
      const known = new Set([...this.endpoints.values()].map((ep) => ep.hostIfname));
      for (const name of listLinks().filter((n) => HOST_IFNAME.test(n) && !known.has(n))) await deleteLink(name);
      // Empty policies of slots an agent prepared and never used (it was killed).
      const stale = this.maps.policy.endpoints().filter((id) => !this.endpoints.has(id));
      await Promise.all(stale.map((id) => this.maps.policy.removeAsync(id)));
      this.save();
      this.refill();
      return report;
    });
  }

  private async addLocked(req: AddEndpointRequest): Promise<Endpoint> {
    const inode = req.peerInNodeNetns ? 0 : netnsInode(req.netns);
    if (req.peerInNodeNetns && req.netns) throw invalid('an endpoint whose pod side stays in the node netns names no netns');
    const reserved = req.reservation === undefined ? undefined : this.reservedAddresses(req.reservation);
    if (req.reservation !== undefined && !reserved) throw notFound(`no addresses are reserved for "${req.reservation}"`);
    for (const other of this.endpoints.values()) {
      if (!req.peerInNodeNetns && (other.netnsInode === inode || other.netns === req.netns))
        throw conflict(`netns "${req.netns}" is attached already as endpoint ${other.id}`);
      if (reserved && other.reservation === req.reservation) throw conflict(`endpoint ${other.id} uses the addresses of ${req.reservation} already`);
      if (req.docker && other.docker?.endpointId === req.docker.endpointId) throw conflict(`Docker endpoint ${req.docker.endpointId} is endpoint ${other.id} already`);
      const a = req.attachment;
      if (a && other.attachment?.network === a.network && other.attachment.containerId === a.containerId && other.ifname === (req.ifname ?? 'eth0'))
        throw conflict(`container ${a.containerId} has ${other.ifname} on network ${a.network} already (endpoint ${other.id})`);
    }
    const labels: Labels = normalizeLabels(req.labels ?? {});
    // Programs are built for the endpoint's addresses and MAC: given ones need their own.
    const podMac = req.podMac !== undefined ? formatMac(parseMac(req.podMac)) : undefined;
    const slot = reserved || podMac ? this.prepareSlot({ ...(reserved ? { addrs: reserved } : {}), ...(podMac ? { podMac } : {}) }, true) : this.takeSlot();
    const { id } = slot;
    const ep: Endpoint = {
      id,
      netns: req.netns,
      netnsInode: inode,
      ifname: req.ifname ?? 'eth0',
      hostIfname: slot.hostIfname,
      ifindex: 0,
      podMac: slot.podMac,
      hostMac: slot.hostMac,
      ipv4: slot.ipv4,
      ipv6: slot.ipv6,
      labels,
      identity: 0,
      ...(req.portMaps?.length ? { portMaps: req.portMaps } : {}),
      ...(req.attachment ? { attachment: { ...req.attachment } } : {}),
      ...(req.docker ? { docker: { ...req.docker } } : {}),
      ...(req.reservation !== undefined ? { reservation: req.reservation } : {}),
      ...(req.held ? { held: true } : {}),
      createdAt: new Date().toISOString(),
    };
    const spec = { hostName: ep.hostIfname, hostMac: ep.hostMac, netns: ep.netns, podIfname: ep.ifname, podMac: ep.podMac };
    try {
      createVeth(spec);
      ep.ifindex = ifNameToIndex(ep.hostIfname);
      // Docker addresses the pod side itself, once it has moved it.
      if (!req.peerInNodeNetns) addressPod(spec, { ipv4: ep.ipv4, ipv6: ep.ipv6, routerIPv4: this.routerIPv4, routerIPv6: this.routerIPv6 });
      // The slot's empty policy must be in place before the first install fills it.
      using programs = await slot.ready;
      // Identity and policy before the first packet: the datapath is default-deny.
      ep.identity = await this.hooks.attach(ep);
      attachEndpointPrograms(ep.ifindex, programs);
      ep.datapath = endpointDatapathVersion();
      this.writeMapEntries(ep);
      // The host side comes up last, so the pod's first packet finds programs and map entries in place.
      if (!ep.held) setLinkUpWithRoute(ep.hostIfname, ep.ipv4, ep.ipv6 ? { address: ep.ipv6, podMac: ep.podMac } : undefined);
    } catch (err) {
      await this.teardown(ep).catch(() => undefined);
      await this.discard(slot).catch(() => undefined);
      throw err;
    }
    this.endpoints.set(id, ep);
    this.save();
    return ep;
  }

  /** Drops the prepared slots (their programs, empty policies and addresses); endpoints stay. */
  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    await Promise.allSettled(slots.map((slot) => this.discard(slot)));
    this.loader.close();
    // The maps close after this: removals still under way finish first.
    await this.maps.policy.settled();
  }

  /** A prepared slot for an add, and a new one started in its place. */
  private takeSlot(): PreparedSlot {
    const maglevSize = this.maps.lb().maglevSize;
    // Programs built for another Maglev table size would read it wrong.
    for (const stale of this.slots.filter((s) => s.maglevSize !== maglevSize)) {
      this.slots.splice(this.slots.indexOf(stale), 1);
      void this.discard(stale);
    }
    const slot = this.slots.shift() ?? this.prepareSlot({}, true);
    this.refillSoon();
    return slot;
  }

  /** Prepares endpoints up to the pool's size once the current request has answered, not on its way. */
  private refillSoon(): void {
    setImmediate(() => {
      try {
        this.refill();
      } catch (err) {
        process.emitWarning(`preparing endpoints failed: ${(err as Error).message}`);
      }
    });
  }

  /** Best effort: with the range (or the ids) nearly used up, adds prepare their own endpoint. */
  private refill(): void {
    try {
      while (!this.closed && this.slots.length < PREPARED_SLOTS) this.slots.push(this.prepareSlot());
    } catch (err) {
      if (!(err instanceof TendrilError && err.code === 'exhausted')) throw err;
    }
  }

  /**
   * A new slot; `given` addresses (a reservation's, not the slot's own) and
   * pod MAC are the runtime's. `urgent`: an add waits for it, so its load
   * goes before the preparations queued.
   */
  private prepareSlot(given: { addrs?: { ipv4: string; ipv6: string }; podMac?: string } = {}, urgent = false): PreparedSlot {
    const id = this.allocateId();
    const addrs = given.addrs ?? this.ipam.allocate(String(id));
    this.nextId = id + 1 > MAX_ENDPOINT_ID ? 1 : id + 1;
    const slot = {
      id,
      ipv4: addrs.ipv4,
      ipv6: addrs.ipv6,
      podMac: given.podMac ?? randomMac(),
      hostMac: randomMac(),
      hostIfname: hostIfname(id),
      maglevSize: this.maps.lb().maglevSize,
    };
    const spec = { ...slot, ifindex: 0, identity: 0, routerIPv4: this.routerIPv4, routerIPv6: this.routerIPv6, traceAll: this.options.traceAll };
    const programs = this.loader.load(this.maps, spec, { urgent });
    const ready = Promise.all([programs, this.maps.policy.prepare(id)]).then(([p]) => p);
    ready.catch(() => {
      // The add that takes this slot reports the failure; an untaken one only has to let go.
      void programs.then((p) => p.close(), () => undefined);
    });
    const prepared: PreparedSlot = { ...slot, ready, loaded: false };
    ready.then(
      () => (prepared.loaded = true),
      () => undefined,
    );
    return prepared;
  }

  /** How many endpoints are prepared and loaded, of how many kept. */
  preparedCount(): { ready: number; target: number } {
    return { ready: this.slots.filter((s) => s.loaded).length, target: PREPARED_SLOTS };
  }

  private async discard(slot: PreparedSlot): Promise<void> {
    this.ipam.release(String(slot.id));
    await slot.ready.then((p) => p.close(), () => undefined);
    await this.maps.policy.unprepare(slot.id);
  }

  /** `meanwhile` runs while the kernel works on the removal. */
  private async teardown(ep: Endpoint, meanwhile?: () => void): Promise<void> {
    for (const key of mapKeys(ep)) this.maps.endpoints.delete(key);
    // Deleting the device removes its filters and with them the programs:
    // no moment in which the pod's traffic passes without them. Meanwhile
    // its policy and identity go (both wait for the kernel, off the event loop).
    const removal = Promise.all([deleteLink(ep.hostIfname), this.hooks.detach(ep.id)]);
    try {
      meanwhile?.();
    } finally {
      await removal;
    }
    this.purgeConntrack(ep.id);
  }

  private writeMapEntries(ep: Endpoint): void {
    if (ep.held) return; // unhold() writes them
    const info = {
      ifindex: ep.ifindex,
      identity: ep.identity,
      endpointId: ep.id,
      flags: this.options.traceAll ? TndEndpointFlags.TND_ENDPOINT_TRACE_ALL : 0,
      mac: Buffer.from(parseMac(ep.podMac)),
      routerMac: Buffer.from(parseMac(ep.hostMac)),
    };
    for (const key of mapKeys(ep)) this.maps.endpoints.update(key, info);
  }

  private purgeConntrack(id: number): void {
    const stale: TndCtKeyLike[] = [];
    for (const [key, entry] of this.maps.conntrack.entries()) if (entry.endpointId === id) stale.push(key);
    for (const key of stale) this.maps.conntrack.delete(key);
  }

  private datapathSpec(ep: Endpoint) {
    return {
      id: ep.id,
      ifindex: ep.ifindex,
      identity: ep.identity,
      podMac: ep.podMac,
      hostMac: ep.hostMac,
      ipv4: ep.ipv4,
      ipv6: ep.ipv6,
      routerIPv4: this.routerIPv4,
      routerIPv6: this.routerIPv6,
      traceAll: this.options.traceAll,
    };
  }

  private allocateId(): number {
    for (let i = 0; i < MAX_ENDPOINT_ID; i++) {
      const id = ((this.nextId - 1 + i) % MAX_ENDPOINT_ID) + 1;
      if (!this.endpoints.has(id) && !this.slots.some((s) => s.id === id) && !this.maps.policy.isRemoving(id)) return id;
    }
    throw new TendrilError('exhausted', `all ${MAX_ENDPOINT_ID} endpoint ids are in use`);
  }

  private save(): void {
    // Prepared slots are not state: their addresses are handed out again after a restart.
    const ipam = this.ipam.snapshot();
    for (const slot of this.slots) delete ipam.allocations[String(slot.id)];
    this.store.write({ version: 1, nextId: this.nextId, ipam, endpoints: this.list() });
  }
}

type TndCtKeyLike = Parameters<NodeMaps['conntrack']['delete']>[0];

function mapKeys(ep: Endpoint): TndEndpointKey[] {
  return [ep.ipv4, ep.ipv6].map((text) => {
    const { family, bytes } = parseIP(text);
    return { addr: keyAddress(bytes), family: family === 4 ? 2 : 10 };
  });
}

/** The host side of endpoint `id`'s veth: lxc, the id, and a random part (names are not reused at once). */
const hostIfname = (id: number) => `lxc${id.toString(16).padStart(4, '0')}${randomBytes(2).toString('hex')}`;
const HOST_IFNAME = /^lxc[0-9a-f]{8}$/;

/** A random locally administered unicast MAC. */
function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return formatMac(b);
}

function safeIndex(name: string): number {
  try {
    return ifNameToIndex(name);
  } catch {
    return -1;
  }
}
