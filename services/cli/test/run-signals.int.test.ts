import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { committedOffsets, describeGroup, topicOffsets } from '@driftline/kafka';
import { createDriftlineProducer } from '@driftline/sdk';
import { eventually, freePort, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freshBundle } from './fresh-bundle.js';

const stack = inject('stack');
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const VIEWS = 'views:\n  - name: profile\n    entity: user_id\n    features:\n      age: double\n';
const EVENTS = 60;

/** Every process below `root` (children, grandchildren …), read from /proc. */
function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const [child, parent] of parentOf) {
      if (parent === pid) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(root);
  return out;
}

/** SIGTERM, tolerating a process already gone (killed by an earlier one, as before the fix). */
const signal = (pid: number) => {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // ESRCH
  }
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// One SIGTERM, however it arrives, finishes the batch, commits and leaves the group: sent to the
// process, to its process group and again (as a wrapper relaying it would), or only to the
// `pnpm run` wrapper, which exits without passing it on.
describe('driftline run: shutdown on signals', () => {
  const cleanup: Array<() => Promise<void>> = [];
  let main: string;
  beforeAll(async () => {
    const bundle = await freshBundle('run-signals');
    cleanup.push(bundle.remove);
    main = bundle.main;
  });
  afterAll(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  /** A feature-materializer deployment of its own: topics, group, key prefix, ports. */
  async function deployment() {
    const prefix = `${uniqueName('signals')}.`;
    const group = uniqueName('materializer');
    const viewsDir = mkdtempSync(join(tmpdir(), 'signals-'));
    const viewsFile = join(viewsDir, 'views.yaml');
    writeFileSync(viewsFile, VIEWS);
    cleanup.push(async () => rmSync(viewsDir, { recursive: true, force: true }));
    const httpPort = await freePort();
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? tmpdir(),
      DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
      DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
      DRIFTLINE_REDIS_URL: stack.redisUrl,
      DRIFTLINE_TOPIC_PREFIX: prefix,
      DRIFTLINE_TOPIC_PARTITIONS: '3',
      DRIFTLINE_FEATURE_VIEWS: viewsFile,
      DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('fk'),
      DRIFTLINE_MATERIALIZER_GROUP: group,
      // Long: a group left by the session timeout instead of by the shutdown would show as a member.
      DRIFTLINE_MATERIALIZER_SESSION_TIMEOUT_MS: '120000',
      DRIFTLINE_HTTP_PORT: String(httpPort),
      DRIFTLINE_LOG_LEVEL: 'info',
    };
    const topic = `${prefix}features.v1`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    // The service puts the topic prefix before its group setting.
    return { env, topic, group: `${prefix}${group}`, kafka, httpPort };
  }

  async function ready(child: ChildProcess, httpPort: number, output: () => string): Promise<void> {
    await eventually(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`driftline exited (${child.exitCode ?? child.signalCode}): ${output()}`);
        }
        const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
        return res.status === 200 ? true : undefined;
      },
      90_000,
      200,
    );
  }

  /** Publishes the events and waits until the group has committed them all. */
  async function feedAndCommit(d: Awaited<ReturnType<typeof deployment>>): Promise<void> {
    const sdk = await createDriftlineProducer({
      kafka: { brokers: stack.kafkaBrokers, clientId: 'signals-sdk', ssl: false },
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: d.env.DRIFTLINE_TOPIC_PREFIX,
    });
    await sdk.publishFeatures(
      Array.from({ length: EVENTS }, (_, i) => ({
        event_id: `e${i}`,
        view: 'profile',
        entity_id: `u${i}`,
        event_time: Date.now() - 1_000,
        features: { age: i },
      })),
    );
    await sdk.close();
    await eventually(async () => ((await committedTotal(d)) === BigInt(EVENTS) ? true : undefined), 60_000, 100);
  }

  async function committedTotal(d: Awaited<ReturnType<typeof deployment>>): Promise<bigint> {
    const offsets = await committedOffsets(d.kafka, d.group, d.topic);
    return [...offsets.values()].reduce((a, b) => a + (b > 0n ? b : 0n), 0n);
  }

  it('the compiled bin: SIGTERM to the process, to its group and again shuts down once, cleanly (exit 0)', async () => {
    const d = await deployment();
    const child = spawn(process.execPath, [main, 'run', 'feature-materializer'], {
      cwd: tmpdir(),
      env: d.env,
      detached: true, // a process group of its own, as a shell job or a container's init gives it
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    cleanup.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await ready(child, d.httpPort, () => stderr);
    await feedAndCommit(d);
    expect((await describeGroup(d.kafka, d.group)).members).toBe(1);

    const pid = child.pid!;
    // Apart enough not to be merged by the kernel into one pending signal, close enough to land in the shutdown.
    process.kill(pid, 'SIGTERM');
    await eventually(async () => (stdout.includes('shutting down') ? true : undefined), 10_000, 10);
    signal(-pid);
    await new Promise((r) => setTimeout(r, 50));
    signal(pid);
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(stderr).toBe('');
    expect(stdout).toContain('signal during shutdown ignored');
    expect(stdout).toContain('shutdown complete');
    // Left the group (not waiting out the 120 s session), everything committed.
    expect(await describeGroup(d.kafka, d.group)).toEqual({ state: 'Empty', members: 0 });
    expect(await committedTotal(d)).toBe(BigInt(EVENTS));
    const high = (await topicOffsets(d.kafka, d.topic)).reduce((a, o) => a + o.high, 0n);
    expect(high).toBe(BigInt(EVENTS));
  });

  it('`pnpm -s driftline run`: SIGTERM to pnpm alone still shuts the service down cleanly (no orphan)', async () => {
    const d = await deployment();
    const child = spawn('pnpm', ['-s', 'driftline', 'run', 'feature-materializer'], {
      cwd: repoRoot,
      env: d.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    let below: number[] = [];
    cleanup.push(async () => {
      for (const pid of below) if (alive(pid)) process.kill(pid, 'SIGKILL');
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await ready(child, d.httpPort, () => output);
    below = descendants(child.pid!);
    await feedAndCommit(d);

    child.kill('SIGTERM'); // pnpm only, as `kill <pid of pnpm>` does
    // The service notices its parent is gone, finishes, commits, leaves the group and exits.
    await eventually(async () => (below.every((pid) => !alive(pid)) ? true : undefined), 30_000, 100);
    expect(output).toContain('shutdown complete');
    expect(await describeGroup(d.kafka, d.group)).toEqual({ state: 'Empty', members: 0 });
    expect(await committedTotal(d)).toBe(BigInt(EVENTS));
  });
});
