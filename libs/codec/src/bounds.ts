import type avro from 'avsc';

/**
 * A bounds walker over Avro binary: checks bytes against the WRITER schema before avsc reads
 * them, so a hostile body fails in time proportional to its length instead of making avsc loop
 * or allocate on a claimed count. It checks that every array/map block count fits the bytes
 * left (count × minimum encoded item size ≤ bytes left), that string/bytes/fixed lengths fit,
 * that varints end within 10 bytes (5 for int), union and enum indexes are in range, booleans are
 * 0 or 1, a negative block count's byte size matches the block, nesting stays under a depth, and
 * no byte follows the value. It allocates one small cursor per
 * record, nothing per item.
 */

/** Deepest nesting of records (a recursive schema) the walker follows. */
export const MAX_AVRO_DEPTH = 256;
/** Most items of zero encoded width (`null`, empty records, `fixed` of size 0) in one value. */
export const MAX_AVRO_EMPTY_ITEMS = 100_000;

export class AvroBoundsError extends Error {
  readonly path: string[] = [];
  constructor(
    readonly problem: string,
    readonly offset: number,
  ) {
    super(problem);
    this.name = 'AvroBoundsError';
  }

  /** `at features.country (byte 12): string length 99 exceeds the 3 bytes left`. */
  describe(): string {
    return `at ${this.path.length === 0 ? '(root)' : this.path.join('.')} (byte ${this.offset}): ${this.problem}`;
  }
}

interface Cursor {
  buf: Uint8Array;
  pos: number;
  end: number;
  depth: number;
  emptyItems: number;
}

type Step = (c: Cursor) => void;

interface Compiled {
  readonly step: Step;
  /** Lower bound of the encoded size in bytes. */
  readonly min: number;
}

/** Reads a zigzag varint of at most `maxBytes` bytes as a double (precise up to 2^53, enough for bounds). */
function readVarint(c: Cursor, maxBytes: number, what: string): number {
  const start = c.pos;
  const first = c.buf[start];
  if (first !== undefined && first < 0x80 && start < c.end) {
    c.pos = start + 1;
    return (first & 1) === 0 ? first / 2 : -(first + 1) / 2;
  }
  let n = 0;
  let mul = 1;
  for (let i = 0; ; i++) {
    if (c.pos >= c.end) throw new AvroBoundsError(`${what}: truncated varint`, start);
    const b = c.buf[c.pos++]!;
    n += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) break;
    if (i + 1 >= maxBytes) throw new AvroBoundsError(`${what}: varint longer than ${maxBytes} bytes`, start);
    mul *= 128;
  }
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/**
 * A long beyond ±2^53 cannot be read as a number without losing digits (avsc refuses it with
 * "potential precision loss", naming nothing); refused here with its field and a hint, as every
 * current epoch time in nanoseconds is that large.
 */
function readSafeLong(c: Cursor): void {
  const start = c.pos;
  const value = readVarint(c, 10, 'long');
  if (Math.abs(value) > Number.MAX_SAFE_INTEGER) {
    // The sign is the zigzag's lowest bit, which the double of a value this large has lost.
    const sign = (c.buf[start]! & 1) === 1 ? '-' : '';
    throw new AvroBoundsError(
      `long of about ${sign}${Math.abs(value).toPrecision(4)} is beyond ±2^53, the integers read exactly (nanoseconds, if it is an epoch time?)`,
      start,
    );
  }
}

function need(c: Cursor, bytes: number, what: string): void {
  if (bytes > c.end - c.pos) {
    throw new AvroBoundsError(`${what} needs ${bytes} bytes but ${c.end - c.pos} are left`, c.pos);
  }
}

function lengthPrefixed(what: string): Step {
  return (c) => {
    const at = c.pos;
    const length = readVarint(c, 10, `${what} length`);
    if (length < 0 || length > c.end - c.pos) {
      throw new AvroBoundsError(`${what} length ${length} exceeds the ${c.end - c.pos} bytes left`, at);
    }
    c.pos += length;
  };
}

function fixedWidth(bytes: number, what: string): Step {
  return (c) => {
    need(c, bytes, what);
    c.pos += bytes;
  };
}

const nothing: Step = () => {};

