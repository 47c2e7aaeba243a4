import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError, silentLogger } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { defineService, type ServiceContext, type ServiceDefinition, startRunner } from '../src/index.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const fixture = fileURLToPath(new URL('fixtures/fatal-after-start.ts', import.meta.url));

/** A service that keeps its context (to call fatal later) and records its stop. */
function lateConfigService(events: string[]) {
  const held: { ctx?: ServiceContext } = {};
  const definition = defineService({
    name: 'finds-config-late',
    description: 'test service that finds its configuration wrong after start',
    needs: [],
    envShape: {},
    configure: () => undefined,
    async start(ctx) {
      held.ctx = ctx;
      return { ready: () => true, stop: async () => void events.push('service stopped') };
    },
  }) as unknown as ServiceDefinition<never, unknown>;
  return { definition, fatal: (error: ConfigError) => held.ctx!.fatal(error) };
}

describe('a configuration error found after start-up (ctx.fatal): the runner owns the exit', () => {
  it('hands the ConfigError to onFatal at once, once, with nothing stopped gracefully before it', async () => {
    const events: string[] = [];
    const received: ConfigError[] = [];
    const { definition, fatal } = lateConfigService(events);
    const runner = await startRunner({
      services: [definition],
      env: { DRIFTLINE_HTTP_PORT: '0' },
      logger: silentLogger,
      onFatal: (error) => {
        events.push(`fatal ${error.field}`);
        received.push(error);
      },
    });
    try {
      const first = new ConfigError('DRIFTLINE_REDIS_URL', 'the server refuses database 99');
      fatal(first);
      // Synchronous: no await between the service's call and onFatal, so no batch can commit in between.
      expect(received).toEqual([first]);
      // The services of `all` each check their database: only the first refusal is said.
      fatal(new ConfigError('DRIFTLINE_REDIS_URL', 'the server refuses database 99'));
      expect(received).toHaveLength(1);
      expect(events).toEqual(['fatal DRIFTLINE_REDIS_URL']);
      expect(runner.ready()).toBe(true); // nothing was stopped for it
    } finally {
      await runner.stop();
    }
    expect(events).toEqual(['fatal DRIFTLINE_REDIS_URL', 'service stopped']);
  });

  it.each(['info', 'silent'])(
    'by default: one line naming the field, then exit 78 at once, without a graceful stop (log level %s)',
    async (level) => {
      const env = {
        ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DRIFTLINE_'))),
        FIXTURE_LOG_LEVEL: level,
      };
      const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', fixture], {
        cwd: root,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      const status = await new Promise<number | null>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', resolve);
      });
      const lines = output.split('\n').filter((line) => line !== '');
      expect(status, output).toBe(78);
      expect(lines.some((line) => line.startsWith('started '))).toBe(true);
      const named = lines.filter((line) => line.includes('DRIFTLINE_FATAL_TEST_URL'));
      expect(named).toHaveLength(1);
      // The CLI's line for a configuration error found at start-up, on stderr, whatever the log level.
      expect(named[0]).toBe(
        'driftline: configuration error: DRIFTLINE_FATAL_TEST_URL: the server refuses it after start',
      );
      expect(lines).not.toContain('graceful stop');
      expect(lines).not.toContain('still running after fatal');
    },
  );
});
