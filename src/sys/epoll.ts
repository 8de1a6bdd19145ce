/**
 * Waiting for file descriptors without blocking Node's event loop: Node cannot
 * poll an arbitrary fd (an epoll fd, a ring buffer), so epoll_wait runs on a
 * libuv pool thread through koffi's `.async`, and the answer comes back on the
 * main thread. An eventfd in the same epoll set lets close() wake a pending
 * wait at once, so nothing stays blocked and the process can exit.
 */
import koffi from 'koffi';
import { c, lastErrno } from './libc.js';
import { SysError } from './errors.js';

const EPOLL_CLOEXEC = 0o2000000;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const EPOLL_CTL_ADD = 1;
const EPOLLIN = 0x1;
const EVENT_SIZE = 12; // struct epoll_event is packed on x86-64: u32 events, u64 data
const MAX_EVENTS = 8;
const WAKE_TAG = -1n;

export class EpollWaiter {
  private readonly epfd: number;
  private readonly wakeFd: number;
  private readonly events: unknown; // native memory: a pool thread writes it while JS runs
  private inFlight = false;
  private closed = false;

  /** Watches each fd in `fds` for readability. */
  constructor(fds: number[], private readonly timeoutMs = -1) {
    this.epfd = c.epollCreate1(EPOLL_CLOEXEC) as number;
    if (this.epfd < 0) throw new SysError('Cannot create an epoll instance', lastErrno());
    this.wakeFd = c.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) as number;
    if (this.wakeFd < 0) {
      const e = lastErrno();
      c.close(this.epfd);
      throw new SysError('Cannot create an eventfd', e);
    }
    try {
      this.add(this.wakeFd, WAKE_TAG);
      for (const fd of fds) this.add(fd, BigInt(fd));
    } catch (err) {
      c.close(this.wakeFd);
      c.close(this.epfd);
      throw err;
    }
    this.events = koffi.alloc('uint8_t', EVENT_SIZE * MAX_EVENTS);
  }

  private add(fd: number, tag: bigint): void {
    const ev = Buffer.alloc(EVENT_SIZE);
    ev.writeUInt32LE(EPOLLIN, 0);
    ev.writeBigInt64LE(tag, 4);
    if ((c.epollCtl(this.epfd, EPOLL_CTL_ADD, fd, ev) as number) !== 0)
      throw new SysError(`Cannot watch fd ${fd} with epoll`, lastErrno());
  }

  /**
   * Waits on a pool thread, then calls `done` on the main thread: `ready` is true
   * when a watched fd is readable (or the timeout passed), false once closed.
   */
  wait(done: (err: Error | null, ready: boolean) => void): void {
    if (this.closed) return done(null, false);
    if (this.inFlight) return done(new Error('EpollWaiter.wait() is already pending'), false);
    this.inFlight = true;
    c.epollWait.async(this.epfd, this.events, MAX_EVENTS, this.timeoutMs, (err: Error | null, n: number) => {
      this.inFlight = false;
      if (this.closed) {
        this.release();
        return done(null, false);
      }
      if (err) return done(err, false);
      if (n < 0) {
        const e = lastErrno();
        // EINTR: a signal interrupted the wait; report "ready" so the caller re-polls.
        return e === 4 ? done(null, true) : done(new SysError('epoll_wait failed', e), false);
      }
      done(null, true);
    });
  }

  /** Stops watching; a pending wait returns at once and its callback sees `ready = false`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.inFlight) {
      const one = Buffer.alloc(8);
      one.writeBigUInt64LE(1n);
      c.write(this.wakeFd, one, 8);
    } else {
      this.release();
    }
  }

  private release(): void {
    c.close(this.wakeFd);
    c.close(this.epfd);
    koffi.free(this.events);
  }
}
