// The demo's client of the model-server: one keep-alive batch request per simulated second.
import { request } from 'node:http';

export interface ScoredInstance {
  readonly prediction_id: string;
  readonly score: number;
  readonly version: string;
  readonly role: string;
}

export interface PredictInstance {
  readonly entity_id: string;
  readonly features: Readonly<Record<string, number | string>>;
  /** The simulated clock: the model-server stamps the prediction with it. */
  readonly event_time: number;
}

export interface ServedModels {
  readonly production?: string;
  readonly canary?: { readonly version: string; readonly share: number };
  readonly shadows?: readonly string[];
}

function call(
  port: number,
  method: 'GET' | 'POST',
  path: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers:
          body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`model-server ${method} ${path}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Scores a batch; throws with the server's one-line error on any non-200 answer. */
export async function predictBatch(
  port: number,
  model: string,
  instances: readonly PredictInstance[],
): Promise<ScoredInstance[]> {
  const { status, text } = await call(
    port,
    'POST',
    `/v1/models/${encodeURIComponent(model)}:predict`,
    JSON.stringify({ instances }),
  );
  if (status !== 200) throw new Error(`model-server answered ${status}: ${text.slice(0, 300)}`);
  return (JSON.parse(text) as { predictions: ScoredInstance[] }).predictions;
}

/** What the model-server serves for `model` now (GET /v1/models), or undefined when it serves nothing. */
export async function servedModels(port: number, model: string): Promise<ServedModels | undefined> {
  const { status, text } = await call(port, 'GET', '/v1/models');
  if (status !== 200) return undefined;
  const body = JSON.parse(text) as { models?: Array<ServedModels & { model: string }> };
  return body.models?.find((m) => m.model === model);
}
