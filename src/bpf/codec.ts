/** A fixed-size binary layout: the TypeScript view of one C struct. */
export interface Codec<T> {
  readonly size: number;
  encode(v: T): Buffer;
  decode(b: Buffer): T;
}

/** Codec of an unsigned little-endian integer of 1, 2 or 4 bytes (map keys like __u32). */
export function uintCodec(size: 1 | 2 | 4): Codec<number> {
  return {
    size,
    encode: (v) => {
      const b = Buffer.alloc(size);
      b.writeUIntLE(v, 0, size);
      return b;
    },
    decode: (b) => b.readUIntLE(0, size),
  };
}

export const u8 = uintCodec(1);
export const u16 = uintCodec(2);
export const u32 = uintCodec(4);

/** Codec of a little-endian __u64. */
export const u64: Codec<bigint> = {
  size: 8,
  encode: (v) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return b;
  },
  decode: (b) => b.readBigUInt64LE(0),
};

/** Codec of raw bytes of a fixed size (for maps whose layout is not a tnd_ struct). */
export function bytesCodec(size: number): Codec<Buffer> {
  return {
    size,
    encode: (v) => {
      if (v.length !== size) throw new RangeError(`Expected ${size} bytes, got ${v.length}`);
      return Buffer.from(v);
    },
    decode: (b) => Buffer.from(b.subarray(0, size)),
  };
}
