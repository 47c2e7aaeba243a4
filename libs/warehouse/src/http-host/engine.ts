// The embedded engine behind the HTTP host: one chdb session on one data directory, one statement
// at a time. Serial because a request's settings and parameters live on the shared session
// (SET ...) until the next request replaces them: two requests interleaved would read each
// other's. chdb itself serializes parameterized calls process-wide for the same reason.
import { resolve } from 'node:path';
import { Session, version } from 'chdb';
import { openEngineDirectory } from '../engine-directory.js';
import { HostError, type HostRequest, hostErrorFrom, setStatement } from './protocol.js';

export interface EngineResult {
  readonly bytes: Uint8Array;
  readonly rowsRead: number;
  readonly bytesRead: number;
  readonly elapsedSeconds: number;
}

export interface EngineOptions {
  /** The data directory (created when missing; see openEngineDirectory). */
  readonly path: string;
  /** Requests waiting for the engine at most; more are refused (TOO_MANY_SIMULTANEOUS_QUERIES, retriable). */
  readonly maxQueue: number;
}

const EMPTY: EngineResult = { bytes: new Uint8Array(0), rowsRead: 0, bytesRead: 0, elapsedSeconds: 0 };

export class ChdbEngine {
  private readonly session: Session;
  /** Settings the session holds from earlier requests (set by us, not yet back to DEFAULT). */
  private readonly settings = new Map<string, string>();
  private database = 'default';
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private closed = false;
  readonly version: string;
  readonly path: string;

  constructor(private readonly options: EngineOptions) {
    this.path = resolve(options.path);
    // Read before the session opens: chdb reports "unknown" once a session holds the engine.
    this.version = version().libchdb.replaceAll('"', '');
    // The embedded client's checks (a full or read-only disk is SinkUnavailableError, retried at
    // start-up): on the engine's bare error this process exited at once as an internal error, a
    // restart loop under a supervisor (found by a review).
    const path = this.path;
    this.session = openEngineDirectory(
      path,
      () => new Session(path),
      'stop that process, or give this one a directory of its own',
    );
  }

  /** Requests queued or running. */
  get pending(): number {
    return this.waiting;
  }

  /**
   * Runs one request when its turn comes. `deadline` (epoch ms) bounds the wait and the run: past
   * it the caller gets TIMEOUT_EXCEEDED (retriable) — a statement already in the engine cannot be
   * interrupted (chdb's single-shot queries have no cancel), so it finishes before the next starts.
   * `signal` (the client went away) drops a request still waiting.
   */
  execute(request: HostRequest, deadline: number, signal: AbortSignal): Promise<EngineResult> {
    if (this.closed) return Promise.reject(new HostError(236, 'ABORTED', 'the ClickHouse host is shutting down', 503));
    if (this.waiting >= this.options.maxQueue) {
      return Promise.reject(
        new HostError(
          202,
          'TOO_MANY_SIMULTANEOUS_QUERIES',
          `Too many simultaneous queries: ${this.waiting} waiting (maximum ${this.options.maxQueue})`,
          503,
        ),
      );
    }
    this.waiting++;
    const run = this.tail.then(async () => {
      if (signal.aborted) throw new HostError(394, 'QUERY_WAS_CANCELLED', 'the client closed the connection', 499);
      if (Date.now() >= deadline) throw timeout('before it started');
      return this.run(request);
    });
    // The next request starts when this one has left the engine, whatever the caller saw.
    this.tail = run.then(
      () => this.waiting--,
      () => this.waiting--,
    );
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(timeout('while it ran')), Math.max(0, deadline - Date.now()));
      run.then(
        (value) => {
          clearTimeout(timer);
          resolvePromise(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(hostErrorFrom(error));
        },
      );
    });
  }

  private async run(request: HostRequest): Promise<EngineResult> {
    const database = request.database ?? 'default';
    if (database !== this.database) {
      await this.session.queryAsync(`USE ${database}`, { format: 'TabSeparated' });
      this.database = database;
    }
    const set = setStatement(request, this.settings);
    if (set !== undefined) {
      // Parameters are no query text: a server takes 1 MiB of them in the URL whatever
      // max_query_size, but here they are parsed in a SET, which max_query_size bounds — the
      // session's, as the previous request left it (a client's max_query_size=2000 made the next
      // request's 4 KB of ids a SYNTAX_ERROR, found by a review), not the default. The bound is
      // raised for that SET only, then put back to the request's value or DEFAULT.
      const setBytes = Buffer.byteLength(set);
      const raise = setBytes > this.sessionMaxQuerySize();
      const requested = request.settings.max_query_size;
      try {
        if (raise) await this.session.queryAsync(`SET max_query_size = ${setBytes + 1}`, { format: 'TabSeparated' });
        await this.session.queryAsync(set, { format: 'TabSeparated' });
        if (raise) {
          const restored = requested !== undefined && /^\d+$/.test(requested) ? requested : 'DEFAULT';
          await this.session.queryAsync(`SET max_query_size = ${restored}`, { format: 'TabSeparated' });
        }
      } catch (error) {
        await this.resetSettings([...Object.keys(request.settings), ...(raise ? ['max_query_size'] : [])]);
        throw error;
      }
      this.settings.clear();
      for (const [k, v] of Object.entries(request.settings)) this.settings.set(k, v);
    }
    if (request.emptyInsert) return EMPTY;
    const result = await this.session.queryAsync(request.sql, { format: request.format });
    return {
      bytes: result.bytes(),
      rowsRead: result.rowsRead,
      bytesRead: result.bytesRead,
      elapsedSeconds: result.elapsed,
    };
  }

  /** The max_query_size parsing the next statement: what an earlier request set, else the default. */
  private sessionMaxQuerySize(): number {
    const set = this.settings.get('max_query_size');
    if (set === undefined) return DEFAULT_MAX_QUERY_SIZE;
    // A value the engine took but that is no plain number (e.g. '2e3'): assume the smallest bound.
    return /^\d+$/.test(set) ? Number(set) : 0;
  }

  // A refused SET (an unknown setting, a bad value) may have applied part of it: put every setting
  // it touched back to its default, one by one, so the next request starts from a known session.
  private async resetSettings(keys: readonly string[]): Promise<void> {
    for (const key of new Set([...keys, ...this.settings.keys()])) {
      await this.session.queryAsync(`SET ${key} = DEFAULT`, { format: 'TabSeparated' }).catch(() => {});
    }
    this.settings.clear();
  }

  /** Refuses new requests, lets the queued ones finish, closes the session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail.catch(() => {});
    this.session.close();
  }
}

// ClickHouse's default max_query_size, bytes.
const DEFAULT_MAX_QUERY_SIZE = 262_144;

function timeout(when: string): HostError {
  return new HostError(159, 'TIMEOUT_EXCEEDED', `Timeout exceeded: the request's deadline passed ${when}`, 500);
}
