import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { type Column, csvColumns } from '@driftline/batch-drift';
import { DriftlineError } from '@driftline/core';
import { tableFromIPC } from 'apache-arrow';

/**
 * Reads a CSV (header row; typed by the shared `csvColumns`, as `driftline reference` reads it) or an
 * Arrow IPC file (.arrow, .feather, .ipc) into typed columns.
 */
export function readTable(path: string): Column[] {
  const ext = extname(path).toLowerCase();
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new DriftlineError('BAD_REQUEST', `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (ext === '.arrow' || ext === '.feather' || ext === '.ipc') return arrowColumns(bytes);
  return csvColumns(bytes.toString('utf8'), path);
}

function arrowColumns(bytes: Buffer): Column[] {
  const table = tableFromIPC(bytes);
  return table.schema.fields.map((field, i) => {
    const vector = table.getChildAt(i)!;
    const values = vector.toArray() as ArrayLike<unknown>;
    const typeId = String(field.type);
    if (/^(Float|Int|Uint)/.test(typeId)) {
      const out = new Float64Array(vector.length);
      for (let r = 0; r < vector.length; r++) out[r] = vector.isValid(r) ? Number(values[r]) : Number.NaN;
      return { name: field.name, kind: 'numeric' as const, values: out };
    }
    const out: Array<string | null> = [];
    for (let r = 0; r < vector.length; r++) {
      const v: unknown = vector.get(r);
      out.push(v === null || v === undefined ? null : String(v));
    }
    return { name: field.name, kind: 'categorical' as const, values: out };
  });
}
