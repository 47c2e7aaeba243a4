import { ClickHouseError } from '@clickhouse/client';
import { DriftlineError, SinkUnavailableError, toDriftlineError } from '@driftline/core';
import { isolateRejected } from '@driftline/kafka';
import { describe, expect, it } from 'vitest';
import {
  ANSWER_TOO_LARGE,
  ANSWER_WITHOUT_CODE,
  type ClickHouseConnection,
  type ClickHouseErrorCategory,
  chTime,
  classifyClickHouseError,
  ENVIRONMENT_CODES,
  REJECTED_CODES,
  segmentValue,
  toWarehouseError,
  UNAVAILABLE_CODES,
} from '../src/index.js';
import captured from './fixtures/clickhouse-errors.json' with { type: 'json' };

interface Shape {
  name?: string;
  message: string;
  code?: unknown;
  type?: unknown;
  clickhouseCode?: unknown;
  cause?: Shape;
}

// Rebuilds a captured error with the same class (ClickHouseError is the client's own) and the
// same own properties and cause chain; see fixtures/capture-errors.ts for how they were captured.
function rebuild(s: Shape): Error {
  const error =
    s.name === 'ClickHouseError'
      ? new ClickHouseError({ message: s.message, code: String(s.code), type: String(s.type) })
      : Object.assign(new Error(s.message), {
          ...(s.code === undefined ? {} : { code: s.code }),
          ...(s.clickhouseCode === undefined ? {} : { clickhouseCode: s.clickhouseCode }),
        });
  if (s.cause !== undefined) Object.defineProperty(error, 'cause', { value: rebuild(s.cause) });
  return error;
}

const shapes = captured as Record<string, Shape>;
const errorOf = (label: string): Error => {
  const s = shapes[label];
  if (s === undefined) throw new Error(`no captured error ${label}`);
  return rebuild(s);
};

// The label says which connection threw it.
const connectionOf = (label: string): ClickHouseConnection => (label.startsWith('server:') ? 'server' : 'embedded');

