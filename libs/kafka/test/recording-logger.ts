import type { Logger } from '@driftline/core';

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly obj: Record<string, unknown>;
}

/** Log lines at info and above, kept for the message of a failed expectation (and as entries, to assert on). */
export function recordingLogger(lines: string[], entries: LogLine[] = []): Logger {
  const line = (level: string) => (obj: object, msg?: string) => {
    lines.push(`${new Date().toISOString()} ${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
    entries.push({ level, msg: msg ?? '', obj: obj as Record<string, unknown> });
  };
  const logger: Logger = {
    debug: () => {},
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child: () => logger,
  };
  return logger;
}
