import { ConfigError, DriftlineError, SinkUnavailableError, toDriftlineError } from '@driftline/core';
import { toWarehouseError } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { describeError, EXIT, UnavailableError } from '../src/describe-error.js';

/** A Node system error as fs and the module loader throw it. */
function systemError(code: string, text: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${text}, ${syscall} '${path}'`), { code, syscall, path, errno: -1 });
}

describe('describeError: the machine out of a resource is one line saying what to do, never "internal error … report it" (found by a review)', () => {
  it.each([
    [
      'EMFILE',
      // `ulimit -n 64`: a module of the command could not be loaded.
      systemError('EMFILE', 'too many open files', 'open', '/app/node_modules/zod/v4/locales/eo.js'),
      /^EMFILE: too many open files, open '\/app\/node_modules\/zod\/v4\/locales\/eo\.js' — too many open files for this process: raise its limit \(ulimit -n; LimitNOFILE= under systemd; --ulimit nofile= under Docker\)/,
    ],
    [
      'ENFILE',
      systemError('ENFILE', 'file table overflow', 'open', '/data/x'),
      /^ENFILE: file table overflow, open '\/data\/x' — the system's table of open files is full: raise fs\.file-max/,
    ],
    [
      'ENOSPC',
      // A full disk under the embedded engine at start-up, after DRIFTLINE_STARTUP_TIMEOUT.
      new SinkUnavailableError(
        "clickhouse: the embedded engine cannot write its data directory /data/chdb (DRIFTLINE_CLICKHOUSE_PATH): ENOSPC: no space left on device, open '/data/chdb/.driftline-write-probe-7'",
        { cause: systemError('ENOSPC', 'no space left on device', 'open', '/data/chdb/.driftline-write-probe-7') },
      ),
      /^clickhouse: the embedded engine cannot write its data directory \/data\/chdb \(DRIFTLINE_CLICKHOUSE_PATH\): ENOSPC: .* — no space left on that file system: free space or inodes \(df -h, df -i\)/,
    ],
    [
      'EDQUOT',
      toDriftlineError(systemError('EDQUOT', 'disk quota exceeded', 'write', '/data/report.html')),
      /^EDQUOT: disk quota exceeded, write '\/data\/report\.html' — this user's disk quota is used up/,
    ],
    [
      'EROFS',
      systemError('EROFS', 'read-only file system', 'mkdir', '/data/chdb'),
      /^EROFS: read-only file system, mkdir '\/data\/chdb' — that file system is read-only: remount it read-write .*check dmesg/,
    ],
  ])('%s', (_code, error, line) => {
    const described = describeError(error, 'driftline run --help');
    expect(described.line).toMatch(line);
    expect(described.line).not.toMatch(/internal error|report it|\n/);
    expect(described.code).toBe(EXIT.internal);
  });

  it('`run` giving up on a full disk after DRIFTLINE_STARTUP_TIMEOUT stays the disk\'s (1, what to free), not "unavailable" (69)', () => {
    const full = new SinkUnavailableError('clickhouse: the embedded engine cannot write /data/chdb: ENOSPC', {
      cause: systemError('ENOSPC', 'no space left on device', 'open', '/data/chdb/x'),
    });
    const gaveUp = new DriftlineError('TIMEOUT', `${full.message}; start-up gave up after 3s`, { cause: full });
    const described = describeError(new UnavailableError(gaveUp.message, { cause: gaveUp }), 'driftline run --help');
    expect(described.code).toBe(EXIT.internal);
    expect(described.line).toMatch(/; start-up gave up after 3s — no space left on that file system/);
    expect(describeError(new UnavailableError('Kafka at … (connection refused): not reachable'), 'x').code).toBe(69);
  });

  // ClickHouse names the errno in its own text: the hint comes from `details.clickhouse.errno`.
  it.each([
    [
      'ENOSPC, an insert',
      toWarehouseError(
        'insert into drift_results',
        new Error(
          'Code: 1001. DB::Exception: std::__1::filesystem::filesystem_error: filesystem error: in create_directories: No space left on device ["/data/chdb/store/e58/e5854f78-a024-4512-8d4d-91eae3eeccda/tmp_insert_all_2_2_1"]. (STD_EXCEPTION) (version 26.7.2.1)',
        ),
        'server',
      ),
      /^clickhouse insert into drift_results: STD_EXCEPTION \(1001\): .*No space left on device .* — no space left on that file system: free space or inodes \(df -h, df -i\)/,
    ],
    [
      'EMFILE, a query',
      toWarehouseError(
        'query',
        new Error(
          'Code: 460. DB::Exception: Cannot create timer_fd descriptor: , errno: 24, strerror: Too many open files. (CANNOT_CREATE_TIMER) (version 26.7.2.1)',
        ),
        'server',
      ),
      /^clickhouse query: CANNOT_CREATE_TIMER \(460\): .* — too many open files for this process: raise its limit \(ulimit -n/,
    ],
  ])('%s in ClickHouse', (_label, error, line) => {
    const described = describeError(error, 'driftline report --help');
    expect(described.line).toMatch(line);
    expect(described.line).not.toMatch(/internal error|report it|\n/);
    expect(described.code).toBe(EXIT.internal);
  });

  it('any other failure keeps its line: a configuration error, a bug', () => {
    const config = new ConfigError('DRIFTLINE_CLICKHOUSE_PATH', '/data is not writable by this user: EACCES', {
      cause: systemError('EACCES', 'permission denied', 'open', '/data/x'),
    });
    expect(describeError(config, 'driftline --help')).toEqual({
      line: 'configuration error: DRIFTLINE_CLICKHOUSE_PATH: /data is not writable by this user: EACCES',
      code: EXIT.config,
    });
    expect(describeError(systemError('ENOENT', 'no such file', 'open', '/x'), 'driftline --help').line).toBe(
      "internal error: ENOENT: no such file, open '/x' — rerun with --debug for the stack trace and report it",
    );
    expect(
      describeError(new DriftlineError('SINK_UNAVAILABLE', 'clickhouse insert: down'), 'driftline --help'),
    ).toEqual({
      line: 'clickhouse insert: down',
      code: EXIT.internal,
    });
  });
});
