import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { afterEach, describe, expect, it } from 'vitest';
import { runWorker } from '../src/worker.js';

describe('the Python worker gets only the environment it needs (issue 11, defect 9)', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
  });

  it('passes no driftline secrets or unrelated variables, and keeps PATH, HOME and the CUDA ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-env-'));
    // A stand-in interpreter: writes the environment it was given next to the run, then fails.
    const python = join(dir, 'python');
    writeFileSync(python, '#!/bin/sh\nenv > "$5/env.txt"\nexit 1\n');
    chmodSync(python, 0o755);
    process.env.DRIFTLINE_REDIS_PASSWORD = 'redis-secret';
    process.env.DRIFTLINE_KAFKA_SASL_PASSWORD = 'kafka-secret';
    process.env.AWS_SECRET_ACCESS_KEY = 'aws-secret';
    process.env.CUDA_VISIBLE_DEVICES = '0';
    await expect(
      runWorker({
        python,
        data: join(dir, 'train.arrow'),
        outDir: dir,
        device: 'cpu',
        params: {},
        timeoutMs: 10_000,
        logger: silentLogger,
      }),
    ).rejects.toMatchObject({ retriable: true });
    const env = Object.fromEntries(
      readFileSync(join(dir, 'env.txt'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    expect(Object.values(env).join('\n')).not.toMatch(/secret/);
    expect(Object.keys(env).filter((k) => k.startsWith('DRIFTLINE_'))).toEqual([]);
    expect(env.PATH).toBe(process.env.PATH);
    expect(env.CUDA_VISIBLE_DEVICES).toBe('0');
    expect(env.PYTHONUNBUFFERED).toBe('1');
  });
});
