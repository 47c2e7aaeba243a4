import { DriftlineError } from '@driftline/core';
import { MAX_ENTITY_LENGTH } from '@driftline/features';

/**
 * Key layout of the online store, version 2. Versioned as Feast's RedisKeyV2 is, so layouts
 * coexist and migrate key by key:
 *
 *   <prefix>:v2:{<view>:<entity%>}      string: the row as one JSON object of strings (features,
 *                                       aggregates, `_t`, `_id`)
 *   <prefix>:v2:{<view>:<entity%>}:w    sorted set: the entity's events inside the longest window
 *
 * Version 1 kept the row in a hash at `<prefix>:v1:{…}` (window set at `…:w`). A batch of rows is
 * one MGET in v2; an HMGET per key cost Redis 10–15 µs a key through a script and the client a
 * command per key without one. v1 rows are migrated by the next write of their entity and read as
 * a fallback until then (see feature-script.ts).
 *
 * The braces are a Redis Cluster hash tag: a row and its window set (of either version) live in
 * one slot, so the Lua script that updates them stays legal on a cluster, while different entities
 * spread over slots. The entity id is user data and is percent-encoded (RFC 3986 unreserved
 * characters kept), so it can never contain `{`, `}`, `:` or a glob character; view names and the
 * prefix are validated.
 */
export const KEY_VERSION = 'v2';

/** Suffix of an entity's window sorted set (appended to its row key). */
export const WINDOW_SUFFIX = ':w';

const PREFIX = /^[A-Za-z0-9_.-]{1,64}$/;
const ROW_KEY = /^([A-Za-z0-9_.-]+):(v1|v2):\{([A-Za-z][A-Za-z0-9_]*):([A-Za-z0-9%_.~-]+)\}$/;

export function isValidKeyPrefix(prefix: string): boolean {
  return PREFIX.test(prefix);
}

/** Percent-encodes an entity id; throws BAD_REQUEST for an empty, oversized or malformed (lone surrogate) id. */
export function encodeEntity(entity: string): string {
  if (entity.length === 0) throw new DriftlineError('BAD_REQUEST', 'entity id is empty');
  if (entity.length > MAX_ENTITY_LENGTH) {
    throw new DriftlineError('BAD_REQUEST', `entity id is longer than ${MAX_ENTITY_LENGTH} characters`);
  }
  let encoded: string;
  try {
    encoded = encodeURIComponent(entity);
  } catch {
    throw new DriftlineError('BAD_REQUEST', 'entity id is not well-formed Unicode');
  }
  return encoded.replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The row key of the current layout. */
export function rowKey(prefix: string, view: string, entity: string): string {
  return `${prefix}:${KEY_VERSION}:{${view}:${encodeEntity(entity)}}`;
}

/** The layout-v1 hash key of the same row (read as a fallback and migrated by the next write). */
export function v1RowKey(row: string): string {
  const at = row.indexOf(`:${KEY_VERSION}:{`);
  return `${row.slice(0, at)}:v1:${row.slice(at + KEY_VERSION.length + 2)}`;
}

export function windowKey(row: string): string {
  return `${row}${WINDOW_SUFFIX}`;
}

/** Inverse of rowKey (for tools and migrations), for both layouts; undefined for any other key. */
export function parseRowKey(
  key: string,
): { prefix: string; version: 'v1' | 'v2'; view: string; entity: string } | undefined {
  const match = ROW_KEY.exec(key);
  if (match === null) return undefined;
  try {
    return {
      prefix: match[1]!,
      version: match[2] as 'v1' | 'v2',
      view: match[3]!,
      entity: decodeURIComponent(match[4]!),
    };
  } catch {
    return undefined;
  }
}
