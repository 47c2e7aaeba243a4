import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer, ensureTopics } from '@driftline/kafka';
import { contracts, type DriftAlert } from '@driftline/schemas';
import { kafkaFor } from '@driftline/test-support';

/** Where the real stack is (the test setup's `stack`). */
interface StackEndpoints {
  readonly kafkaBrokers: readonly string[];
  readonly schemaRegistryUrl: string;
}

export interface Received {
  readonly path: string;
  readonly body: Record<string, unknown>;
  readonly headers: IncomingHttpHeaders;
  readonly at: number;
}

/** A receiver's answer: a status, or a status with headers (a `Retry-After`). */
export type Answer = number | { readonly status: number; readonly headers: Readonly<Record<string, string>> };

/** A webhook receiver on loopback: records every request; `answer` decides the status (and headers) per path (and body). */
export class Receiver {
  readonly received: Received[] = [];
  private server: Server | undefined;
  constructor(
    readonly port: number,
    private readonly answer: (path: string, n: number, body: Record<string, unknown>) => Answer = () => 200,
    private readonly answered: (n: number) => void = () => {},
  ) {}
  start(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '';
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        const answer = this.answer(path, this.received.filter((r) => r.path === path).length + 1, body);
        const { status, headers } = typeof answer === 'number' ? { status: answer, headers: {} } : answer;
        this.received.push({ path, body, headers: req.headers, at: Date.now() });
        res
          .writeHead(status, { 'content-type': 'text/plain', ...headers })
          .end(status === 200 ? 'ok' : `status ${status}`);
        this.answered(this.received.length);
      });
    });
    this.server = server;
    return new Promise((resolve) => server.listen(this.port, '127.0.0.1', () => resolve()));
  }
  stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }
  on(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }
}

/** A FEATURE_DRIFT alert of model fraud for the minute after `base`, with `over` applied. */
export function driftAlert(id: string, base: number, over: Partial<DriftAlert> = {}): DriftAlert {
  return {
    alert_id: id,
    kind: 'FEATURE_DRIFT',
    model: 'fraud',
    model_version: 'v1',
    feature: 'amount',
    window_start: base,
    window_end: base + 60_000,
    event_time: base + 60_000,
    method: 'psi',
    statistic: 0.4,
    p_value: null,
    threshold: 0.2,
    share_drifted: 0.2,
    evidence: '{"reference_n":1000,"current_n":800}',
    ...over,
  };
}

/** Publishes `alerts` to `topic` (created with one partition) in one request: the router reads them as one batch. */
export async function publishAlerts(
  stack: StackEndpoints,
  topic: string,
  alerts: readonly DriftAlert[],
): Promise<void> {
  const kafka = kafkaFor(stack.kafkaBrokers);
  await ensureTopics(kafka, [{ topic, partitions: 1 }]);
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.alert, topic);
  const producer = await createProducer(kafka);
  const messages = [];
  for (const a of alerts) messages.push({ key: a.model, value: await codec.encode(a) });
  await producer.send(topic, messages);
  await producer.disconnect();
}

/** The router's environment on the real stack: short timeouts and retry delays, `retryBudget` per message. */
export function routerEnv(o: {
  readonly stack: StackEndpoints;
  readonly prefix: string;
  readonly database: string;
  readonly chdbPath: string;
  readonly routesFile: string;
  readonly group: string;
  readonly retryBudget: string;
  /** DRIFTLINE_ALERT_ROUTER_START of a new receiver group (default: the service's, `latest`). */
  readonly start?: 'latest' | 'earliest';
}): Record<string, string> {
  return {
    DRIFTLINE_KAFKA_BROKERS: o.stack.kafkaBrokers.join(','),
    DRIFTLINE_SCHEMA_REGISTRY_URL: o.stack.schemaRegistryUrl,
    DRIFTLINE_TOPIC_PREFIX: o.prefix,
    DRIFTLINE_TOPIC_PARTITIONS: '1',
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_LOG_LEVEL: 'warn',
    DRIFTLINE_CLICKHOUSE_DATABASE: o.database,
    DRIFTLINE_CLICKHOUSE_PATH: o.chdbPath,
    DRIFTLINE_ALERT_ROUTES_FILE: o.routesFile,
    DRIFTLINE_ALERT_ROUTER_GROUP: o.group,
    DRIFTLINE_ALERT_ROUTER_TIMEOUT: '2s',
    DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL: '200ms',
    DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY: '1s',
    DRIFTLINE_ALERT_ROUTER_MAX_ATTEMPTS: '40',
    DRIFTLINE_ALERT_ROUTER_RETRY_BUDGET: o.retryBudget,
    ...(o.start === undefined ? {} : { DRIFTLINE_ALERT_ROUTER_START: o.start }),
  };
}
