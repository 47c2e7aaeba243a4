import { defineConfig } from 'vitest/config';

// Two projects: `unit` needs no server and runs in seconds; `integration` talks to the real
// local stack (Kafka, Schema Registry, Redis, embedded ClickHouse) started by the global setup.
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
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['{libs,services,schemas,test,docker}/**/*.int.test.ts'],
          exclude: ['**/node_modules/**'],
          globalSetup: ['test/stack/src/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
