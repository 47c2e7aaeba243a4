import { userInfo } from 'node:os';
import {
  ARTIFACT_NAME_RULE,
  ConfigError,
  cutText,
  DriftlineError,
  eventTimeMaxFutureField,
  isArtifactName,
  parseEnv,
  printable,
} from '@driftline/core';
import {
  operatorTransitions,
  STAGE_TRANSITIONS,
  type Stage,
  sameTransitions,
  usableClock,
  usableTransitions,
  viewOf,
} from '@driftline/policy';
import { clickhouseEnvShape, openWarehouse, toClickHouseConfig } from '@driftline/warehouse';
import { parseCommandArgs } from '../args.js';
import { withWarehouse } from '../with-warehouse.js';
import { checkEnvNames } from './env-names.js';

const STAGES = Object.keys(STAGE_TRANSITIONS) as Stage[];

/**
 * Who runs the command, for `--by`'s default. A container running as an arbitrary uid (the
 * Kubernetes and OpenShift norm) has no passwd entry: userInfo() throws there, and the command
 * failed as an internal error.
 */
function osUserName(): string {
  try {
    return userInfo().username;
  } catch {
    const name = process.env.USER ?? process.env.LOGNAME;
    if (name !== undefined && name !== '') return name;
    throw new ConfigError('--by', 'is needed here: this user id has no name (no passwd entry, no USER)');
  }
}

export const modelUsage = `usage: driftline model stage --model NAME --version V --to STAGE [options]

Moves a model version to another stage by hand (decided_by operator:<name>), checked against the
stage graph (${STAGES.join(', ')}) and the recorded transitions. The
transition is recorded in ClickHouse (model_transitions); the running model-controller publishes
it on models.v1 at its next tick (it re-publishes every recorded transition it has not sent),
and compares from there (a version moved to production is watched against the one it replaced).
A move to canary or production (or a rollback of production) stores the model's event clock as
serving_from, as the model-controller does (DRIFTLINE_EVENT_TIME_MAX_FUTURE bounds it).
ClickHouse comes from DRIFTLINE_CLICKHOUSE_* (embedded engine by default).

  --model NAME      the model
  --version V       the version to move
  --to STAGE        the stage to move it to
  --reason TEXT     why (recorded and published; default "operator")
  --share X         canary share in (0, 1] when --to canary (default 0.1)
  --by NAME         the operator's name (default: the user running the command)
  --help            this help
`;

