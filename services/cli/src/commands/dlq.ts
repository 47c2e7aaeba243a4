import { ConfigError, DriftlineError, isRetriable, parseEnv, printable } from '@driftline/core';
import {
  createKafkaClient,
  createProducer,
  DEFAULT_READ_ANSWER_TIMEOUT_MS,
  type DeadLetterSelection,
  DeadLetterSummary,
  type DeadLetterView,
  headerText,
  type InboundRecord,
  kafkaCredentialsError,
  kafkaEnvShape,
  listTopics,
  type OutboundMessage,
  REFUSAL_TYPES,
  REPLAYED_FROM_HEADER,
  readDeadLetter,
  readToEnd,
  replayMessageOf,
  saslConnectionOf,
  selects,
  sourceRecordOf,
  toKafkaConfig,
} from '@driftline/kafka';
import { commonEnvShape } from '@driftline/service';
import { parseCommandArgs } from '../args.js';
import { UnavailableError } from '../describe-error.js';
import { parseTime } from '../time-options.js';
import { checkEnvNames } from './env-names.js';
import { parseConnectTimeout, withinConnectTimeout } from './kafka-reach.js';

export const dlqUsage = `usage: driftline dlq list --topic TOPIC [options]
       driftline dlq replay --topic TOPIC [options]

Reads TOPIC.dlq from its start to its current end (the dead letters the consumer loop wrote, with
their reasons) without committing anything.
  list     counts the dead letters by code and reason, oldest and newest failure of each
  replay   sends the selected dead letters back to TOPIC as they were first written (key, value,
           headers; the driftline.dlq.* headers dropped, driftline.replayed.from added), e.g. after
           a fixed deploy, each source record once (letters of one record, also of its earlier
           replays, are sent once; a marker written to the DLQ per record sent, with the time,
           makes a later run skip every letter of that record that failed before it, filtered
           out or not, while a letter of a copy that failed again afterwards stays replayable).
           Every consumer group of TOPIC reads them again,
           not only the one that dead-lettered them: the online store and the ClickHouse rows keyed
           by event id take a record twice as once, and the label-joiner skips a replayed
           prediction or label whose prediction it already wrote (labeled or expired unlabeled: a
           label replayed after its prediction expired does not join it), but the drift, skew and
           quality windows count a record a group had already taken again. So a DLQ holding
           letters of several groups needs --group. A dead letter cut to fit the DLQ
           (driftline.dlq.truncated) has lost its bytes: counted, not sent. A record that fails
           again goes back to the DLQ.
Kafka comes from DRIFTLINE_KAFKA_* (the services' variables). Brokers that do not answer within
--connect-timeout stop the command with one line naming each broker and why (connection refused,
timed out, name not resolved, TLS handshake failed), exit 69. Brokers that stop answering during the
read (15 s without an answer) or go down stop it with one line too, exit 69: never a partial count.
So does an outage while replay writes (no answer for as long, refused, too few in-sync replicas),
saying how many were sent and marked and how many of the batch in flight a rerun may send twice
(no letter is lost); a write Kafka refuses for good (not authorized, too large) is exit 1, its reason.

  --topic TOPIC          the source topic as Kafka names it, DRIFTLINE_TOPIC_PREFIX included (not added),
                         e.g. predictions.v1; a TOPIC.dlq (or, for replay, a TOPIC) the brokers do not
                         have stops the command at once, naming it (and the prefixed name if that one exists)
  --code CODE            only dead letters with this code (repeatable: INTERNAL, SINK_REJECTED, ...)
  --group GROUP          only those this consumer group dead-lettered (driftline.dlq.consumer.group)
  --since T              only those that failed at or after T (ISO time, epoch ms, or a duration ago: 2h)
  --until T              only those that failed before T
  --reason-contains S    only those whose reason contains S
  --dry-run              replay: count what would be sent, send nothing
  --json                 list: one JSON object per line
  --connect-timeout D    how long to wait for the brokers' first answer (default 15s, 1s to 1h); once
                         they have answered, a long read is not cut while they go on answering
  --help                 this help
`;

