import net from 'node:net';

/**
 * redis-server arguments: loopback only, foreground (we detach it ourselves), no persistence — or,
 * `durable`, the settings the README documents for production (an AOF synced every second, no
 * eviction), so a restart with the same `dir` gets its data back.
 */
export function redisArgs(port: number, dir: string, durable = false): string[] {
  const persistence = durable
    ? ['--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction']
    : ['--appendonly', 'no'];
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    ...persistence,
    '--dir',
    dir,
    '--daemonize',
    'no',
  ];
}

/** Sends PING over a plain TCP socket and expects +PONG. */
export function redisPing(port: number, host = '127.0.0.1', timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host });
    let reply = '';
    const done = (err?: Error) => {
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`no PING reply from ${host}:${port} within ${timeoutMs} ms`)));
    socket.once('error', (err) => done(err));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      if (!reply.includes('\r\n')) return;
      if (reply.startsWith('+PONG')) done();
      else done(new Error(`unexpected PING reply from ${host}:${port}: ${reply.trim()}`));
    });
  });
}
