import { defineConfig } from 'vitest/config';
import { useRunTempDir } from './test/scripts/run-temp-dir.js';

// Every run's temporary files in one folder of its own, removed when the run passes.
useRunTempDir();

// `unit` needs no server and runs in seconds; `integration` and `integration-exclusive` talk to the
// real local stack (Kafka, Schema Registry, Redis, embedded ClickHouse) started by the global setup.
// Files that run after the others, by themselves: the chaos run and the demo drive every service at once,
// and the stack tests start and restart JVMs of their own.
const EXCLUSIVE = [
  'test/chaos/test/chaos.int.test.ts',
  'services/demo/test/demo.int.test.ts',
  'test/stack/test/restart.int.test.ts',
];

const integration = {
  globalSetup: ['test/stack/src/global-setup.ts'],
  testTimeout: 120_000,
  hookTimeout: 180_000,
};

export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  // The integration global setup (test/stack) runs in vitest's own environment; it imports the Kafka facade too.
  environments: { __vitest__: { resolve: { conditions: ['source'] } } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['{libs,services,schemas,test,docker}/**/*.test.ts'],
          exclude: ['**/*.int.test.ts', '**/node_modules/**'],
          // Both cores (the default leaves one free): most of a unit file's time is its import.
          maxWorkers: 2,
          // A limit for hung tests, not a speed check: a loaded 2-core machine runs the heavier
          // property and subprocess tests several times slower than an idle one.
          testTimeout: 30_000,
          // One module graph per worker, not per file: imports were 70% of the unit run (137 of
          // 205 s); unit tests share no mutable module state (no vi.mock, no globals).
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['{libs,services,schemas,test,docker}/**/*.int.test.ts'],
          exclude: ['**/node_modules/**', ...EXCLUSIVE],
          ...integration,
          // Every file names its own topics, groups, databases and private servers, so files can
          // share the stack. Most of their time is spent waiting on brokers, timers and staged
          // outages: with three at once the cores were 15–50% busy for the first five minutes.
          // Five at once: this group 578 → 420 s in a warm checkout, 543 → 390 s in a fresh clone
          // (whose cold caches keep the cores 75–99% busy). Their waits are hang guards, not speed
          // checks: keep them generous.
          maxWorkers: 5,
          // After the unit tests (which have the cores to themselves first).
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration-exclusive',
          include: EXCLUSIVE,
          ...integration,
          fileParallelism: false,
          // After the shared group, one at a time: they saturate both cores, and they restart
          // servers on the ports they keep. Run together (178 → 130 s), the stack-restart test's
          // Redis found its port taken by another process when it came back (the chaos run and the
          // demo start servers on free ports).
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