/** The command's options (every one is in its usage: test/cli-surface.test.ts). */
export const modelOptions = {
  model: { type: 'string' },
  version: { type: 'string' },
  to: { type: 'string' },
  reason: { type: 'string' },
  share: { type: 'string' },
  by: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** `driftline model stage ...`: an operator's stage transition, recorded for the model-controller to publish. */
export async function modelCommand(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseCommandArgs(sub === 'stage' ? rest : args, modelOptions);
  if (values.help) {
    process.stdout.write(modelUsage);
    return 0;
  }
  if (sub !== 'stage') {
    // Shaped like node's parseArgs errors, so the CLI reports it as a usage error (exit 2). No
    // subcommand (or an option first) said `unknown subcommand ""`.
    const line =
      sub === undefined || sub.startsWith('-')
        ? 'a subcommand is needed: stage (driftline model stage --model M --version V --to STAGE)'
        : `unknown subcommand ${JSON.stringify(cutText(sub, 128))}: the only one is "stage"`;
    throw Object.assign(new Error(line), { code: 'ERR_PARSE_ARGS_UNKNOWN_SUBCOMMAND' });
  }
  const need = (name: 'model' | 'version' | 'to') => {
    const v = values[name];
    if (v === undefined || v === '') throw new ConfigError(`--${name}`, 'is required');
    return v;
  };
  const model = need('model');
  const version = need('version');
  // A version the model-server could never load (and a text card could be broken by) is refused.
  for (const [option, name] of [
    ['--model', model],
    ['--version', version],
  ] as const) {
    if (!isArtifactName(name)) throw new ConfigError(option, `must be ${ARTIFACT_NAME_RULE}`);
  }
  const to = need('to');
  if (!STAGES.includes(to as Stage)) throw new ConfigError('--to', `must be one of ${STAGES.join(', ')}`);
  const share = values.share === undefined ? undefined : Number(values.share);
  if (share !== undefined && !(share > 0 && share <= 1)) throw new ConfigError('--share', 'must be a number in (0, 1]');
  const operator = values.by ?? osUserName();
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(operator)) throw new ConfigError('--by', 'must be 1-64 of A-Z a-z 0-9 . _ @ -');
  await checkEnvNames();
  const { DRIFTLINE_EVENT_TIME_MAX_FUTURE: maxFutureMs } = parseEnv({
    DRIFTLINE_EVENT_TIME_MAX_FUTURE: eventTimeMaxFutureField,
  });
  const config = toClickHouseConfig(parseEnv(clickhouseEnvShape));
  return withWarehouse(
    () => openWarehouse(config),
    async (warehouse) => {
      const now = Date.now();
      const history = await warehouse.transitions.history(model);
      // The model's event clock, read as the model-controller reads it: a move to canary or
      // production (or a rollback of production) stores it as serving_from while this wall clock is
      // on it. Read for those moves only: it scans the model's labelled rows (1.5-4 s at 12M rows,
      // found by a review), and `--to rolled_back` is the emergency lever.
      const notAfter = now + maxFutureMs;
      const serving = to === 'canary' || to === 'production' || to === 'rolled_back';
      const clock = serving
        ? usableClock(await warehouse.predictions.labelClock(model, now, notAfter), notAfter, maxFutureMs)
        : undefined;
      const movesOn = (read: typeof history) => {
        try {
          return operatorTransitions(read, model, {
            version,
            to: to as Stage,
            at: now,
            operator,
            reason: values.reason ?? 'operator',
            ...(share === undefined ? {} : { canaryShare: share }),
            ...(clock === undefined ? {} : { clock }),
          });
        } catch (error) {
          // A move the stage graph does not allow is a usage error of --to (exit 2), not an internal one.
          if (error instanceof DriftlineError && error.code === 'BAD_REQUEST')
            throw new ConfigError('--to', error.message);
          throw error;
        }
      };
      let rows = movesOn(history);
      // Read again just before the write: the clock's read takes seconds, and a model-controller may
      // have recorded a decision meanwhile (a promotion of the canary this rolls back). Written on
      // the first read, the move was dated before that decision and checked against a stage the
      // version had left: the controller's promotion, dated later, undid the rollback (found by a
      // review). On the new history it moves the version from where it is now, dated after it.
      const fresh = await warehouse.transitions.history(model);
      if (!sameTransitions(history, fresh)) {
        // The decision that landed meanwhile did what was asked (a controller rolled the canary back
        // while `--to rolled_back` ran): done, not a usage error (`no transition rolled_back →
        // rolled_back`, exit 2, found by a regression review).
        const usable = usableTransitions(fresh);
        if (viewOf(usable).versions.get(version)?.stage === to) {
          const by = usable
            .filter((t) => t.version === version && t.to_stage === to)
            .reduce<(typeof usable)[number] | undefined>(
              (a, t) => (a === undefined || t.at >= a.at ? t : a),
              undefined,
            );
          const who = by?.decided_by ?? 'another record';
          // A canary at another share than the one asked is not what was asked (found by a regression
          // review: `--share 0.5` said "already canary" of a canary at 0.1). Canary → canary is no move
          // of the stage graph, so it is the usage error (2) the same command gets once the canary is
          // recorded before it starts ("no transition canary → canary").
          const recordedShare = by?.canary_share ?? null;
          if (to === 'canary' && share !== undefined && recordedShare !== share) {
            throw new ConfigError(
              '--share',
              printable(
                `${model} ${version} became canary at share ${recordedShare ?? '(none recorded)'} (by ${who}) while this command ran, not at the ${share} asked: nothing recorded`,
              ),
            );
          }
          const done = `${model} ${version} already ${to} (by ${who}), recorded while this command ran: nothing recorded`;
          process.stdout.write(`${printable(done)}\n`);
          return 0;
        }
        rows = movesOn(fresh);
      }
      await warehouse.transitions.record(rows.map((r) => ({ ...r, model, recorded_at: now })));
      const last = rows.at(-1);
      const recorded = `recorded ${model} ${version}: ${last?.from_stage ?? 'new'} → ${last?.to_stage} (operator:${operator}); the model-controller publishes it on models.v1 at its next tick`;
      process.stdout.write(`${printable(recorded)}\n`);
      return 0;
    },
  );
}