/** Blocks of items (arrays, and maps with `item` reading key and value): the count is checked before any item. */
function blocks(kind: 'array' | 'map', item: Compiled): Step {
  const itemMin = item.min;
  const step = item.step;
  return (c) => {
    for (;;) {
      const at = c.pos;
      let count = readVarint(c, 10, `${kind} block count`);
      if (count === 0) return;
      let blockEnd = -1;
      if (count < 0) {
        count = -count;
        const sizeAt = c.pos;
        const size = readVarint(c, 10, `${kind} block size`);
        if (size < 0 || size > c.end - c.pos) {
          throw new AvroBoundsError(`${kind} block size ${size} exceeds the ${c.end - c.pos} bytes left`, sizeAt);
        }
        blockEnd = c.pos + size;
      }
      const left = (blockEnd >= 0 ? blockEnd : c.end) - c.pos;
      if (itemMin > 0) {
        if (count * itemMin > left) {
          throw new AvroBoundsError(
            `${kind} block count ${count} × ${itemMin} byte(s) per item exceeds the ${left} bytes left`,
            at,
          );
        }
      } else {
        c.emptyItems += count;
        if (c.emptyItems > MAX_AVRO_EMPTY_ITEMS) {
          throw new AvroBoundsError(
            `${kind} block count ${count} of zero-width items exceeds the limit of ${MAX_AVRO_EMPTY_ITEMS}`,
            at,
          );
        }
      }
      for (let i = 0; i < count; i++) step(c);
      if (blockEnd >= 0 && c.pos !== blockEnd) {
        throw new AvroBoundsError(`${kind} block size does not match its ${count} items`, at);
      }
    }
  };
}

/**
 * What the reader does with a writer type's values: `undefined` = unknown (checked strictly),
 * `null` = skipped (a writer field no reader field matches: avsc steps over its bytes without
 * reading a number, so a long beyond ±2^53 there is harmless), else the reader's type.
 */
type ReaderSide = avro.Type | null | undefined;

/** The reader type of a record's fields by writer field name (own name or an alias), or null when the reader skips it. */
function readerFieldsOf(reader: avro.types.RecordType): Map<string, avro.Type> {
  const byName = new Map<string, avro.Type>();
  for (const field of reader.fields) {
    for (const name of [field.name, ...((field as unknown as { aliases?: string[] }).aliases ?? [])]) {
      byName.set(name, field.type);
    }
  }
  return byName;
}

function isKind(type: ReaderSide, ...kinds: string[]): type is avro.Type {
  return type !== null && type !== undefined && kinds.includes(type.typeName);
}

class Compiler {
  /** Named types by identity (and reader side): a recursive reference calls the step being compiled. */
  private readonly named = new Map<avro.Type, Map<ReaderSide, Compiled>>();

  compile(type: avro.Type, reader: ReaderSide = undefined): Compiled {
    const name = type.typeName;
    switch (name) {
      case 'null':
        return { step: nothing, min: 0 };
      case 'boolean':
        return {
          min: 1,
          step: (c) => {
            need(c, 1, 'boolean');
            if (c.buf[c.pos]! > 1) throw new AvroBoundsError(`boolean byte ${c.buf[c.pos]} is not 0 or 1`, c.pos);
            c.pos++;
          },
        };
      case 'int':
        return { min: 1, step: (c) => void readVarint(c, 5, 'int') };
      case 'long':
        return { min: 1, step: reader === null ? (c) => void readVarint(c, 10, 'long') : readSafeLong };
      case 'float':
        return { min: 4, step: fixedWidth(4, 'float') };
      case 'double':
        return { min: 8, step: fixedWidth(8, 'double') };
      case 'string':
      case 'bytes':
        return { min: 1, step: lengthPrefixed(name) };
      case 'fixed': {
        const size = (type as avro.types.FixedType).size;
        return { min: size, step: size === 0 ? nothing : fixedWidth(size, `fixed(${size})`) };
      }
      case 'enum': {
        const symbols = (type as avro.types.EnumType).symbols.length;
        return {
          min: 1,
          step: (c) => {
            const at = c.pos;
            const index = readVarint(c, 5, 'enum index');
            if (index < 0 || index >= symbols) {
              throw new AvroBoundsError(`enum index ${index} is outside [0, ${symbols})`, at);
            }
          },
        };
      }
      case 'array': {
        const items =
          reader === null ? null : isKind(reader, 'array') ? (reader as avro.types.ArrayType).itemsType : undefined;
        return { min: 1, step: blocks('array', this.compile((type as avro.types.ArrayType).itemsType, items)) };
      }
      case 'map': {
        const readerValues =
          reader === null
            ? null
            : isKind(reader, 'map')
              ? ((reader as avro.types.MapType).valuesType as avro.Type)
              : undefined;
        const values = this.compile((type as avro.types.MapType).valuesType as avro.Type, readerValues);
        const key = lengthPrefixed('map key');
        const valueStep = values.step;
        const item: Step = (c) => {
          key(c);
          valueStep(c);
        };
        return { min: 1, step: blocks('map', { step: item, min: 1 + values.min }) };
      }
      case 'record':
      case 'error':
        return this.record(type as avro.types.RecordType, reader);
      default:
        // A union's branches resolve into reader branches by avsc's own rules: checked strictly
        // unless the whole union is skipped.
        if (name.startsWith('union:')) return this.union((type as avro.types.WrappedUnionType).types, reader);
        if (name.startsWith('logical:'))
          return this.compile((type as avro.types.LogicalType).underlyingType, reader === null ? null : undefined);
        throw new Error(`no bounds check for Avro type ${name}`);
    }
  }

