import crypto from 'node:crypto';
import net from 'node:net';

/**
 * SCRAM users of a KRaft cluster, made, changed and deleted with the AlterUserScramCredentials
 * request (API key 51, v0; what `kafka-configs --alter --add-config SCRAM-SHA-256=[…]` sends), on an
 * unauthenticated listener of a broker without an authorizer (`startKafkaBroker`'s PLAINTEXT one).
 * Written here, on a socket: kafkajs has no such request, and `kafka-configs` is a JVM of its own
 * (seconds per call on a loaded machine). A change applies to new authentications at once;
 * connections already authenticated keep theirs until they re-authenticate (`reauthMs`).
 */
export type ScramMechanism = 'scram-sha-256' | 'scram-sha-512';

export type ScramChange =
  | { user: string; mechanism: ScramMechanism; password: string }
  | { user: string; mechanism: ScramMechanism; delete: true };

const MECHANISMS: Readonly<Record<ScramMechanism, { type: number; hash: 'sha256' | 'sha512'; bytes: number }>> = {
  'scram-sha-256': { type: 1, hash: 'sha256', bytes: 32 },
  'scram-sha-512': { type: 2, hash: 'sha512', bytes: 64 },
};
const ITERATIONS = 4096; // Kafka's least

function uvarint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

const int8 = (n: number) => Buffer.from([n]);
const int16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const compactBytes = (b: Buffer) => Buffer.concat([uvarint(b.length + 1), b]);
const compactString = (s: string) => compactBytes(Buffer.from(s, 'utf8'));
const compactArray = (items: Buffer[]) => Buffer.concat([uvarint(items.length + 1), ...items]);
const NO_TAGS = uvarint(0);

/** The request's bytes, size prefix included. */
export function encodeAlterScram(changes: readonly ScramChange[], correlationId: number): Buffer {
  const deletions = changes.flatMap((c) =>
    'delete' in c ? [Buffer.concat([compactString(c.user), int8(MECHANISMS[c.mechanism].type), NO_TAGS])] : [],
  );
  const upsertions = changes.flatMap((c) => {
    if ('delete' in c) return [];
    const m = MECHANISMS[c.mechanism];
    const salt = crypto.randomBytes(16);
    const salted = crypto.pbkdf2Sync(Buffer.from(c.password, 'utf8'), salt, ITERATIONS, m.bytes, m.hash);
    return [
      Buffer.concat([
        compactString(c.user),
        int8(m.type),
        int32(ITERATIONS),
        compactBytes(salt),
        compactBytes(salted),
        NO_TAGS,
      ]),
    ];
  });
  const clientId = Buffer.from('driftline-stack', 'utf8');
  // Request header v2: key, version, correlation id, client id (a nullable INT16 string), tags.
  const header = Buffer.concat([int16(51), int16(0), int32(correlationId), int16(clientId.length), clientId, NO_TAGS]);
  const body = Buffer.concat([compactArray(deletions), compactArray(upsertions), NO_TAGS]);
  return Buffer.concat([int32(header.length + body.length), header, body]);
}

function readUvarint(buf: Buffer, at: { i: number }): number {
  let shift = 0;
  let value = 0;
  for (;;) {
    const byte = buf[at.i++];
    if (byte === undefined) throw new Error('AlterUserScramCredentials: answer cut short');
    value |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return value >>> 0;
    shift += 7;
  }
}

function skipTags(buf: Buffer, at: { i: number }): void {
  const n = readUvarint(buf, at);
  for (let k = 0; k < n; k++) {
    readUvarint(buf, at);
    at.i += readUvarint(buf, at);
  }
}

function readCompactString(buf: Buffer, at: { i: number }): string | null {
  const n = readUvarint(buf, at);
  if (n === 0) return null;
  const s = buf.toString('utf8', at.i, at.i + n - 1);
  at.i += n - 1;
  return s;
}

/** Per user: the error code (0 = done) and message of the answer (without its size prefix). */
export function decodeAlterScramAnswer(
  buf: Buffer,
): Array<{ user: string; errorCode: number; message: string | null }> {
  const at = { i: 4 }; // correlation id
  skipTags(buf, at); // response header v1
  at.i += 4; // throttle time
  const results = [];
  for (let n = readUvarint(buf, at) - 1; n > 0; n--) {
    const user = readCompactString(buf, at) ?? '';
    const errorCode = buf.readInt16BE(at.i);
    at.i += 2;
    const message = readCompactString(buf, at);
    skipTags(buf, at);
    results.push({ user, errorCode, message });
  }
  return results;
}

/**
 * Applies the changes on `broker` (host:port of an unauthenticated listener); rejects naming the
 * user and Kafka's message when the broker refuses one (deleting a user that has no credential:
 * RESOURCE_NOT_FOUND, code 91).
 */
export async function alterScramUsers(
  broker: string,
  changes: readonly ScramChange[],
  timeoutMs = 10_000,
): Promise<void> {
  const i = broker.lastIndexOf(':');
  const answer = await new Promise<Buffer>((resolve, reject) => {
    const socket = net.connect({ host: broker.slice(0, i), port: Number(broker.slice(i + 1)) });
    let data = Buffer.alloc(0);
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`AlterUserScramCredentials: no answer from ${broker}`)),
    );
    socket.once('error', reject);
    socket.once('connect', () => socket.write(encodeAlterScram(changes, 1)));
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= 4 && data.length >= 4 + data.readInt32BE(0)) {
        socket.end();
        resolve(data.subarray(4, 4 + data.readInt32BE(0)));
      }
    });
  });
  const failed = decodeAlterScramAnswer(answer).filter((r) => r.errorCode !== 0);
  if (failed.length > 0) {
    throw new Error(
      `AlterUserScramCredentials refused: ${failed.map((r) => `${r.user}: error ${r.errorCode} ${r.message ?? ''}`).join('; ')}`,
    );
  }
}
