// `make demo`: the whole loop on the local stack, in one process with embedded ClickHouse.
// Progress goes to stdout; the last line is a one-line JSON summary.
import { stackRelease, stackUp } from '@driftline/stack';
import { runDemo } from './run-demo.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  say('driftline demo: starting the local stack (Kafka, Schema Registry, Redis)…');
  const stack = await stackUp({ testRun: true, log: (l) => say(`  ${l}`) });
  say(`stack ready in ${(stack.startupMs / 1000).toFixed(1)} s`);
  try {
    const result = await runDemo({
      endpoints: stack.endpoints,
      say,
      speed: Number(process.env.DRIFTLINE_DEMO_SPEED ?? 30),
      rate: Number(process.env.DRIFTLINE_DEMO_RATE ?? 40),
      keep: process.env.DRIFTLINE_DEMO_KEEP === '1',
    });
    await stackRelease({ log: (l) => say(`  ${l}`) });
    say(JSON.stringify(result.summary));
  } catch (error) {
    await stackRelease({ log: (l) => say(`  ${l}`) }).catch(() => {});
    throw error;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
