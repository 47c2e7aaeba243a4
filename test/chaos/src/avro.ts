// Hand-made Avro bodies for the hostile records: the chaos run must produce bytes that no codec
// would write (huge block counts, truncations), so it encodes them itself.

export function zigzag(value: number | bigint): Buffer {
  let n = BigInt(value);
  n = n >= 0n ? n << 1n : (-n << 1n) - 1n;
  const out: number[] = [];
  do {
    let byte = Number(n & 0x7fn);
    n >>= 7n;
    if (n > 0n) byte |= 0x80;
    out.push(byte);
  } while (n > 0n);
  return Buffer.from(out);
}

export function avroString(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  return Buffer.concat([zigzag(bytes.length), bytes]);
}

export function avroDouble(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(value);
  return b;
}

/** Confluent wire format: magic byte 0, 4-byte big-endian schema id, body. */
export function wire(schemaId: number, body: Buffer, magic = 0): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(magic, 0);
  header.writeUInt32BE(schemaId >>> 0, 1);
  return Buffer.concat([header, body]);
}

/** The block count of issue 11: `FE FF FF FF FF FF FF FF FF 01` (a count near 2^63). */
export const HUGE_COUNT = Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