describe('classifyClickHouseError over errors captured from chdb and @clickhouse/client', () => {
  const expected: Array<[string, ClickHouseErrorCategory, number | undefined, string | undefined]> = [
    ['embedded: string into UInt32', 'rejected', 27, 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'],
    ['embedded: DateTime64 year 318857', 'rejected', 41, 'CANNOT_PARSE_DATETIME'],
    ['embedded: negative into UInt32', 'rejected', 72, 'CANNOT_PARSE_NUMBER'],
    ['embedded: unknown table', 'environment', 60, 'UNKNOWN_TABLE'],
    ['embedded: 101 partitions in one insert', 'rejected', 252, 'TOO_MANY_PARTS'],
    ['embedded: syntax error', 'unknown', 62, 'SYNTAX_ERROR'],
    ['embedded: max_execution_time', 'unavailable', 159, 'TIMEOUT_EXCEEDED'],
    ['embedded: max_memory_usage', 'unavailable', 241, 'MEMORY_LIMIT_EXCEEDED'],
    ['embedded: aborted by signal', 'unavailable', undefined, 'CHDB_ABORT'],
    ['server: connection refused', 'unavailable', undefined, 'ECONNREFUSED'],
    ['server: request timeout', 'unavailable', undefined, 'TRANSPORT'],
    ['server: proxy 503 page', 'unavailable', undefined, 'NO_CLICKHOUSE_CODE'],
    ['server: TOO_MANY_PARTS', 'unavailable', 252, 'TOO_MANY_PARTS'],
  ];

  it('covers every captured shape', () => {
    expect(expected.map(([label]) => label).sort()).toEqual(Object.keys(shapes).sort());
  });

  it.each(expected)('%s → %s (%s %s)', (label, category, code, name) => {
    const info = classifyClickHouseError(errorOf(label), connectionOf(label));
    expect(info.category).toBe(category);
    expect(info.code).toBe(code);
    expect(info.name).toBe(name);
  });

  it('reads the code from a bare chdb error (no ClickHouseError around it) and from message text', () => {
    const chdb = errorOf('embedded: DateTime64 year 318857').cause as Error;
    expect(classifyClickHouseError(chdb, 'embedded')).toMatchObject({
      category: 'rejected',
      code: 41,
      name: 'CANNOT_PARSE_DATETIME',
    });
    const text = new Error(chdb.message);
    expect(classifyClickHouseError(text, 'server')).toMatchObject({
      category: 'rejected',
      code: 41,
      name: 'CANNOT_PARSE_DATETIME',
    });
  });

  it('treats TLS, file-descriptor and other system errors, proxy answers and cluster outages as unavailable (found by a review: they dead-lettered every record)', () => {
    const coded = (code: string, message = code) => Object.assign(new Error(message), { code });
    for (const error of [
      coded('CERT_HAS_EXPIRED', 'certificate has expired'),
      coded('ERR_TLS_CERT_ALTNAME_INVALID'),
      coded('DEPTH_ZERO_SELF_SIGNED_CERT'),
      coded('SELF_SIGNED_CERT_IN_CHAIN'),
      coded('UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
      coded('EPROTO'),
      coded('EMFILE'),
      coded('EADDRNOTAVAIL'),
      new Error('ChdbConnection is closed'),
      new Error('Code: 225. DB::Exception: Cannot use ZooKeeper table engine (NO_ZOOKEEPER)'),
      new Error('Code: 499. DB::Exception: Connection reset (S3_ERROR)'),
      new Error('Code: 1000. DB::Exception: Net Exception: Connection reset by peer (POCO_EXCEPTION)'),
    ]) {
      for (const connection of ['server', 'embedded'] as const) {
        expect(classifyClickHouseError(error, connection).category, error.message).toBe('unavailable');
        expect(toWarehouseError('insert', error, connection).retriable, error.message).toBe(true);
      }
    }
    // Node's own argument errors are code paths, not connections: still unknown.
    expect(classifyClickHouseError(coded('ERR_INVALID_ARG_TYPE'), 'server').category).toBe('unknown');
  });

  // What @clickhouse/client makes of an answer without a ClickHouse code: `new Error(body)`, the
  // HTTP status dropped. Bodies a review saw proxies and load balancers answer during an outage;
  // every one was SINK_REJECTED, so a whole batch was dead-lettered and committed.
  const outagePages = [
    '', // 503, 429 or 401 with an empty body
    'upstream request timeout', // Envoy, 503
    'Internal Server Error',
    '<html><head><title>500 Internal Server Error</title></head><body><center><h1>500 Internal Server Error</h1></center><hr><center>nginx</center></body></html>',
    'default backend - 404', // a Kubernetes ingress whose backend is gone
    '{"error_code":404,"message":"HTTP 404 Not Found"}',
  ];

  it.each(outagePages)('server: an answer without a ClickHouse code (%j) is an outage, retried', (body) => {
    const info = classifyClickHouseError(new Error(body), 'server');
    expect(info).toMatchObject({ category: 'unavailable', name: ANSWER_WITHOUT_CODE });
    const error = toWarehouseError('insert into t', new Error(body), 'server');
    expect(error).toBeInstanceOf(SinkUnavailableError);
    expect(error.message).toMatch(
      /^clickhouse insert into t: NO_CLICKHOUSE_CODE: an answer without a ClickHouse error code/,
    );
    expect(error.message).not.toMatch(/[<>\n]/); // a page's tags and lines are gone: one readable line
  });

  it.each([
    '<html><head><title>413 Request Entity Too Large</title></head><body><center><h1>413 Request Entity Too Large</h1></center><hr><center>nginx</center></body></html>',
    'Payload Too Large',
  ])(
    'server: a proxy refusing a request for its size (%j) is a refusal bisection splits, not an outage (found by a review)',
    (body) => {
      expect(classifyClickHouseError(new Error(body), 'server')).toMatchObject({
        category: 'rejected',
        name: ANSWER_TOO_LARGE,
      });
      expect(toWarehouseError('insert into t', new Error(body), 'server')).toMatchObject({
        code: 'SINK_REJECTED',
        retriable: false,
      });
    },
  );

  it('server: an answer of ClickHouse that does not parse is refused, not retried for ever (a 200 page without its headers is NOT_CLICKHOUSE before any parse)', () => {
    for (const connection of ['server', 'embedded'] as const) {
      expect(classifyClickHouseError(new SyntaxError('Unexpected end of JSON input'), connection)).toMatchObject({
        category: 'rejected',
        name: 'UNREADABLE_ANSWER',
      });
    }
  });

  it("server: ClickHouse's own codes still decide (only they can be poison)", () => {
    const body =
      "Code: 27. DB::Exception: Cannot parse input: expected '\"' before: 'x' (CANNOT_PARSE_INPUT_ASSERTION_FAILED) (version 24.8.1.1)";
    expect(toWarehouseError('insert', new Error(body), 'server')).toMatchObject({
      code: 'SINK_REJECTED',
      retriable: false,
    });
    const syntax = 'Code: 62. DB::Exception: Syntax error (SYNTAX_ERROR) (version 24.8.1.1)';
    expect(classifyClickHouseError(new Error(syntax), 'server').category).toBe('unknown');
  });

  it('embedded: an error without a code keeps its own classification (there is no proxy; the engine is in this process)', () => {
    for (const body of outagePages)
      expect(classifyClickHouseError(new Error(body), 'embedded').category).toBe('unknown');
  });

  it('treats an error raised in this process (a row JSON cannot encode) as unknown on either connection (not retried)', () => {
    for (const connection of ['server', 'embedded'] as const) {
      const bigint = new TypeError('Do not know how to serialize a BigInt');
      expect(classifyClickHouseError(bigint, connection).category).toBe('unknown');
      expect(classifyClickHouseError(new RangeError('Invalid string length'), connection).category).toBe('unknown');
      expect(classifyClickHouseError('weird', connection).category).toBe('unknown');
    }
  });
});

// The messages a review saw ClickHouse give an insert with a full inode table, a read-only data
// directory and a process at its open-file limit (embedded engine and `driftline clickhouse serve`):
// every record went to the DLQ and its offset was committed.
describe('a full, failing or read-only disk or too many open files is an outage, never a dead letter', () => {
  const exhausted: Array<[string, number, string, string]> = [
    [
      'ENOSPC',
      1001,
      'STD_EXCEPTION',
      'std::__1::filesystem::filesystem_error: filesystem error: in create_directories: No space left on device ["/tmp/review-exhaustion/ino/chdb/store/8ad/8ad1bb5f-c718-49ca-9a8d-f6cd68e21869/tmp_insert_202612_9_9_1"]. ',
    ],
    [
      'EROFS',
      1001,
      'STD_EXCEPTION',
      'std::__1::filesystem::filesystem_error: filesystem error: in create_directories: Read-only file system ["/tmp/review-exhaustion/chdb-ro/store/10b/10b288d8-ee59-4969-ac48-7f41eeb61fe4/tmp_insert_all_2_2_1"]. ',
    ],
    [
      'EMFILE',
      460,
      'CANNOT_CREATE_TIMER',
      'Cannot create timer_fd descriptor: , errno: 24, strerror: Too many open files. ',
    ],
    ['EMFILE', 573, 'EPOLL_ERROR', 'Cannot open epoll descriptor: , errno: 24, strerror: Too many open files. '],
    [
      'EMFILE',
      76,
      'CANNOT_OPEN_FILE',
      'Cannot open file /tmp/review-exhaustion/chdb-j3/store/1dc/1dcfa639-e256-49d5-a130-b1ed7ab607c3/tmp_insert_all_1_1_1/primary.cidx: , errno: 24, strerror: Too many open files. ',
    ],
    // By errno alone, under a code in no table.
    [
      'EIO',
      214,
      'CANNOT_STATVFS',
      'Could not calculate available disk space (statvfs), errno: 5, strerror: Input/output error. ',
    ],
    [
      'EDQUOT',
      1001,
      'STD_EXCEPTION',
      'std::__1::filesystem::filesystem_error: filesystem error: in create_directories: Disk quota exceeded ["/d/tmp_insert_all_1_1_1"]. ',
    ],
    [
      'ENFILE',
      1001,
      'STD_EXCEPTION',
      'std::__1::filesystem::filesystem_error: filesystem error: in directory_iterator::directory_iterator(...): Too many open files in system ["/d"]. ',
    ],
  ];

  // As each connection gets it: chdb's error (the code a number, the text whole) under the client's
  // ClickHouseError, and a server's (or the host's) answer body.
  const shapes = (code: number, name: string, text: string): Array<[ClickHouseConnection, Error]> => {
    const whole = `Code: ${code}. DB::Exception: ${text}(${name})`;
    const chdb = Object.assign(new Error(whole), { code: 'CHDB_QUERY', clickhouseCode: code });
    const embedded = new ClickHouseError({ message: text, code: String(code), type: name });
    Object.defineProperty(embedded, 'cause', { value: chdb });
    return [
      ['embedded', embedded],
      ['server', new ClickHouseError({ message: text, code: String(code), type: name })],
      ['server', new Error(`${whole} (version 26.7.2.1)`)],
    ];
  };

  it.each(exhausted)('%s: %s %s is SINK_UNAVAILABLE, retried', (errno, code, name, text) => {
    for (const [connection, error] of shapes(code, name, text)) {
      expect(classifyClickHouseError(error, connection)).toMatchObject({ category: 'unavailable', code, name, errno });
      const insert = toWarehouseError('insert into labeled_predictions', error, connection);
      expect(insert).toBeInstanceOf(SinkUnavailableError);
      expect(insert.details).toEqual({ clickhouse: { category: 'unavailable', code, name, errno } });
      expect(insert.message).toMatch(
        new RegExp(`^clickhouse insert into labeled_predictions: ${name} \\(${code}\\): `),
      );
      expect(toWarehouseError('query', error, connection).retriable).toBe(true);
    }
  });

  it('poison stays poison, and a failure that names no resource stays as it was', () => {
    const cases: Array<[number, string, string, ClickHouseErrorCategory]> = [
      // A value that happens to hold the words: its code decides.
      [
        27,
        'CANNOT_PARSE_INPUT_ASSERTION_FAILED',
        "Cannot parse input: expected '\"' before: 'x, errno: 28, strerror: No space left on device': ",
        'rejected',
      ],
      [
        41,
        'CANNOT_PARSE_DATETIME',
        'Cannot read DateTime64: filesystem error: in x: Read-only file system: ',
        'rejected',
      ],
      // Another errno (EEXIST), another std::filesystem failure, another std exception.
      [76, 'CANNOT_OPEN_FILE', 'Cannot open file /x: , errno: 17, strerror: File exists. ', 'unavailable'],
      [
        1001,
        'STD_EXCEPTION',
        'std::__1::filesystem::filesystem_error: filesystem error: in create_directory: File exists ["/a"]. ',
        'unknown',
      ],
      [1001, 'STD_EXCEPTION', 'std::out_of_range: basic_string. ', 'unknown'],
      // The words outside a std::filesystem error, an errno outside ClickHouse's wording.
      [62, 'SYNTAX_ERROR', 'Syntax error: failed at position 1 (No space left on device): ', 'unknown'],
      [62, 'SYNTAX_ERROR', 'Syntax error: failed at position 1 (errno: 28): ', 'unknown'],
    ];
    for (const [code, name, text, category] of cases) {
      for (const [connection, error] of shapes(code, name, text)) {
        const info = classifyClickHouseError(error, connection);
        expect(info, text).toMatchObject({ category, code, name });
        expect(info.errno, text).toBeUndefined();
      }
    }
    expect(
      toWarehouseError('insert', shapes(27, 'CANNOT_PARSE_INPUT_ASSERTION_FAILED', 'x: ')[0]![1], 'embedded'),
    ).toMatchObject({
      code: 'SINK_REJECTED',
      retriable: false,
    });
  });

  // A review echoed ", errno: 28, strerror: No space left on device" through values the engine
  // quotes in its messages: each was retried for ever as ENOSPC. The engine's messages, verbatim.
  it('an errno or a filesystem error echoed from a value (a query parameter, a regexp, throwIf) is no outage: the code decides', () => {
    const magic = 'x, errno: 28, strerror: No space left on device';
    const worded = 'a: , errno: 28, strerror: No space left on device'; // ClickHouse's own wording, given as a value
    const echoed: Array<[number, string, string]> = [
      [
        457,
        'BAD_QUERY_PARAMETER',
        `Value ${magic} cannot be parsed as Int64 for query parameter 'p' because it isn't parsed completely: only 0 of 47 bytes was parsed: . `,
      ],
      [
        427,
        'CANNOT_COMPILE_REGEXP',
        `OptimizedRegularExpression: cannot compile re2: (${magic}, error: missing ): (${magic}. Look at https://github.com/google/re2/wiki/Syntax for reference. Please note that if you specify regex as an SQL string literal, the slashes have to be additionally escaped. For example, to match an opening brace, write '\\(' -- the first slash is for SQL and the second one is for regex: In scope SELECT match('a', '(${magic}') AS x. `,
      ],
      [
        395,
        'FUNCTION_THROW_IF_VALUE_IS_NON_ZERO',
        `${magic}: while executing 'FUNCTION throwIf(1_UInt8 :: 1, '${magic}'_String :: 2) -> throwIf(1_UInt8, '${magic}'_String) UInt8 : 3'. `,
      ],
      [395, 'FUNCTION_THROW_IF_VALUE_IS_NON_ZERO', `${worded}. `],
      [
        395,
        'FUNCTION_THROW_IF_VALUE_IS_NON_ZERO',
        "filesystem error: in x: No space left on device [a]: while executing 'FUNCTION throwIf(1_UInt8 :: 1, 'filesystem error: in x: No space left on device [a]'_String :: 2) -> throwIf(1_UInt8, 'filesystem error: in x: No space left on device [a]'_String) UInt8 : 3'. ",
      ],
      [36, 'BAD_ARGUMENTS', 'filesystem error: in x: Permission denied ["/a"]. '],
    ];
    for (const [code, name, text] of echoed) {
      for (const [connection, error] of shapes(code, name, text)) {
        const info = classifyClickHouseError(error, connection);
        expect(info, text).toMatchObject({ category: 'unknown', code, name });
        expect(info.errno, text).toBeUndefined();
        expect(toWarehouseError('insert into t', error, connection)).toMatchObject({
          code: 'SINK_REJECTED',
          retriable: false,
        });
      }
    }
  });

  it("a system call's code trusts an errno only in ClickHouse's wording with its own text, and one errno alone", () => {
    const cases: Array<[string, string | undefined]> = [
      [
        'Could not calculate available disk space (statvfs): , errno: 28, strerror: No space left on device. ',
        'ENOSPC',
      ],
      ['Cannot statvfs /x: , errno: 24, strerror: Too many open files: while reading. ', 'EMFILE'],
      ['Cannot statvfs /x: , errno: 23, strerror: Too many open files in system. ', 'ENFILE'],
      // Another errno's text, or more words after it: not ClickHouse's wording.
      ['Cannot statvfs /x: , errno: 28, strerror: Too many open files. ', undefined],
      ['Cannot statvfs /x: , errno: 24, strerror: Too many open files in system. ', undefined],
      ['Cannot statvfs /x: , errno: 28, strerror: No space left on device cannot be parsed. ', undefined],
      // Two errnos in one message: one of them came from elsewhere (here a path).
      [
        'Cannot statvfs /a, errno: 28, strerror: No space left on device: , errno: 2, strerror: No such file or directory. ',
        undefined,
      ],
    ];
    for (const [text, errno] of cases) {
      for (const [connection, error] of shapes(214, 'CANNOT_STATVFS', text)) {
        const info = classifyClickHouseError(error, connection);
        expect(info, text).toMatchObject({ code: 214, category: errno === undefined ? 'unknown' : 'unavailable' });
        expect(info.errno, text).toBe(errno);
      }
    }
  });

  // A data directory made unwritable under a running service (a review: chmod 555 on a table's
  // directory, uid 65534): every record went to the DLQ as STD_EXCEPTION. Every record would fail
  // alike: the environment, retried with the partition paused.
  it('EACCES and EPERM are the environment: retried, never a dead letter', () => {
    const cases: Array<[number, string, string, string, ClickHouseErrorCategory]> = [
      [
        1001,
        'STD_EXCEPTION',
        'std::__1::filesystem::filesystem_error: filesystem error: in create_directories: Permission denied ["/data/chdb/store/bd4/bd4e2172-d152-4907-b890-25e344a94f76/tmp_insert_all_2_2_0"]. ',
        'EACCES',
        'environment',
      ],
      [
        1001,
        'STD_EXCEPTION',
        'std::__1::filesystem::filesystem_error: filesystem error: in rename: Operation not permitted ["/a"] ["/b"]. ',
        'EPERM',
        'environment',
      ],
      [
        400,
        'CANNOT_STAT',
        'Cannot stat file /data/chdb/x: , errno: 13, strerror: Permission denied. ',
        'EACCES',
        'environment',
      ],
      [
        458,
        'CANNOT_UNLINK',
        'Cannot unlink file /x: , errno: 1, strerror: Operation not permitted. ',
        'EPERM',
        'environment',
      ],
      // A retried code keeps its category, and names the errno.
      [
        76,
        'CANNOT_OPEN_FILE',
        'Cannot open file /x: , errno: 13, strerror: Permission denied. ',
        'EACCES',
        'unavailable',
      ],
    ];
    for (const [code, name, text, errno, category] of cases) {
      for (const [connection, error] of shapes(code, name, text)) {
        expect(classifyClickHouseError(error, connection), text).toMatchObject({ category, code, name, errno });
        const insert = toWarehouseError('insert into labeled_predictions', error, connection);
        expect(insert).toBeInstanceOf(SinkUnavailableError);
        expect(insert.details).toEqual({ clickhouse: { category, code, name, errno } });
      }
    }
  });

  // A data directory whose layout broke under a running service: a review replaced the engine's
  // `store/` by a plain file, and every insert failed "Not a directory" as `unknown` — stage one
  // dead-lettered 300 predictions its windows had counted, the merge quarantined one window 41 times.
  // With `store/` moved away the engine recreates it and reads of the older parts fail "No such file
  // or directory". No path driftline hands the engine comes from a record: every record would fail alike.
  describe('a data directory whose layout is broken is the environment: retried, never a dead letter', () => {
    const cases: Array<[number, string, string, string, ClickHouseErrorCategory]> = [
      // Verbatim from the engine (chdb 26.7): `store/` a plain file, an insert.
      [
        1001,
        'STD_EXCEPTION',
        'std::__1::filesystem::filesystem_error: filesystem error: in create_directories: Not a directory ["/tmp/s28-r3/ch3-91617/store/251"]. ',
        'ENOTDIR',
        'environment',
      ],
      // `store/` moved away (the engine recreated it for an insert), a read of an older part.
      [
        1001,
        'STD_EXCEPTION',
        'std::__1::filesystem::filesystem_error: filesystem error: in file_size: No such file or directory ["/data/chdb/store/d8c/d8caf4f8-8401-4c1a-bf51-425267c81249/all_1_1_0/data.cmrk4"]. ',
        'ENOENT',
        'environment',
      ],
      // A part's data file gone, a read.
      [
        107,
        'FILE_DOESNT_EXIST',
        'Cannot open file /data/chdb/store/30a/30a7164a-4e0c-4f0e-8332-87c0eb3d0585/all_1_1_0/data.bin: , errno: 2, strerror: No such file or directory: (while reading from part /data/chdb/store/30a/30a7164a-4e0c-4f0e-8332-87c0eb3d0585/all_1_1_0/ in table x.t (30a7164a-4e0c-4f0e-8332-87c0eb3d0585) located on disk default of type local, from mark 0 with max_rows_to_read = 1, offset = 0). ',
        'ENOENT',
        'environment',
      ],
      // A shard directory of `store/` made a symlink to itself, an insert.
      [
        1001,
        'STD_EXCEPTION',
        'std::__1::filesystem::filesystem_error: filesystem error: in posix_stat: failed to determine attributes for the specified path: Too many levels of symbolic links ["/data/chdb/store/a03/a036f8aa-e937-44be-9d93-e75fec1597a6/tmp_insert_all_2_2_0/txn_version.txt"]. ',
        'ELOOP',
        'environment',
      ],
      // A data path of 4,040 characters (path shortened here).
      [
        1001,
        'STD_EXCEPTION',
        'std::__1::filesystem::filesystem_error: filesystem error: in create_directories: File name too long ["/data/ddd/eee/store/41c/41c4206d-4094-4fea-9a48-a1b657c30426"]. ',
        'ENAMETOOLONG',
        'environment',
      ],
      // Written here in the engine's wording (not seen live): a directory where a file belongs.
      [
        1001,
        'STD_EXCEPTION',
        'std::__1::filesystem::filesystem_error: filesystem error: in rename: Is a directory ["/a"] ["/b"]. ',
        'EISDIR',
        'environment',
      ],
      // A retried code keeps its category, and names the errno.
      [
        76,
        'CANNOT_OPEN_FILE',
        'Cannot open file /d/store/x/columns.txt: , errno: 20, strerror: Not a directory. ',
        'ENOTDIR',
        'unavailable',
      ],
    ];

    it.each(cases)('%s %s: %s', (code, name, text, errno, category) => {
      for (const [connection, error] of shapes(code, name, text)) {
        expect(classifyClickHouseError(error, connection), text).toMatchObject({ category, code, name, errno });
        for (const action of ['insert into drift_progress', 'query']) {
          const failed = toWarehouseError(action, error, connection);
          expect(failed).toBeInstanceOf(SinkUnavailableError);
          expect(failed.details).toEqual({ clickhouse: { category, code, name, errno } });
        }
      }
    });

    it('the same words echoed from a value under another code are not the machine', () => {
      const echoed: Array<[number, string, string]> = [
        [36, 'BAD_ARGUMENTS', 'filesystem error: in x: Not a directory ["/a"]. '],
        [395, 'FUNCTION_THROW_IF_VALUE_IS_NON_ZERO', 'a: , errno: 2, strerror: No such file or directory. '],
      ];
      for (const [code, name, text] of echoed) {
        for (const [connection, error] of shapes(code, name, text)) {
          const info = classifyClickHouseError(error, connection);
          expect(info, text).toMatchObject({ category: 'unknown', code, name });
          expect(info.errno, text).toBeUndefined();
        }
      }
    });
  });
});

describe('toWarehouseError', () => {
  it('a rejected row is SINK_REJECTED, not retriable, code name and number in message and details', () => {
    const error = toWarehouseError(
      'insert into drift_windows',
      errorOf('embedded: DateTime64 year 318857'),
      'embedded',
    );
    expect(error).toBeInstanceOf(DriftlineError);
    expect(error.code).toBe('SINK_REJECTED');
    expect(error.retriable).toBe(false);
    expect(error.message).toMatch(
      /^clickhouse insert into drift_windows: CANNOT_PARSE_DATETIME \(41\): Cannot read DateTime/,
    );
    expect(error.details).toEqual({ clickhouse: { category: 'rejected', code: 41, name: 'CANNOT_PARSE_DATETIME' } });
    expect(toDriftlineError(error)).toBe(error);
  });

  it("a read that fails for good is INTERNAL (a processor fault the consumer holds), not SINK_REJECTED: a read's failure is not the records' (found by a review: every record of the batch was dead-lettered)", () => {
    for (const label of ['embedded: DateTime64 year 318857', 'embedded: syntax error']) {
      const read = toWarehouseError('query', errorOf(label), 'embedded');
      expect(read).toMatchObject({ code: 'INTERNAL', retriable: false });
      expect(read.details).toEqual(toWarehouseError('insert into t', errorOf(label), 'embedded').details);
      expect(toWarehouseError('insert into t', errorOf(label), 'embedded').code).toBe('SINK_REJECTED');
    }
  });

  it('unavailable and environment errors are SinkUnavailableError (retriable)', () => {
    for (const label of ['server: connection refused', 'server: TOO_MANY_PARTS', 'embedded: unknown table']) {
      const error = toWarehouseError('query', errorOf(label), connectionOf(label));
      expect(error).toBeInstanceOf(SinkUnavailableError);
      expect(error.retriable).toBe(true);
    }
  });

  it('TOO_MANY_PARTS (252) for a block over too many partitions is a refusal bisection splits, not an outage; for merges behind, an outage (found by a review: a batch over 120 months was retried for ever)', async () => {
    // The engine's wording, a newer server's ("for a single INSERT block (N partitions, limit is …)"),
    // and the same on the server connection as the client raises it and as plain text.
    const spread = errorOf('embedded: 101 partitions in one insert');
    const newer =
      "Too many partitions for a single INSERT block (101 partitions, limit is 100). The limit is controlled by the 'max_partitions_per_insert_block' setting. ";
    const spreadErrors: Array<[Error, ClickHouseConnection]> = [
      [spread, 'embedded'],
      [new ClickHouseError({ message: newer, code: '252', type: 'TOO_MANY_PARTS' }), 'server'],
      [new Error(`Code: 252. DB::Exception: ${newer}(TOO_MANY_PARTS) (version 26.7.2.1)`), 'server'],
    ];
    for (const [error, connection] of spreadErrors) {
      expect(classifyClickHouseError(error, connection)).toMatchObject({
        category: 'rejected',
        code: 252,
        name: 'TOO_MANY_PARTS',
      });
      const insert = toWarehouseError('insert into unlabeled_predictions', error, connection);
      expect(insert).toMatchObject({ code: 'SINK_REJECTED', retriable: false });
      expect(insert.message).toMatch(
        /^clickhouse insert into unlabeled_predictions: TOO_MANY_PARTS \(252\): (Code: 252\. DB::Exception: )?Too many partitions for (a )?single INSERT block/,
      );
    }
    const merges = toWarehouseError('insert into t', errorOf('server: TOO_MANY_PARTS'), 'server');
    expect(merges).toBeInstanceOf(SinkUnavailableError);
    // Bisection splits such a block until each part touches at most 100 months: every row lands,
    // none is dead-lettered. Retried as an outage, the whole batch was rethrown for ever.
    const months = Array.from({ length: 120 }, (_, i) => i);
    const landed: number[] = [];
    const rejected = await isolateRejected(months, async (items) => {
      if (items.length > 100) throw toWarehouseError('insert into unlabeled_predictions', spread, 'embedded');
      landed.push(...items);
    });
    expect(rejected).toEqual([]);
    expect(landed.sort((a, b) => a - b)).toEqual(months);
  });

  it('SETTING_CONSTRAINT_VIOLATION (452): a server profile forbidding a setting every insert sends is the deployment, retried, never a dead letter', () => {
    const body =
      'Code: 452. DB::Exception: Setting max_partitions_per_insert_block should not be changed. (SETTING_CONSTRAINT_VIOLATION) (version 24.8.1.1)';
    expect(classifyClickHouseError(new Error(body), 'server')).toMatchObject({
      category: 'environment',
      code: 452,
      name: 'SETTING_CONSTRAINT_VIOLATION',
    });
    expect(toWarehouseError('insert into t', new Error(body), 'server')).toBeInstanceOf(SinkUnavailableError);
  });

  it('an unknown server error is not retried, so it cannot pause a partition forever', () => {
    const error = toWarehouseError('query', errorOf('embedded: syntax error'), 'embedded');
    expect(error.retriable).toBe(false);
    expect(error.message).toMatch(/SYNTAX_ERROR \(62\)/);
  });

  it.each([74, 75, 76, 77])(
    "a failure of the server's own files (code %s) is an outage, retried, never a dead letter",
    (code) => {
      const error = toWarehouseError(
        'insert',
        new Error(
          `Code: ${code}. DB::Exception: Cannot write to file /var/lib/x.bin: No space left on device. (${UNAVAILABLE_CODES[code]})`,
        ),
        'server',
      );
      expect(error.retriable).toBe(true);
    },
  );

  it('caps the message (it becomes a Kafka header)', () => {
    const error = toWarehouseError(
      'insert',
      new Error(`Code: 27. DB::Exception: ${'x'.repeat(5_000)} (CANNOT_PARSE_INPUT_ASSERTION_FAILED)`),
      'server',
    );
    expect(error.message.length).toBeLessThan(700);
  });
});

describe('code tables', () => {
  it('give every code one category', () => {
    const all = [UNAVAILABLE_CODES, ENVIRONMENT_CODES, REJECTED_CODES].flatMap((t) => Object.keys(t));
    expect(new Set(all).size).toBe(all.length);
  });
});

describe('row values', () => {
  it('formats DateTime64(3) text and segment values', () => {
    expect(chTime(1_700_000_000_123)).toBe('2023-11-14 22:13:20.123');
    expect(segmentValue('"US"')).toBe('US');
    expect(segmentValue('3')).toBe('3');
    expect(segmentValue('')).toBe('__missing__');
    expect(segmentValue('null')).toBe('__missing__');
  });

  it('cuts a segment value without splitting a surrogate pair (ClickHouse refused the lone half, and the whole window with it)', () => {
    const value = `${'a'.repeat(255)}😀tail`;
    for (const raw of [JSON.stringify(value), `"${'a'.repeat(255)}😀`]) {
      const cut = segmentValue(raw);
      expect(Buffer.from(cut).toString()).toBe(cut); // well-formed: survives UTF-8
      expect(cut).toBe('a'.repeat(255));
    }
    expect(segmentValue(JSON.stringify(`${'a'.repeat(254)}😀tail`))).toBe(`${'a'.repeat(254)}😀`);
  });
});