/** The command's options (every one is in its usage: test/cli-surface.test.ts). */
export const dlqOptions = {
  topic: { type: 'string' },
  code: { type: 'string', multiple: true },
  group: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  'reason-contains': { type: 'string' },
  'dry-run': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  'connect-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Dead letters sent back per produce request. */
const REPLAY_CHUNK = 100;

/** `driftline dlq list|replay ...`: what is in a topic's DLQ, and sending it back after a fix. */
export async function dlqCommand(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  const known = sub === 'list' || sub === 'replay';
  if (!known && sub !== undefined && !sub.startsWith('-')) {
    // Shaped like node's parseArgs errors, so the CLI reports it as a usage error (exit 2).
    throw Object.assign(new Error(`unknown subcommand ${JSON.stringify(sub)}: list or replay`), {
      code: 'ERR_PARSE_ARGS_UNKNOWN_SUBCOMMAND',
    });
  }
  const { values } = parseCommandArgs(known ? rest : args, dlqOptions);
  if (values.help) {
    process.stdout.write(dlqUsage);
    return 0;
  }
  if (!known) {
    throw Object.assign(new Error('a subcommand is needed: list or replay'), {
      code: 'ERR_PARSE_ARGS_UNKNOWN_SUBCOMMAND',
    });
  }
  const topic = (values.topic ?? '').replace(/\.dlq$/, '');
  if (topic === '') throw new ConfigError('--topic', 'is required (the source topic, e.g. predictions.v1)');
  const now = Date.now();
  const selection: DeadLetterSelection = {
    ...(values.code === undefined ? {} : { codes: new Set(values.code) }),
    ...(values.group === undefined ? {} : { group: values.group }),
    ...(values.since === undefined ? {} : { since: parseTime('since', values.since, now) }),
    ...(values.until === undefined ? {} : { until: parseTime('until', values.until, now) }),
    ...(values['reason-contains'] === undefined ? {} : { reasonContains: values['reason-contains'] }),
  };
  if (selection.since !== undefined && selection.until !== undefined && !(selection.since < selection.until)) {
    throw new ConfigError('--since', 'must be before --until');
  }
  const connectTimeoutMs = parseConnectTimeout(values['connect-timeout']);
  await checkEnvNames();
  const env = parseEnv(kafkaEnvShape);
  const kafka = createKafkaClient(toKafkaConfig(env));
  const dlq = `${topic}.dlq`;
  // The first call to the brokers: bounded, so brokers that do not answer are one line, not minutes
  // of silence (kafkajs retried a refused port for 210-219 s). The read after it is bounded by
  // readToEnd itself: 15 s without an answer from Kafka fails it (see unavailableMidway).
  await withinConnectTimeout(
    { brokers: env.DRIFTLINE_KAFKA_BROKERS, ssl: env.DRIFTLINE_KAFKA_SSL },
    connectTimeoutMs,
    // Credentials Kafka refuses are configuration (exit 78), not an outage: libs/kafka's admin
    // calls report them retriable (held at run time), which withinConnectTimeout takes for one.
    () =>
      checkTopics(kafka, sub === 'list' ? [dlq] : [dlq, topic]).catch((error: unknown) => {
        throw kafkaCredentialsError(error, saslConnectionOf(kafka)) ?? error;
      }),
  );
  const reading = dlqReadOf(connectTimeoutMs);
  if (sub === 'list') {
    try {
      return await list(kafka, dlq, selection, values.json, reading);
    } catch (error) {
      throw unavailableMidway(error, 'nothing listed');
    }
  }
  const progress: ReplayProgress = { marked: 0, unmarked: 0 };
  try {
    return await replay(kafka, topic, dlq, selection, values['dry-run'], reading, progress);
  } catch (error) {
    throw replayStopped(error, {
      topic,
      dlq,
      brokers: env.DRIFTLINE_KAFKA_BROKERS,
      dryRun: values['dry-run'],
      progress,
    });
  }
}

const CHECK_BROKERS =
  'check that the brokers are up (DRIFTLINE_KAFKA_BROKERS) and run it again (a slow link: a longer --connect-timeout)';

/**
 * Kafka gone in the middle of the read of the DLQ — unanswered for 15 s (readToEnd's bound), a
 * connection refused, its consumer crashed — is one line, exit 69, as the first call's bound gives:
 * a hung broker had listed "0 dead letter(s)" after 60 s, exit 0, and a refusing one failed after
 * 214 s with "the consumer crashed", exit 1.
 */
function unavailableMidway(error: unknown, after: string): unknown {
  const outage = error instanceof DriftlineError && isRetriable(error) && error.code === 'SOURCE_UNAVAILABLE';
  if (!outage) return error;
  return new UnavailableError(`${printable(error.message)} — ${after}; ${CHECK_BROKERS}`);
}

/**
 * How far a replay got: its only record of progress is the markers it writes to the DLQ after the
 * records they account for (no consumer offset is committed), so a stopped replay is described by
 * what is marked and what was in flight unmarked.
 */
interface ReplayProgress {
  /** Dead letters sent back and marked: a later run skips them. */
  marked: number;
  /** Of the batch being sent when it stopped, those not marked: some or all may have reached the topic. */
  unmarked: number;
}

/** A write of the replay (a record sent back, a marker, the producer's connect) that failed. */
class ReplayWriteFailed extends Error {
  constructor(
    readonly to: string,
    readonly failure: unknown,
  ) {
    super(failure instanceof Error ? failure.message : String(failure));
  }
}

/**
 * kafkajs' own refusals (error class names, no protocol type), each with what it is reported as:
 * a failed SASL authentication, and a broker that lacks an API kafkajs needs (too old for it).
 */
const REFUSAL_CLASSES: ReadonlyMap<string, string> = new Map([
  ['KafkaJSSASLAuthenticationError', 'SASL_AUTHENTICATION_FAILED'],
  ['KafkaJSServerDoesNotSupportApiKey', 'UNSUPPORTED_VERSION'],
]);

/**
 * The refusal in a failed write (libs/kafka's REFUSAL_TYPES, or one of kafkajs' REFUSAL_CLASSES),
 * found anywhere in the cause chain: libs/kafka's producer reports the refusals of rights and of
 * the topic's setup as a retriable SINK_UNAVAILABLE with kafkajs' error as its cause.
 */
function refusedByBroker(error: unknown, depth = 0): string | undefined {
  if (error === null || typeof error !== 'object' || depth > 5) return undefined;
  const e = error as { type?: unknown; name?: unknown; cause?: unknown; originalError?: unknown };
  if (typeof e.type === 'string' && REFUSAL_TYPES.has(e.type)) return e.type;
  if (typeof e.name === 'string' && REFUSAL_CLASSES.has(e.name)) return REFUSAL_CLASSES.get(e.name);
  return refusedByBroker(e.cause, depth + 1) ?? refusedByBroker(e.originalError, depth + 1);
}

/** An error of kafkajs' (its connect's, when the producer could not connect), anywhere in the cause chain. */
function fromKafkajs(error: unknown, depth = 0): boolean {
  if (error === null || typeof error !== 'object' || depth > 5) return false;
  const e = error as { name?: unknown; cause?: unknown; originalError?: unknown };
  if (typeof e.name === 'string' && e.name.startsWith('KafkaJS')) return true;
  return fromKafkajs(e.cause, depth + 1) || fromKafkajs(e.originalError, depth + 1);
}

/**
 * Whether a failed write of the replay is an outage (exit 69: a script tries again) rather than a
 * refusal (exit 1). A refusal is one of REFUSAL_TYPES, or libs/kafka's own (a non-retriable
 * `SINK_REJECTED`: too large, a partition the topic lacks); anything else Kafka or kafkajs answers
 * is an outage, whatever kafkajs' retriable flag says (Kafka down, hung, refusing connections, not
 * enough in-sync replicas, a broker not available, an unknown server error).
 */
export function isWriteOutage(error: unknown): boolean {
  if (refusedByBroker(error) !== undefined) return false;
  if (error instanceof DriftlineError) return error.retriable;
  return fromKafkajs(error) || isRetriable(error);
}

/** What a run after this one does, from what this one marked and left unmarked. */
function rerunText(p: ReplayProgress, topic: string, dryRun: boolean, when: string): string {
  if (dryRun) return 'nothing was sent (--dry-run)';
  if (p.marked === 0 && p.unmarked === 0) return `nothing was sent: a run ${when} starts from the first letter`;
  const inFlight =
    p.unmarked === 0 ? '' : `; ${p.unmarked} of the batch in flight are not marked and may have reached ${topic}`;
  const twice = p.unmarked === 0 ? '' : `, those ${p.unmarked} possibly a second time`;
  return `${p.marked} sent back and marked before${inFlight}; no dead letter is lost: a run ${when} skips the ${p.marked} marked and sends the rest${twice}`;
}

/**
 * The one line for a replay that stopped: Kafka gone while it read (exit 69) or while it wrote —
 * an outage (exit 69: it used to be exit 1 with the producer's bare message, while a listing
 * against the same broker exited 69) or a refusal (exit 1, its reason) — saying what was sent and
 * marked, what was in flight, and what a run after it does.
 */
function replayStopped(
  error: unknown,
  run: {
    topic: string;
    dlq: string;
    brokers: readonly string[];
    dryRun: boolean;
    progress: ReplayProgress;
  },
): unknown {
  const { topic, dlq, brokers, dryRun, progress } = run;
  if (!(error instanceof ReplayWriteFailed)) {
    return unavailableMidway(error, rerunText(progress, topic, dryRun, 'once Kafka answers'));
  }
  const cause = printable(error.message).slice(0, 300);
  const what = cause.startsWith(`producing to ${error.to}`) ? cause : `producing to ${error.to}: ${cause}`;
  const at = `Kafka at ${brokers.map((b) => printable(b)).join(', ')}`;
  if (isWriteOutage(error.failure)) {
    return new UnavailableError(
      `replaying ${dlq} to ${topic}: ${at} did not take the write: ${what} — ${rerunText(progress, topic, dryRun, 'once Kafka answers')}; ${CHECK_BROKERS}`,
    );
  }
  const refusal = refusedByBroker(error.failure);
  const code = error.failure instanceof DriftlineError ? error.failure.code : 'SINK_REJECTED';
  return new DriftlineError(
    code,
    `replaying ${dlq} to ${topic}: ${at} refused the write${refusal === undefined || what.includes(refusal) ? '' : ` (${refusal})`}: ${what} — ${rerunText(progress, topic, dryRun, 'after a fix')}; a run before the fix is refused again (the rights of this Kafka user on ${error.to}, its max.message.bytes; or leave the letter out with --code, --since, --until or --reason-contains)`,
    { cause: error.failure },
  );
}

/**
 * Stops at once, naming the topic, when the brokers lack one of `topics`: reading a missing DLQ had
 * failed after 8 attempts with "does not host this topic-partition" (`--topic labels.v1` under a
 * DRIFTLINE_TOPIC_PREFIX, found by a review). The name is taken as given, never prefixed: with a
 * prefix, the services' topic is the prefixed one, and the message says so when that one exists.
 */
async function checkTopics(kafka: ReturnType<typeof createKafkaClient>, topics: readonly string[]): Promise<void> {
  const existing = new Set(await listTopics(kafka));
  const missing = topics.find((t) => !existing.has(t));
  if (missing === undefined) return;
  const prefix = parseEnv({ DRIFTLINE_TOPIC_PREFIX: commonEnvShape.DRIFTLINE_TOPIC_PREFIX }).DRIFTLINE_TOPIC_PREFIX;
  const prefixed = `${prefix}${missing}`;
  const hint =
    prefix !== '' && existing.has(prefixed)
      ? `; the services' topic is ${prefixed} (DRIFTLINE_TOPIC_PREFIX=${prefix}): --topic ${prefixed.replace(/\.dlq$/, '')}`
      : '';
  // A name the backend does not hold, as `model-card --version nope` is: exit 3 ("check the names
  // given"), not a usage error (the argument is well formed) nor configuration (no variable is wrong).
  throw new DriftlineError('NOT_FOUND', `--topic: topic ${missing} does not exist on the brokers${hint}`);
}

/** How each read of the DLQ is bounded (readToEnd's options). */
interface DlqRead {
  readonly answerTimeoutMs: number;
}

/**
 * The read's bound on an answer: --connect-timeout's, at least readToEnd's 15 s. A fetch still
 * arriving over a slow link counts as no answer until it is whole (a review's 1 MB fetch at 50
 * KB/s failed after 16 s, exit 69, with no way to allow more).
 */
export function dlqReadOf(connectTimeoutMs: number): DlqRead {
  return { answerTimeoutMs: Math.max(DEFAULT_READ_ANSWER_TIMEOUT_MS, connectTimeoutMs) };
}

async function list(
  kafka: ReturnType<typeof createKafkaClient>,
  dlq: string,
  selection: DeadLetterSelection,
  json: boolean,
  reading: DlqRead,
): Promise<number> {
  const summary = new DeadLetterSummary();
  let foreign = 0;
  const { unreached } = await readToEnd(
    kafka,
    dlq,
    async (records) => {
      for (const r of records) {
        if (r.headers[REPLAY_MARKER_HEADER] !== undefined) continue; // written by replay, not a letter
        const d = readDeadLetter(r);
        if (d === undefined) foreign++;
        else if (selects(selection, d)) summary.add(d);
      }
    },
    reading,
  );
  const groups = summary.list();
  const time = (ms: number) => (Number.isNaN(ms) ? '-' : new Date(ms).toISOString());
  if (json) {
    for (const g of groups) {
      process.stdout.write(
        `${JSON.stringify({ ...g, firstFailedAt: time(g.firstFailedAt), lastFailedAt: time(g.lastFailedAt) })}\n`,
      );
    }
  } else {
    const total = groups.reduce((n, g) => n + g.count, 0);
    process.stdout.write(`${total} dead letter(s) of ${dlq} selected, in ${groups.length} group(s)\n`);
    for (const g of groups) {
      const cut = g.truncated > 0 ? ` (${g.truncated} truncated)` : '';
      process.stdout.write(
        `${printable(`${String(g.count).padStart(8)}  ${g.code}${cut}  ${time(g.firstFailedAt)} … ${time(g.lastFailedAt)}  ${g.reason}`)}\n`,
      );
    }
  }
  if (foreign > 0)
    process.stderr.write(`note: ${foreign} record(s) of ${dlq} are not driftline dead letters (no source headers)\n`);
  noteUnreached(dlq, unreached);
  return 0;
}

/**
 * Header of a replay marker, a record `dlq replay` writes to the DLQ for each source record it
 * sent: its value names the ORIGINAL record (`<topic>/<partition>/<offset>`, see `originalOf`), and
 * `REPLAY_AT_HEADER` when it was sent. A later replay skips every letter of that record that failed
 * (`driftline.dlq.failed.at`) before then — the letters this run sent or deduplicated, and those a
 * filter (`--code`) left out — while a letter written after it (the copy failed again) is taken by
 * the replay after the next fix. Markers without `REPLAY_AT_HEADER` (written before) name one
 * letter (`<dlq topic>/<partition>/<offset>`), which is skipped.
 */
export const REPLAY_MARKER_HEADER = 'driftline.replay.done';

/** Header of a replay marker: when the record it names was sent back (ISO time, taken before the send). */
export const REPLAY_AT_HEADER = 'driftline.replay.at';

const positionOf = (r: InboundRecord): string => `${r.topic}/${r.partition}/${r.offset}`;

/** What the first pass over the DLQ learns: every letter's source, what earlier replays sent. */
interface DlqIndex {
  /** Letter position → the position it stands for: its source record, or an earlier letter it is a replay of. */
  readonly parents: Map<string, string>;
  /** Original record → when a replay last sent it (epoch ms). */
  readonly replayedAt: Map<string, number>;
  /** Letters named by markers of the older kind (one marker per letter). */
  readonly replayedLetters: Set<string>;
  readonly groups: Set<string>;
  markers: number;
}

/**
 * The source record a dead letter stands for, however many times it was replayed and failed again:
 * a letter of a replayed copy names (`driftline.replayed.from`) the letter it was replayed from, whose
 * source is followed back to the first failure's topic/partition/offset. A letter with no source
 * position (`-1`: the prediction log's, never written to the topic) stands for itself.
 */
function originalOf(d: DeadLetterView, parents: ReadonlyMap<string, string>): string {
  let at = parents.get(positionOf(d.record)) ?? positionOf(d.record);
  const visited = new Set<string>();
  for (let next = parents.get(at); next !== undefined && !visited.has(at); next = parents.get(at)) {
    visited.add(at);
    at = next;
  }
  return at;
}

function parentOf(d: DeadLetterView): string {
  const from = headerText(d.record.headers[REPLAYED_FROM_HEADER]);
  if (from !== undefined && from !== '') return from;
  const unwritten = d.sourcePartition < 0 || d.sourceOffset === '' || d.sourceOffset.startsWith('-');
  return unwritten ? positionOf(d.record) : sourceRecordOf(d);
}

async function indexDlq(
  kafka: ReturnType<typeof createKafkaClient>,
  dlq: string,
  selection: DeadLetterSelection,
  reading: DlqRead,
): Promise<DlqIndex> {
  const index: DlqIndex = {
    parents: new Map(),
    replayedAt: new Map(),
    replayedLetters: new Set(),
    groups: new Set(),
    markers: 0,
  };
  await readToEnd(
    kafka,
    dlq,
    async (records) => {
      for (const r of records) {
        const marked = headerText(r.headers[REPLAY_MARKER_HEADER]);
        if (marked !== undefined) {
          const at = Date.parse(headerText(r.headers[REPLAY_AT_HEADER]) ?? '');
          if (Number.isNaN(at)) index.replayedLetters.add(marked);
          else index.replayedAt.set(marked, Math.max(at, index.replayedAt.get(marked) ?? at));
          index.markers++;
          continue;
        }
        const d = readDeadLetter(r);
        if (d === undefined) continue;
        const parent = parentOf(d);
        if (parent !== positionOf(r)) index.parents.set(positionOf(r), parent);
        if (selects(selection, d)) index.groups.add(d.group);
      }
    },
    reading,
  );
  return index;
}

async function replay(
  kafka: ReturnType<typeof createKafkaClient>,
  topic: string,
  dlq: string,
  selection: DeadLetterSelection,
  dryRun: boolean,
  reading: DlqRead,
  progress: ReplayProgress,
): Promise<number> {
  // First pass: which groups the selected letters come from (replayed, a record reaches every
  // group of the topic, and the windows of one that had taken it count it twice), where each
  // letter's record came from, and which letters earlier replays dealt with.
  const index = await indexDlq(kafka, dlq, selection, reading);
  if (selection.group === undefined && index.groups.size > 1) {
    throw new ConfigError(
      '--group',
      `is needed: ${dlq} holds dead letters of ${index.groups.size} consumer groups (${[...index.groups].sort().join(', ')}); replayed, a record reaches every group, and one that had taken it counts it twice in its windows`,
    );
  }
  const counts = {
    read: 0,
    selected: 0,
    sent: 0,
    truncated: 0,
    otherSource: 0,
    foreign: 0,
    repeated: 0,
    replayedBefore: 0,
  };
  const sentOriginals = new Set<string>();
  // Its sends bounded as the read's answers are (not the services' 60 s): a broker that stopped
  // answering mid-replay is one line after as long, not a minute of silence.
  const producer = dryRun
    ? undefined
    : await createProducer(kafka, {
        health: { sendDeadlineMs: reading.answerTimeoutMs, replaceAfterMs: reading.answerTimeoutMs },
      }).catch((error: unknown) => {
        throw new ReplayWriteFailed(topic, error);
      });
  // A write that fails on an outage ends the command at once: the read's leave and group deletion
  // (up to 10 s, and the producer's disconnect 5 s, measured against a silent broker) cannot reach
  // Kafka either, and its throwaway group holds no offsets.
  let stopOnOutage: (failure: ReplayWriteFailed) => void = () => {};
  const writeOutage = new Promise<never>((_, reject) => {
    stopOnOutage = reject;
  });
  writeOutage.catch(() => {}); // raced below; unused when no write fails
  let kafkaGone = false;
  const send = async (to: string, messages: readonly OutboundMessage[]): Promise<void> => {
    try {
      await producer?.send(to, messages);
    } catch (error) {
      const failed = new ReplayWriteFailed(to, error);
      kafkaGone = isWriteOutage(error);
      if (kafkaGone) stopOnOutage(failed);
      throw failed;
    }
  };
  let unreached: readonly number[] = [];
  try {
    const read = readToEnd(
      kafka,
      dlq,
      async (records) => {
        const out: OutboundMessage[] = [];
        const sent: string[] = [];
        for (const r of records) {
          if (r.headers[REPLAY_MARKER_HEADER] !== undefined) continue;
          counts.read++;
          const d: DeadLetterView | undefined = readDeadLetter(r);
          if (d === undefined) {
            counts.foreign++;
            continue;
          }
          if (!selects(selection, d)) continue;
          counts.selected++;
          if (d.sourceTopic !== topic) counts.otherSource++;
          else if (d.truncated) counts.truncated++;
          else {
            const original = originalOf(d, index.parents);
            if (replayedBefore(d, original, index)) counts.replayedBefore++;
            else if (sentOriginals.has(original)) counts.repeated++;
            else {
              sentOriginals.add(original);
              out.push(replayMessageOf(d));
              sent.push(original);
            }
          }
        }
        // Sent before the next batch is read: an interrupted replay has sent a prefix, in order. The
        // markers follow the records they account for: a crash between the two sends those again.
        // Their time is taken before the send, so a letter of a copy that fails again is later.
        const at = new Date().toISOString();
        if (producer !== undefined) {
          progress.unmarked = out.length;
          for (let i = 0; i < out.length; i += REPLAY_CHUNK) await send(topic, out.slice(i, i + REPLAY_CHUNK));
          for (let i = 0; i < sent.length; i += REPLAY_CHUNK) {
            const chunk = sent.slice(i, i + REPLAY_CHUNK);
            await send(
              dlq,
              chunk.map((original) => markerOf(original, at)),
            );
            progress.marked += chunk.length;
            progress.unmarked -= chunk.length;
          }
        }
        counts.sent += out.length;
      },
      reading,
    );
    read.catch(() => {}); // when the write outage wins the race, the read's own failure comes later
    ({ unreached } = await Promise.race([read, writeOutage]));
  } finally {
    const disconnected = producer?.disconnect().catch(() => {});
    if (!kafkaGone) await disconnected;
  }
  noteUnreached(dlq, unreached);
  const verb = dryRun ? 'would replay' : 'replayed';
  const notes = [
    counts.replayedBefore > 0 ? `${counts.replayedBefore} replayed by an earlier run (skipped)` : '',
    counts.truncated > 0 ? `${counts.truncated} truncated (their bytes are gone: not replayable)` : '',
    counts.otherSource > 0 ? `${counts.otherSource} from another source topic (skipped)` : '',
    counts.foreign > 0 ? `${counts.foreign} not driftline dead letters (skipped)` : '',
    counts.repeated > 0 ? `${counts.repeated} of a source record already sent (sent once)` : '',
  ].filter((n) => n !== '');
  process.stdout.write(
    `${verb} ${counts.sent} of ${counts.selected} selected dead letter(s) (${counts.read} read) from ${dlq} to ${topic}${notes.length > 0 ? `; ${notes.join('; ')}` : ''}\n`,
  );
  return 0;
}

/**
 * Whether an earlier run dealt with letter `d` (of `original`): a marker of the older kind names it,
 * or `original` was sent back after `d` failed (its failure time, else its DLQ record's time). A
 * letter failing in the same millisecond as the send stays replayable: a copy sent twice is better
 * than a record lost. (The times come from two clocks, the consumer's and the replaying host's.)
 */
function replayedBefore(d: DeadLetterView, original: string, index: DlqIndex): boolean {
  if (index.replayedLetters.has(positionOf(d.record))) return true;
  const replayedAt = index.replayedAt.get(original);
  if (replayedAt === undefined) return false;
  const failedAt = Number.isNaN(d.failedAt) ? d.record.timestamp : d.failedAt;
  return failedAt < replayedAt;
}

/** The marker saying the source record `original` was sent back at `at` (ISO time), keyed by it. */
function markerOf(original: string, at: string): OutboundMessage {
  return { key: original, value: null, headers: { [REPLAY_MARKER_HEADER]: original, [REPLAY_AT_HEADER]: at } };
}

function noteUnreached(dlq: string, partitions: readonly number[]): void {
  if (partitions.length === 0) return;
  process.stderr.write(
    `note: partition(s) ${partitions.join(', ')} of ${dlq}: the broker answered with nothing more before their end offset for 30 s (transaction markers or a compacted tail?): read as far as they go\n`,
  );
}
