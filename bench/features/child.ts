// Child processes of the under-write benchmark (forked by index.ts with its execArgv, so tsx and
// the `source` condition apply). Roles, from argv[2]:
// - `client <port> <single|batch> <entities>`: one keep-alive connection, one request in flight;
//   warms up, sends `warm`, measures from `start` to `stop` and sends back the latencies (ms);
// - `api <redisUrl> <keyPrefix>`: the feature API over Redis in a process of its own; sends
//   `{ port }`, exits on `stop`.
import { Agent } from 'node:http';
import { silentLogger } from '@driftline/core';
import { startFeatureApi } from '@driftline/feature-api/bench';
import { createMetricsRegistry } from '@driftline/observability';
import { createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { httpCall } from './http.js';
import { benchViews } from './views.js';

type ParentMessage = 'start' | 'stop';

const send = (message: unknown) => process.send?.(message);
const onMessage = (handler: (m: ParentMessage) => void) => process.on('message', handler);

async function call(agent: Agent, port: number, method: string, path: string, body: string | undefined): Promise<void> {
  const status = await httpCall(agent, port, method, path, body);
  if (status !== 200) throw new Error(`status ${status}`);
}

async function client(port: number, kind: 'single' | 'batch', entities: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const make = (i: number): [string, string, string | undefined] =>
    kind === 'single'
      ? ['GET', `/v1/features/bench/ent-${(i * 7919) % entities}`, undefined]
      : [
          'POST',
          '/v1/features:batch',
          JSON.stringify({
            requests: [
              {
                view: 'bench',
                entities: Array.from({ length: 100 }, (_, k) => `ent-${(i * 100 + k * 97) % entities}`),
              },
            ],
          }),
        ];
  // Changed by messages while the loop awaits (an object, so the compiler does not narrow it).
  const phase: { state: 'warm' | 'measure' | 'done' } = { state: 'warm' };
  onMessage((m) => {
    if (m === 'start') phase.state = 'measure';
    if (m === 'stop') phase.state = 'done';
  });
  const latencies: number[] = [];
  for (let i = 0; i < 200; i++) await call(agent, port, ...make(i));
  send('warm');
  for (let i = 0; phase.state !== 'done'; i++) {
    const [method, path, body] = make(i);
    const t = performance.now();
    await call(agent, port, method, path, body);
    if (phase.state === 'measure') latencies.push(performance.now() - t);
  }
  agent.destroy();
  // Disconnect once the message is written: a disconnect right after send() can drop a large
  // message (thousands of latencies), and the parent would wait for it forever.
  process.send?.({ latencies }, () => process.disconnect?.());
}

async function api(redisUrl: string, keyPrefix: string): Promise<void> {
  const store = createRedisOnlineStore({ url: redisUrl, tls: false }, { use: 'online-read', keyPrefix });
  await waitReady(store.client);
  const server = await startFeatureApi({
    store,
    views: benchViews,
    registry: createMetricsRegistry({ service: 'bench', defaultMetrics: false }),
    logger: silentLogger,
  });
  onMessage(async (m) => {
    if (m !== 'stop') return;
    await server.close();
    await store.close();
    process.disconnect?.();
  });
  send({ port: server.port });
}

const [role, a, b, c] = process.argv.slice(2);
if (role === 'client') await client(Number(a), b === 'batch' ? 'batch' : 'single', Number(c));
else if (role === 'api') await api(a!, b!);
else throw new Error(`unknown role ${role}`);
