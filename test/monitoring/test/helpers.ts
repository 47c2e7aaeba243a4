import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse, stringify } from 'yaml';

/** One alert of an Alertmanager webhook message (version 4). */
export interface WebhookAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
}

export interface WebhookReceiver {
  url: string;
  /** Every alert received so far, in arrival order. */
  alerts: WebhookAlert[];
  close(): Promise<void>;
}

/** Alertmanager's webhook body is small; anything larger is refused rather than buffered. */
const MAX_BODY_BYTES = 1_048_576;

/** A local HTTP receiver for Alertmanager's webhook_configs: records every alert it is sent. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const alerts: WebhookAlert[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { alerts?: WebhookAlert[] };
        alerts.push(...(body.alerts ?? []));
        res.writeHead(200).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolvePromise) => server.listen(0, '127.0.0.1', resolvePromise));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/alerts`,
    alerts,
    close: () => new Promise<void>((resolvePromise) => server.close(() => resolvePromise())),
  };
}

/** The rules text with every `for:` replaced by `forDuration`: the same expressions, fired in seconds. */
export function withShortFor(rulesText: string, forDuration: string): string {
  const doc = parse(rulesText) as { groups: Array<{ rules: Array<Record<string, unknown>> }> };
  for (const group of doc.groups) {
    for (const rule of group.rules) if (rule.for !== undefined) rule.for = forDuration;
  }
  return stringify(doc);
}

/** Runs an instant PromQL query; the result vector's samples. */
export async function promQuery(
  prometheusUrl: string,
  query: string,
): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`, {
    signal: AbortSignal.timeout(5_000),
  });
  const body = (await res.json()) as { status: string; data?: { result?: [] }; error?: string };
  if (body.status !== 'success') throw new Error(`query ${query}: ${body.error ?? res.status}`);
  return body.data?.result ?? [];
}
