import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type FeatureViews,
  offlineRow,
  parseFeatureViewsText,
  type ValidatedEvent,
  validateFeatureEvent,
} from '@driftline/features';
import type { FeatureRow, OnlineStore } from '@driftline/online-store';
import type { FeatureEvent } from '@driftline/schemas';
import { type StackAddresses, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';

export const VIEWS_YAML = `
views:
  - name: profile
    entity: user_id
    ttl: 1d
    features:
      age: double
      country: string
      premium: boolean
      score: double
  - name: spend
    entity: user_id
    ttl: 2d
    features:
      amount: double
      fee: double
    aggregates:
      - { feature: amount, function: count, window: 10m }
      - { feature: amount, function: sum, window: 10m }
      - { feature: amount, function: mean, window: 1h }
      - { feature: fee, function: min, window: 1h }
      - { feature: fee, function: max, window: 1d }
`;

export const views: FeatureViews = parseFeatureViewsText(VIEWS_YAML);

/** Writes the test views to a temporary file and returns its path. */
export function writeViewsFile(text = VIEWS_YAML): string {
  const path = join(tmpdir(), `${uniqueName('views')}.yaml`);
  writeFileSync(path, text);
  return path;
}

/** A materializer's runner environment on the stack (no HTTP port of its own); `vars` adds or overrides. */
export function materializerEnv(stack: StackAddresses, vars: Record<string, string>): Record<string, string> {
  return {
    DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
    DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
    DRIFTLINE_REDIS_URL: stack.redisUrl,
    DRIFTLINE_HTTP_PORT: '0',
    ...vars,
  };
}

/** A deterministic PRNG so failures are reproducible (the shared mulberry32). */
export const rng = seededUniform;

/**
 * An event log over a few entities and both views, spread over 2 hours of event time (so windows
 * slide), with tied event times, nulls and non-dyadic decimals (so float sums depend on order).
 */
export function eventLog(
  count: number,
  entities: number,
  seed: number,
  base = Date.now() - 3 * 3_600_000,
): FeatureEvent[] {
  const random = rng(seed);
  const countries = ['fr', 'de', 'it', 'es', 'pl'];
  return Array.from({ length: count }, (_, i) => {
    const view = random() < 0.5 ? 'profile' : 'spend';
    const event_time = base + Math.floor(random() * 480) * 15_000; // 2 h on a 15 s grid: many ties
    const maybe = <T>(v: T): T | null => (random() < 0.1 ? null : v);
    const features: FeatureEvent['features'] =
      view === 'profile'
        ? {
            age: maybe(Math.floor(random() * 90)),
            country: maybe(countries[Math.floor(random() * countries.length)]!),
            premium: maybe(random() < 0.5),
            score: maybe(Math.round(random() * 1e6) / 1e3),
          }
        : { amount: maybe(Math.round(random() * 100_000) / 100), fee: maybe(Math.round(random() * 1_000) / 100) };
    if (random() < 0.05) delete features[view === 'profile' ? 'score' : 'fee'];
    return {
      event_id: `ev-${seed}-${i}`,
      view,
      entity_id: `user:${Math.floor(random() * entities)}{x}`,
      event_time,
      features,
    };
  });
}

/** Shuffles a copy of the log and duplicates a share of it. */
export function shuffledWithDuplicates<T>(log: readonly T[], seed: number, duplicateShare = 0.3): T[] {
  const random = rng(seed);
  const out = [...log, ...log.filter(() => random() < duplicateShare)];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The offline last-write-wins (and window aggregates) of the log, per `view/entity`. */
export function offlineState(log: readonly FeatureEvent[]): Map<string, ReturnType<typeof offlineRow>> {
  const groups = new Map<string, ValidatedEvent[]>();
  for (const e of log) {
    const v = validateFeatureEvent(views, e);
    const key = `${v.view.name}/${v.entity}`;
    groups.set(key, [...(groups.get(key) ?? []), v]);
  }
  return new Map([...groups].map(([key, events]) => [key, offlineRow(events[0]!.view, events)]));
}

/** Reads the online rows of every (view, entity) the expected state names, in one batch read. */
export async function onlineState(
  store: OnlineStore,
  expected: ReadonlyMap<string, unknown>,
): Promise<Map<string, FeatureRow | undefined>> {
  const keys = [...expected.keys()];
  const rows = await store.readBatch(
    keys.map((key) => {
      const [view, entity] = splitKey(key);
      return { view: views.get(view)!, entities: [entity] };
    }),
  );
  return new Map(keys.map((key, i) => [key, rows[i]![0]]));
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

/** Entity by entity: the keys whose online row differs from the offline one. */
export function differences(
  expected: ReadonlyMap<string, unknown>,
  actual: ReadonlyMap<string, unknown>,
): Array<{ key: string; expected: unknown; actual: unknown }> {
  const out: Array<{ key: string; expected: unknown; actual: unknown }> = [];
  for (const [key, value] of expected) {
    if (JSON.stringify(value) !== JSON.stringify(actual.get(key)))
      out.push({ key, expected: value, actual: actual.get(key) });
  }
  return out;
}
