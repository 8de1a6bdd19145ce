/**
 * Sockets with options Node cannot set: a transparent listener (IP_TRANSPARENT,
 * so it accepts connections to addresses that are not the node's, which is how
 * the datapath hands flows to the L7 proxy unchanged) and a TCP socket that
 * marks its packets (SO_MARK) before its first packet leaves. Both return a raw
 * file descriptor for Node to adopt (`server.listen({ fd })`,
 * `new net.Socket({ fd })`); the caller owns it.
 */
import { parseIP } from '../common/ip.js';
import { c, lastErrno } from './libc.js';
import { SysError } from './errors.js';

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_REUSEPORT = 15;
const SO_MARK = 36;
const SOL_IP = 0;
const IP_TRANSPARENT = 19;
const SOL_IPV6 = 41;
const IPV6_V6ONLY = 26;
const IPV6_TRANSPARENT = 75;

function fail(what: string, fd: number): never {
  const err = lastErrno();
  if (fd >= 0) c.close(fd);
  throw new SysError(what, err);
}

function setInt(fd: number, level: number, name: number, value: number, what: string): void {
  const buf = Buffer.alloc(4);
  buf.writeInt32LE(value);
  if ((c.setsockopt(fd, level, name, buf, 4) as number) !== 0) fail(`setsockopt ${what}`, fd);
}

/** struct sockaddr_in / sockaddr_in6 for `address`:`port`. */
function sockaddr(address: string, port: number): Buffer {
  const { family, bytes } = parseIP(address);
  const buf = Buffer.alloc(family === 4 ? 16 : 28);
  buf.writeUInt16LE(family === 4 ? AF_INET : AF_INET6, 0);
  buf.writeUInt16BE(port, 2);
  buf.set(bytes, family === 4 ? 4 : 8);
  return buf;
}

export interface ListenerOptions {
  /** Several processes may listen on the same address; the kernel spreads connections over them. */
  reusePort?: boolean;
  backlog?: number;
}

/**
 * A listening TCP socket on `address`:`port` that accepts connections to any
 * destination steered to it (IP_TRANSPARENT). The accepted socket's local
 * address is then the connection's original destination.
 */
export function transparentListener(address: string, port: number, options: ListenerOptions = {}): number {
  const addr = sockaddr(address, port);
  const v6 = addr.length === 28;
  const fd = c.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) fail('socket', -1);
  setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, 'SO_REUSEADDR');
  if (options.reusePort) setInt(fd, SOL_SOCKET, SO_REUSEPORT, 1, 'SO_REUSEPORT');
  if (v6) {
    setInt(fd, SOL_IPV6, IPV6_V6ONLY, 1, 'IPV6_V6ONLY');
    setInt(fd, SOL_IPV6, IPV6_TRANSPARENT, 1, 'IPV6_TRANSPARENT');
  } else {
    setInt(fd, SOL_IP, IP_TRANSPARENT, 1, 'IP_TRANSPARENT');
  }
  if ((c.bind(fd, addr, addr.length) as number) !== 0) fail(`bind ${address}:${port}`, fd);
  if ((c.listen(fd, options.backlog ?? 1024) as number) !== 0) fail(`listen ${address}:${port}`, fd);
  return fd;
}

/**
 * An unconnected, non-blocking TCP socket whose every packet carries `mark`
 * (SO_MARK), from the SYN on: adopt it with `new net.Socket({ fd })` and
 * connect it.
 */
export function markedTcpSocket(family: 4 | 6, mark: number): number {
  const fd = c.socket(family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) fail('socket', -1);
  setInt(fd, SOL_SOCKET, SO_MARK, mark | 0, 'SO_MARK');
  return fd;
}