  private union(types: readonly avro.Type[], reader: ReaderSide): Compiled {
    // Each writer branch against the reader branch it resolves into: the same kind, and for a named
    // type the same name (unqualified, as the codec resolves). None found: checked strictly.
    const readerBranches: readonly avro.Type[] =
      reader === null || reader === undefined
        ? []
        : reader.typeName.startsWith('union:')
          ? (reader as avro.types.WrappedUnionType).types
          : [reader];
    const unqualified = (t: avro.Type) => (t.name ?? '').split('.').at(-1);
    const counterpart = (w: avro.Type): ReaderSide => {
      if (reader === null) return null;
      return readerBranches.find(
        (r) => r.typeName === w.typeName && (w.name === undefined || unqualified(r) === unqualified(w)),
      );
    };
    const branches = types.map((t) => this.compile(t, counterpart(t)).step);
    return {
      min: 1,
      step: (c) => {
        const at = c.pos;
        const index = readVarint(c, 5, 'union index');
        const branch = branches[index];
        if (branch === undefined || index < 0) {
          throw new AvroBoundsError(`union index ${index} is outside [0, ${branches.length})`, at);
        }
        branch(c);
      },
    };
  }

  private record(type: avro.types.RecordType, reader: ReaderSide): Compiled {
    const side: ReaderSide = reader === null ? null : isKind(reader, 'record', 'error') ? reader : undefined;
    let compiled = this.named.get(type);
    if (compiled === undefined) {
      compiled = new Map();
      this.named.set(type, compiled);
    }
    const known = compiled.get(side);
    if (known !== undefined) return known;
    const readerFields = isKind(side, 'record', 'error') ? readerFieldsOf(side as avro.types.RecordType) : undefined;
    // A reference back to this record while its fields compile: call through, count it as 0 bytes.
    let steps: Step[] = [];
    const names = type.fields.map((field) => field.name);
    const step: Step = (c) => {
      if (++c.depth > MAX_AVRO_DEPTH) throw new AvroBoundsError(`nesting deeper than ${MAX_AVRO_DEPTH}`, c.pos);
      let i = 0;
      try {
        for (; i < steps.length; i++) steps[i]!(c);
      } catch (error) {
        if (error instanceof AvroBoundsError) error.path.unshift(names[i]!);
        throw error;
      }
      c.depth--;
    };
    compiled.set(side, { step, min: 0 });
    let min = 0;
    steps = type.fields.map((field) => {
      const fieldReader: ReaderSide =
        side === null ? null : readerFields === undefined ? undefined : (readerFields.get(field.name) ?? null);
      const done = this.compile(field.type, fieldReader);
      min += done.min;
      return done.step;
    });
    const done = { step, min };
    compiled.set(side, done);
    return done;
  }
}

/** A compiled check of one writer schema; throws AvroBoundsError at the first violation. */
export type AvroBoundsCheck = (body: Uint8Array) => void;

/**
 * Compiles the check of a writer schema. With the `reader` it resolves into, a long beyond ±2^53
 * is refused only where the reader reads it: a producer's newer schema that adds a 64-bit id the
 * reader skips had every record dead-lettered (avsc itself steps over skipped fields unread).
 */
export function compileBoundsCheck(writer: avro.Type, reader?: avro.Type): AvroBoundsCheck {
  const { step } = new Compiler().compile(writer, reader);
  return (body) => {
    const c: Cursor = { buf: body, pos: 0, end: body.length, depth: 0, emptyItems: 0 };
    step(c);
    if (c.pos !== c.end) throw new AvroBoundsError(`${c.end - c.pos} trailing byte(s) after the value`, c.pos);
  };
}
