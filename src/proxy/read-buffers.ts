/**
 * Socket reads into one shared buffer instead of a fresh allocation per read.
 *
 * Node's default read path allocates a 64 KiB buffer for every read and
 * pushes it through the Readable stream machinery; for a proxy relaying many
 * small requests that is a large share of its user-space time. With
 * `onread` (a public net.Socket option) the kernel copies into a buffer we
 * own and a callback gets the bytes. Reads run one at a time on this thread,
 * so every socket can share one buffer, but its bytes are valid only until
 * the callback returns: whatever must outlive it (a partial request waiting
 * for more, and anything handed to a socket's write, which Node may hold
 * until the kernel takes it) is copied out first.
 */
import net from 'node:net';

const READ_SIZE = 64 * 1024;

export class ReadBuffers {
  private readonly shared = Buffer.allocUnsafeSlow(READ_SIZE);

  /** A copy of `view` if it lies in the shared buffer, else `view` itself. */
  own(view: Buffer): Buffer {
    return view.buffer === this.shared.buffer ? Buffer.from(view) : view;
  }

  /** Writes `data` to `sock`, never handing Node a view of the shared buffer. */
  write(sock: net.Socket, data: Buffer): boolean {
    return sock.write(this.own(data));
  }

  /** onread options whose callback hands each read's bytes to `target`. */
  options(target: ReadTarget): net.OnReadOpts {
    return {
      buffer: this.shared,
      callback: (n: number, buf: Uint8Array): boolean => {
        target.onBytes((buf as Buffer).subarray(0, n));
        return true; // the relay pauses the socket itself when it must
      },
    };
  }
}

/** Where an onread socket's bytes go: set by the socket's owner once it exists. */
export class ReadTarget {
  onBytes: (bytes: Buffer) => void = () => {};
}

interface StreamHandle {
  onconnection?: (err: number, clientHandle: unknown) => void;
  setNoDelay?: (on: boolean) => void;
}

/**
 * A server whose accepted sockets read through `onread`. net.Server has no
 * option for it, so once listening, its handle's accept callback is replaced
 * by one that builds the Socket as net.Server does, plus `onread`. Where a
 * Node release does not expose that callback, sockets are accepted the
 * ordinary way and `accepted` gets no ReadTarget: the owner then listens
 * for 'data'.
 */
export function onreadServer(reads: ReadBuffers, accepted: (socket: net.Socket, target?: ReadTarget) => void): net.Server {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => accepted(socket));
  server.on('listening', () => {
    const handle = (server as unknown as { _handle?: StreamHandle })._handle;
    if (typeof handle?.onconnection !== 'function') return;
    handle.onconnection = (err, clientHandle) => {
      if (err !== 0 || clientHandle === undefined) return;
      (clientHandle as StreamHandle).setNoDelay?.(true);
      const target = new ReadTarget();
      const socket = new net.Socket({ handle: clientHandle, allowHalfOpen: true, readable: true, writable: true, onread: reads.options(target) } as net.SocketConstructorOpts);
      accepted(socket, target);
    };
  });
  return server;
}
