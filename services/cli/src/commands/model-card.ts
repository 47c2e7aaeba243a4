import { ConfigError, parseEnv, printable } from '@driftline/core';
import { renderModelCard, renderModelCardText } from '@driftline/report';
import { clickhouseEnvShape, openWarehouse, toClickHouseConfig } from '@driftline/warehouse';
import { parseCommandArgs } from '../args.js';
import { outputFile, writeOutput } from '../output-file.js';
import { withWarehouse } from '../with-warehouse.js';
import { checkEnvNames } from './env-names.js';
import { jsonLine } from './json-line.js';

export const modelCardUsage = `usage: driftline model-card --model M --version V [--out card.html] [--json]

The model card of one version, from ClickHouse: training data window and row count, features,
device, offline metrics against the version it challenged, live metrics overall and by segment,
drift of the challenged version over the training window, stage history with the evidence of
every decision, and lineage (retrain request and decision, reference profile, artifact).
Prints the card as text; --out also writes it as one self-contained HTML page, --json prints the
card's data as one JSON object instead of text. A model and version nothing is recorded for exits 3
("check the names given").
ClickHouse comes from DRIFTLINE_CLICKHOUSE_URL, or the embedded engine at DRIFTLINE_CLICKHOUSE_PATH;
the database is DRIFTLINE_CLICKHOUSE_DATABASE. Nothing is created: a database, or an engine
directory, that holds no warehouse is a configuration error (exit 78).

  --model M      the model (required)
  --version V    the version (required)
  --out FILE     also write the card as HTML to FILE
  --json         print the data as JSON instead of text
  --debug        stack traces for errors
  --help         this help
`;

/** The command's options (every one is in its usage: test/cli-surface.test.ts). */
export const modelCardOptions = {
  model: { type: 'string' },
  version: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** `driftline model-card`: one version's card as text, JSON or HTML. */
export async function modelCardCommand(args: readonly string[]): Promise<number> {
  const { values } = parseCommandArgs(args, modelCardOptions);
  if (values.help) {
    process.stdout.write(modelCardUsage);
    return 0;
  }
  const { model, version } = values;
  if (model === undefined || model === '') throw new ConfigError('--model', 'is required');
  if (version === undefined || version === '') throw new ConfigError('--version', 'is required');
  const out = values.out === undefined ? undefined : outputFile('--out', values.out);
  // Reading only: a mistyped database or engine directory is an error, not a new empty one (nothing is
  // created), and a read-only user can read.
  await checkEnvNames();
  const config = toClickHouseConfig(parseEnv(clickhouseEnvShape));
  return withWarehouse(
    () => openWarehouse(config, { migrate: false }),
    async (warehouse) => {
      const card = await warehouse.modelCard(model, version);
      if (out !== undefined) {
        writeOutput('--out', out, renderModelCard(card));
        process.stderr.write(`model card written: ${out}\n`);
      }
      // Names and features come from events: printed, never run as terminal commands.
      process.stdout.write(
        values.json
          ? jsonLine(card, process.stdout.isTTY === true)
          : printable(renderModelCardText(card), { lines: true }),
      );
      return 0;
    },
  );
}
