/**
 * RingBufferReader: delivers the records of a BPF ring buffer map to a callback
 * without blocking Node's event loop. epoll_wait runs on a pool thread
 * (EpollWaiter); when records are ready, ring_buffer__consume() runs on the
 * main thread and libbpf calls our sample callback, which copies each record
 * into a Buffer. Note: while started, the reader keeps one libuv pool thread
 * waiting and keeps the process alive, as an open server would; close() ends both.
 */
import koffi from 'koffi';
import { EpollWaiter } from '../sys/index.js';
import { bpf, lastErrno, ringBufferSampleFn, viewOf, type Handle } from './libbpf.js';
import { BpfError, EINVAL } from './errors.js';
import { MapType, type BpfMap } from './map.js';

export class RingBufferReader {
  private rb: Handle = null;
  private callback: ReturnType<typeof koffi.register> | null = null;
  private waiter: EpollWaiter | null = null;
  private closed = false;
  private error: Error | null = null;

  /** `onRecord` gets a copy of each record; an exception from it stops the reader and is reported by `onError`. */
  constructor(
    private readonly map: BpfMap,
    private readonly onRecord: (data: Buffer) => void,
    private readonly onError: (err: Error) => void = (err) => {
      throw err;
    },
  ) {
    if (map.type !== MapType.RINGBUF)
      throw new BpfError(`Map "${map.name}" is not a ring buffer (type ${map.type})`, EINVAL);
  }

  start(): void {
    if (this.closed) throw new BpfError(`Ring buffer reader of "${this.map.name}" is closed`, EINVAL);
    if (this.rb) return;
    this.callback = koffi.register(
      (_ctx: unknown, data: unknown, size: number | bigint): number => {
        try {
          this.onRecord(Buffer.from(viewOf(data, Number(size)))); // copy: the ring slot is reused after we return
          return 0;
        } catch (err) {
          this.error = err as Error;
          return -1; // stops this consume() round
        }
      },
      koffi.pointer(ringBufferSampleFn),
    );
    this.rb = bpf.ringBufferNew(this.map.fd, this.callback, null, null);
    if (!this.rb) {
      const e = lastErrno();
      this.release();
      throw new BpfError(`Cannot read ring buffer "${this.map.name}"`, e || EINVAL);
    }
    this.waiter = new EpollWaiter([bpf.ringBufferEpollFd(this.rb) as number]);
    this.consume(); // records written before start()
    this.waitForRecords();
  }

  /** Reads every record available now (also usable without start(), e.g. right after a test run). */
  consume(): number {
    if (!this.rb) return 0;
    const n = bpf.ringBufferConsume(this.rb) as number;
    if (this.error) {
      const err = this.error;
      this.error = null;
      this.close();
      this.onError(err);
      return 0;
    }
    if (n < 0) throw new BpfError(`Cannot consume ring buffer "${this.map.name}"`, -n);
    return n;
  }

  private waitForRecords(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    waiter.wait((err, ready) => {
      if (this.closed || !ready) return;
      if (err) {
        this.close();
        return this.onError(err);
      }
      this.consume();
      this.waitForRecords();
    });
  }

  /** Stops delivery at once; a pending wait finishes on its own and frees its resources. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private release(): void {
    this.waiter?.close();
    this.waiter = null;
    // ring_buffer__free closes the epoll fd the waiter watches; the waiter's own epoll set
    // drops it, so a wait in flight is only woken by its eventfd.
    if (this.rb) bpf.ringBufferFree(this.rb);
    this.rb = null;
    if (this.callback) koffi.unregister(this.callback);
    this.callback = null;
  }
}
