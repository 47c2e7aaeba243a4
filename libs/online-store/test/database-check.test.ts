import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { ConfigError } from '@driftline/core';
import { afterEach, describe, expect, it } from 'vitest';
import { checkRedisDatabase, type RedisDatabaseCheckOptions } from '../src/redis/durability.js';
import { recordingLogger } from './support.js';

/** What a fake Redis answers: the command's name (upper case) and how many of it came before. */
type Answer = (command: string, seen: number) => string;

/** A fake Redis speaking just enough RESP, answering each command with `answer` (INFO: not loading). */
async function fakeRedis(
  answer: Answer,
): Promise<{ server: Server; port: number; selects: () => number; drop: () => void }> {
  const seen = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (data) => {
      // One reply per command (`*<n>` starts each in RESP).
      for (const command of data
        .toString()
        .split('*')
        .filter((c) => c.includes('\r\n'))) {
        const name = (command.split('\r\n').find((part, i) => i > 0 && !part.startsWith('$')) ?? '').toUpperCase();
        const before = seen.get(name) ?? 0;
        seen.set(name, before + 1);
        socket.write(`${answer(name, before)}\r\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    selects: () => seen.get('SELECT') ?? 0,
    drop: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}

const NOT_LOADING = '$11\r\nloading:0\r\n';

/** A Redis that accepts the connection's own SELECT, then answers the check's with `replies` in turn (the last repeated). */
function selectReplies(replies: readonly string[]): Answer {
  return (command, seen) => {
    if (command === 'INFO') return NOT_LOADING;
    if (command !== 'SELECT' || seen === 0) return '+OK';
    return replies[Math.min(seen - 1, replies.length - 1)]!;
  };
}

describe('checkRedisDatabase: the caller decides what a refusal does', () => {
  it('onRefused is required: no default that ends the process (services pass ctx.fatal, the runner exits)', () => {
    // Checked by the type checker (`pnpm typecheck`): it defaulted to a process.exit(78) in this library.
    type OnRefused = Pick<RedisDatabaseCheckOptions, 'onRefused'>;
    const required: OnRefused extends Required<OnRefused> ? true : false = true;
    expect(required).toBe(true);
  });
});

describe('checkRedisDatabase: only a refusal of the index is a verdict', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });

  it('a BUSY reply (a script past its threshold) is an outage asked again, never exit 78', async () => {
    const fake = await fakeRedis(
      selectReplies(['-BUSY Redis is busy running a script. You can only call SCRIPT KILL.', '+OK']),
    );
    servers.push(fake.server);
    const refused: ConfigError[] = [];
    const check = checkRedisDatabase(
      { url: `redis://127.0.0.1:${fake.port}/3`, tls: false },
      { onRefused: (e) => void refused.push(e) },
    );
    try {
      await check.whenAccepted;
      expect(refused).toEqual([]);
      expect(check.accepted()).toBe(true);
      expect(fake.selects()).toBeGreaterThanOrEqual(3); // the connect's, the BUSY one, the accepted one
    } finally {
      check.stop();
    }
  }, 30_000);

  it('ERR DB index is out of range is the refusal, naming DRIFTLINE_REDIS_URL', async () => {
    const fake = await fakeRedis(selectReplies(['-ERR DB index is out of range']));
    servers.push(fake.server);
    const refusal = new Promise<ConfigError>((resolve) => {
      const check = checkRedisDatabase({ url: `redis://127.0.0.1:${fake.port}/3`, tls: false }, { onRefused: resolve });
      setTimeout(() => check.stop(), 20_000).unref();
    });
    const error = await refusal;
    expect(error.field).toBe('DRIFTLINE_REDIS_URL');
    expect(error.message).toMatch(/refuses database 3 \(ERR DB index is out of range\)/);
  }, 30_000);
});

