import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

export const SERVICE_NAMES = ['kafka', 'schema-registry', 'redis'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

const portSchema = z.number().int().min(1).max(65535);

const processSchema = z.object({
  name: z.enum(SERVICE_NAMES),
  pid: z.number().int().positive(),
  startTime: z.string().min(1),
  markers: z.array(z.string().min(1)).min(1),
  port: z.number().int().min(1).max(65535),
  command: z.array(z.string()).min(1),
  cwd: z.string(),
  logFile: z.string(),
  startedAt: z.string(),
});

const endpointsSchema = z.object({
  kafkaBrokers: z.array(z.string().min(1)).min(1),
  schemaRegistryUrl: z.string().min(1),
  redisUrl: z.string().min(1),
});

export const stateSchema = z.object({
  version: z.literal(1),
  stackId: z.string().min(1),
  createdAt: z.string(),
  /** Set once every service answered its readiness check. */
  readyAt: z.string().optional(),
  startupMs: z.number().optional(),
  /** 'test': started by a test run's global setup, stopped by the last test run using it. */
  startedBy: z.enum(['cli', 'test']).optional(),
  /** Test runs (vitest processes) currently using the stack. */
  leases: z.array(z.object({ pid: z.number().int().positive(), startTime: z.string() })).optional(),
  endpoints: endpointsSchema.partial(),
  /** Every port the stack listens on (older state files lack it: the endpoints say three of them). */
  ports: z
    .object({ kafka: portSchema, kafkaController: portSchema, registry: portSchema, redis: portSchema })
    .optional(),
  processes: z.array(processSchema),
});

export type ProcessRecord = z.infer<typeof processSchema>;
export type StackState = z.infer<typeof stateSchema>;

/** Reads state.json; undefined when it does not exist; throws with the path when it is unreadable. */
export function readState(file: string): StackState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${file} is not a stack state file: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim());
  }
  return parsed.data;
}

/** Writes state.json atomically (temp file + rename), so readers never see half a file. */
export function writeState(file: string, state: StackState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(stateSchema.parse(state), null, 2)}\n`);
  fs.renameSync(tmp, file);
}

export function removeState(file: string): void {
  fs.rmSync(file, { force: true });
}
