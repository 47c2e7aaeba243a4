/**
 * Fixed-layout binary packing for summaries: little-endian float64 scalars followed by counts as
 * uint32 (or float64 once any count passes 2^32 − 1), base64-encoded into one JSON string. Fixed
 * widths are what make a serialized summary the same size after 10^3 or 10^9 events; JSON number
 * text would grow with the digits of the counts.
 */

export type CountEncoding = 'u32' | 'f64';

const U32_MAX = 0xffffffff;

export function chooseEncoding(counts: Float64Array): CountEncoding {
  for (let i = 0; i < counts.length; i++) if (counts[i]! > U32_MAX) return 'f64';
  return 'u32';
}

export function pack(scalars: ArrayLike<number>, counts: Float64Array, encoding: CountEncoding): string {
  const width = encoding === 'u32' ? 4 : 8;
  const buf = Buffer.alloc(scalars.length * 8 + counts.length * width);
  let off = 0;
  for (let i = 0; i < scalars.length; i++, off += 8) buf.writeDoubleLE(scalars[i]!, off);
  if (encoding === 'u32') for (let i = 0; i < counts.length; i++, off += 4) buf.writeUInt32LE(counts[i]!, off);
  else for (let i = 0; i < counts.length; i++, off += 8) buf.writeDoubleLE(counts[i]!, off);
  return buf.toString('base64');
}

export function unpack(
  data: string,
  scalarCount: number,
  encoding: CountEncoding,
): { scalars: Float64Array; counts: Float64Array } | undefined {
  const buf = Buffer.from(data, 'base64');
  const width = encoding === 'u32' ? 4 : 8;
  const rest = buf.length - scalarCount * 8;
  if (rest < 0 || rest % width !== 0) return undefined;
  const scalars = new Float64Array(scalarCount);
  let off = 0;
  for (let i = 0; i < scalarCount; i++, off += 8) scalars[i] = buf.readDoubleLE(off);
  const counts = new Float64Array(rest / width);
  if (encoding === 'u32') for (let i = 0; i < counts.length; i++, off += 4) counts[i] = buf.readUInt32LE(off);
  else for (let i = 0; i < counts.length; i++, off += 8) counts[i] = buf.readDoubleLE(off);
  return { scalars, counts };
}