describe('checkRedisDatabase: a reply that cannot change is a refusal, one that can is asked again and logged', () => {
  const cleanup: Array<() => void> = [];
  afterEach(() => {
    for (const fn of cleanup.splice(0)) fn();
  });

  /** The check of database 3 on a fake, its refusals and warnings recorded. */
  async function checkOn(answer: Answer, userInfo = '') {
    const fake = await fakeRedis(answer);
    const refusals: ConfigError[] = [];
    const warnings: Array<{ obj: object; msg?: string }> = [];
    const check = checkRedisDatabase(
      { url: `redis://${userInfo}127.0.0.1:${fake.port}/3`, tls: false },
      { onRefused: (e) => void refusals.push(e), logger: recordingLogger('warn', warnings) },
    );
    cleanup.push(() => {
      check.stop();
      fake.server.close();
    });
    return { fake, check, refusals, warnings };
  }

  const until = async (condition: () => boolean, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  };

  it('a cluster, a server or proxy without SELECT, an ACL user without it: one refusal naming the reply', async () => {
    // Each was asked again once a second for ever, silently, never ready (before: exit 78 with one line).
    const cases = [
      ['-ERR SELECT is not allowed in cluster mode', ' (a Redis Cluster has only database 0)'],
      ["-ERR unknown command 'SELECT', with args beginning with: '3' ", ''],
      ["-NOPERM User app has no permissions to run the 'select' command", ''],
    ] as const;
    const checks = await Promise.all(
      // A real server refuses the connection's own SELECT too.
      cases.map(([reply]) =>
        checkOn((command) => (command === 'INFO' ? NOT_LOADING : command === 'SELECT' ? reply : '+OK')),
      ),
    );
    await until(() => checks.every((c) => c.refusals.length > 0));
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // a retry would have come by now
    for (const [i, [reply, hint]] of cases.entries()) {
      const { refusals, check, fake, warnings } = checks[i]!;
      expect(refusals).toHaveLength(1);
      expect(refusals[0]!.field).toBe('DRIFTLINE_REDIS_URL');
      expect(refusals[0]!.message).toBe(`DRIFTLINE_REDIS_URL: the server refuses SELECT 3: ${reply.slice(1)}${hint}`);
      expect(check.accepted()).toBe(false);
      expect(fake.selects()).toBeLessThanOrEqual(2); // the connect's and at most one of the check
      expect(warnings).toEqual([]);
    }
  }, 30_000);

  it('replies that can change (BUSY, LOADING, TRYAGAIN, MASTERDOWN, READONLY) are asked again, then accepted', async () => {
    const replies = [
      '-BUSY Redis is busy running a script. You can only call SCRIPT KILL.',
      '-LOADING Redis is loading the dataset in memory',
      '-TRYAGAIN Multiple keys request during rehashing of slot',
      "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
      "-READONLY You can't write against a read only replica.",
    ];
    const checks = await Promise.all(replies.map((reply) => checkOn(selectReplies([reply, '+OK']))));
    await Promise.all(checks.map((c) => c.check.whenAccepted));
    for (const [i, { refusals, check, warnings }] of checks.entries()) {
      expect(refusals).toEqual([]);
      expect(check.accepted()).toBe(true);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.msg).toContain(replies[i]!.slice(1));
    }
  }, 30_000);

  it('a reply asked again every second is one warning a minute, not one a second', async () => {
    const busy = '-BUSY Redis is busy running a script. You can only call SCRIPT KILL.';
    const { fake, warnings, refusals } = await checkOn(selectReplies([busy]));
    await until(() => fake.selects() >= 4);
    expect(fake.selects()).toBeGreaterThanOrEqual(4);
    expect(refusals).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.obj).toEqual({ reply: busy.slice(1), command: 'SELECT 3' });
  }, 30_000);

  it('a password required and none given (NOAUTH): one refusal naming DRIFTLINE_REDIS_PASSWORD', async () => {
    // The connection never became ready (the ready check's INFO is refused too): no SELECT was ever
    // asked, and the check reconnected for ever in silence.
    const { refusals, check } = await checkOn(() => '-NOAUTH Authentication required.');
    await until(() => refusals.length > 0);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]!.field).toBe('DRIFTLINE_REDIS_PASSWORD');
    expect(refusals[0]!.message).toMatch(/refuses to authenticate the connection: NOAUTH Authentication required\.$/);
    expect(check.accepted()).toBe(false);
  }, 30_000);

  it('a wrong password in the URL: the refusal names DRIFTLINE_REDIS_URL and never the password', async () => {
    const wrongPass = '-WRONGPASS invalid username-password pair or user is disabled.';
    const { refusals } = await checkOn((command) => (command === 'AUTH' ? wrongPass : '+OK'), ':s3cret-pw@');
    await until(() => refusals.length > 0);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]!.field).toBe('DRIFTLINE_REDIS_URL');
    expect(refusals[0]!.message).toContain('WRONGPASS');
    expect(refusals[0]!.message).not.toContain('s3cret-pw');
  }, 30_000);

  it('accepted, then the server behind the address refuses the database: the reconnect asks again, a refusal', async () => {
    // Once accepted it was never asked again: a server with fewer databases (a failover, a restart,
    // a DNS move) made the store clients' SELECT fail and their writes land in database 0.
    let replaced = false;
    const { fake, check, refusals } = await checkOn((command) =>
      command === 'INFO' ? NOT_LOADING : command === 'SELECT' && replaced ? '-ERR DB index is out of range' : '+OK',
    );
    await check.whenAccepted;
    expect(refusals).toEqual([]);
    replaced = true;
    fake.drop(); // the old server's connections end; the check reconnects to the new one
    await until(() => refusals.length > 0);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]!.message).toMatch(
      /^DRIFTLINE_REDIS_URL: the server refuses database 3 \(ERR DB index is out of range\)/,
    );
  }, 30_000);
});
