import { DriftlineError } from '@driftline/core';
import { MAX_ENTITY_LENGTH } from '@driftline/features';

/**
 * Key layout of the online store, version 1. Versioned as Feast's RedisKeyV2 is, so a future
 * layout can coexist with this one and be migrated key by key (`parseRowKey` reads v1 keys):
 *
 *   <prefix>:v1:{<view>:<entity%>}      hash: the row (features, aggregates, `_t`, `_id`)
 *   <prefix>:v1:{<view>:<entity%>}:w    sorted set: the entity's events inside the longest window
 *
 * The braces are a Redis Cluster hash tag: a row and its window set live in one slot, so the Lua
 * script that updates both stays legal on a cluster, while different entities spread over slots.
 * The entity id is user data and is percent-encoded (RFC 3986 unreserved characters kept), so it
 * can never contain `{`, `}`, `:` or a glob character; view names and the prefix are validated.
 */
export const KEY_VERSION = 'v1';

/** Suffix of an entity's window sorted set (appended to its row key). */
export const WINDOW_SUFFIX = ':w';

const PREFIX = /^[A-Za-z0-9_.-]{1,64}$/;
const ROW_KEY_V1 = /^([A-Za-z0-9_.-]+):v1:\{([A-Za-z][A-Za-z0-9_]*):([A-Za-z0-9%_.~-]+)\}$/;

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

export function rowKey(prefix: string, view: string, entity: string): string {
  return `${prefix}:${KEY_VERSION}:{${view}:${encodeEntity(entity)}}`;
}

export function windowKey(row: string): string {
  return `${row}${WINDOW_SUFFIX}`;
}

/** Inverse of rowKey (for tools and migrations); undefined for a key of another layout. */
export function parseRowKey(key: string): { prefix: string; view: string; entity: string } | undefined {
  const match = ROW_KEY_V1.exec(key);
  if (match === null) return undefined;
  try {
    return { prefix: match[1]!, view: match[2]!, entity: decodeURIComponent(match[3]!) };
  } catch {
    return undefined;
  }
}
