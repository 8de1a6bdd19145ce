/**
 * Route netlink requests from this process, without starting `ip`: a link,
 * an address or a route is one message, and a batch of them is one write and
 * its acknowledgements. A process start costs milliseconds; a message costs
 * microseconds, which is most of what an endpoint add is allowed to take.
 *
 * Each batch gets a socket of its own, made in the network namespace the
 * batch is for (the calling thread enters it for the socket() call only:
 * inNetns; a socket keeps the namespace it was made in), so nothing is
 * shared between batches and a failed one leaves no socket behind.
 */
import { c, lastErrno } from './libc.js';
import { SysError } from './errors.js';
import { inNetns } from './netns.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
const NLMSG_ERROR = 2;
const NLMSG_HDRLEN = 16;
const NLMSGERR_ATTR_MSG = 1;

/** One request: its type (RTM_*), flags besides REQUEST|ACK, and payload (family header + attributes). */
export interface NetlinkMessage {
  type: number;
  flags: number;
  payload: Buffer;
  /** Names the request in an error ("add link lxc0001"). */
  what: string;
}

/** A request the kernel refused: which one, and the kernel's own words when it gave some. */
export class NetlinkError extends SysError {
  constructor(
    readonly what: string,
    errno: number,
    readonly kernelMessage?: string,
  ) {
    super(`${what}${kernelMessage ? ` (${kernelMessage})` : ''}`, errno);
    this.name = 'NetlinkError';
  }
}

function openSocket(netns: string | undefined): number {
  return netns ? inNetns(netns, checkedSocket) : checkedSocket();
}

function checkedSocket(): number {
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) as number;
  if (fd < 0) throw new SysError('socket(AF_NETLINK)', lastErrno());
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  // Extended acks: the kernel says in words why it refused (best effort),
  // after the refused request's header only (capped), not its whole body.
  c.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
  c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
  return fd;
}

function encode(messages: readonly NetlinkMessage[]): Buffer {
  const parts = messages.map((m, i) => {
    const head = Buffer.alloc(NLMSG_HDRLEN);
    head.writeUInt32LE(NLMSG_HDRLEN + m.payload.length, 0);
    head.writeUInt16LE(m.type, 4);
    head.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK | m.flags, 6);
    head.writeUInt32LE(i + 1, 8); // sequence number: the message's place in the batch, from 1
    return Buffer.concat([head, m.payload, Buffer.alloc(align4(m.payload.length) - m.payload.length)]);
  });
  return Buffer.concat(parts);
}

const align4 = (n: number) => (n + 3) & ~3;

/** The text of an extended ack's NLMSGERR_ATTR_MSG, if the error carries one. */
function extAckMessage(msg: Buffer, errOffset: number, len: number): string | undefined {
  // struct nlmsgerr: int error, then the request's header (16 bytes; its payload is capped with NLM_F_CAPPED).
  let off = errOffset + 4 + NLMSG_HDRLEN;
  while (off + 4 <= len) {
    const alen = msg.readUInt16LE(off);
    const type = msg.readUInt16LE(off + 2) & 0x3fff;
    if (alen < 4) break;
    if (type === NLMSGERR_ATTR_MSG) return msg.subarray(off + 4, off + alen).toString('utf8').replace(/\0.*$/s, '');
    off += align4(alen);
  }
  return undefined;
}

/**
 * Sends the messages in one write and waits for every acknowledgement. The
 * kernel handles them in order, each on its own; the first refusal is thrown
 * (later messages may have been applied: callers order batches so that what
 * follows a failure is cleaned up with what came before it).
 */
export function netlinkRequest(messages: readonly NetlinkMessage[], netns?: string): void {
  if (messages.length === 0) return;
  const fd = openSocket(netns);
  try {
    const out = encode(messages);
    if ((c.write(fd, out, out.length) as number) !== out.length) throw new SysError('write to netlink', lastErrno());
    readAcks(fd, messages);
  } finally {
    c.close(fd);
  }
}

/**
 * netlinkRequest() with the write on a worker thread: the kernel handles a
 * request inside the write, and some take long (deleting a link waits for
 * the network stack to let go of it) while the event loop should run on.
 */
export async function netlinkRequestAsync(messages: readonly NetlinkMessage[], netns?: string): Promise<void> {
  if (messages.length === 0) return;
  const fd = openSocket(netns);
  try {
    const out = encode(messages);
    const written = await new Promise<number>((resolve, reject) =>
      c.write.async(fd, out, out.length, (err: unknown, n: number) => (err ? reject(err as Error) : resolve(n))),
    );
    if (written !== out.length) throw new SysError('write to netlink', lastErrno());
    readAcks(fd, messages);
  } finally {
    c.close(fd);
  }
}

/** Reads until every message of the batch is acknowledged; throws the first refusal. */
function readAcks(fd: number, messages: readonly NetlinkMessage[]): void {
  const acked = new Set<number>();
  let failure: NetlinkError | undefined;
  const buf = Buffer.alloc(65536);
  while (acked.size < messages.length) {
    const n = c.read(fd, buf, buf.length) as number;
    if (n < 0) throw new SysError('read from netlink', lastErrno());
    for (let off = 0; off + NLMSG_HDRLEN <= n; ) {
      const len = buf.readUInt32LE(off);
      if (len < NLMSG_HDRLEN) break;
      const type = buf.readUInt16LE(off + 4);
      const seq = buf.readUInt32LE(off + 8);
      if (type === NLMSG_ERROR && seq >= 1 && seq <= messages.length) {
        acked.add(seq);
        const errno = -buf.readInt32LE(off + NLMSG_HDRLEN);
        if (errno !== 0 && !failure) {
          const msg = Buffer.from(buf.subarray(off, off + len));
          failure = new NetlinkError(messages[seq - 1]!.what, errno, extAckMessage(msg, NLMSG_HDRLEN, len));
        }
      }
      off += align4(len);
    }
  }
  if (failure) throw failure;
}
