import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import { DriftlineError } from '@driftline/core';
import { createChdbConnection } from 'chdb/connection';
import type { ClickHouseConfig } from './config.js';

export type { ClickHouseClient } from '@clickhouse/client';

/** A client plus the database it works in; table names are always qualified through `table()`. */
export interface ClickHouse {
  readonly client: ClickHouseClient;
  readonly database: string;
  readonly mode: 'server' | 'embedded';
  /** `database.name`, for SQL text. Identifiers only: values always go through query parameters. */
  table(name: string): string;
  close(): Promise<void>;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

// The embedded engine binds one data directory per process, so its connection is shared by every
// ClickHouse of the process and lives as long as the process.
let embedded: { path: string; client: ClickHouseClient } | undefined;

function embeddedClient(path: string): ClickHouseClient {
  const absolute = resolve(path);
  if (embedded !== undefined) {
    if (embedded.path !== absolute) {
      throw new DriftlineError(
        'CONFIG_INVALID',
        `DRIFTLINE_CLICKHOUSE_PATH: the embedded engine of this process is bound to ${embedded.path}, not ${absolute}`,
      );
    }
    return embedded.client;
  }
  mkdirSync(absolute, { recursive: true });
  const connection = createChdbConnection({ path: absolute });
  // The connection hook is typed against client-common's Connection; chdb implements that interface.
  const client = createClient({ connection } as unknown as Parameters<typeof createClient>[0]);
  embedded = { path: absolute, client };
  return client;
}

/**
 * One code path, two connections: `@clickhouse/client` over HTTP to a ClickHouse server, or over the
 * embedded chdb engine through the client's connection hook. The database is created when missing.
 */
export async function createClickHouse(config: ClickHouseConfig): Promise<ClickHouse> {
  if (!IDENTIFIER.test(config.database)) {
    throw new DriftlineError(
      'CONFIG_INVALID',
      `DRIFTLINE_CLICKHOUSE_DATABASE: ${JSON.stringify(config.database)} is not an identifier`,
    );
  }
  const client =
    config.mode === 'embedded'
      ? embeddedClient(config.path)
      : createClient({
          url: config.url,
          // The embedded engine returns 64-bit integers as JSON numbers; make the server agree.
          clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
          ...(config.username === undefined ? {} : { username: config.username }),
          ...(config.password === undefined ? {} : { password: config.password }),
        });
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${config.database}` });
  return {
    client,
    database: config.database,
    mode: config.mode,
    table(name) {
      if (!IDENTIFIER.test(name)) throw new DriftlineError('INTERNAL', `not a table identifier: ${name}`);
      return `${config.database}.${name}`;
    },
    close: async () => {
      if (config.mode === 'server') await client.close();
    },
  };
}
