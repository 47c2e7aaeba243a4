/**
 * ClickHouse error codes driftline classifies, by name and number. Numbers are ClickHouse's own
 * (src/Common/ErrorCodes.cpp), checked against the engine with `errorCodeToName(code)` (26.7).
 */

/** The server is unavailable, overloaded or timed out: nothing is wrong with the rows. Retry. */
export const UNAVAILABLE_CODES: Readonly<Record<number, string>> = {
  // The server's own files and descriptors (74-77, 172, 204, 294, 460, 573, 586: a full, failing or
  // read-only disk, too many open files): the machine, not the rows. 172-586 were `unknown` (found
  // by a review: EMFILE sent 400 labels to the DLQ as 460 and 573).
  74: 'CANNOT_READ_FROM_FILE_DESCRIPTOR',
  75: 'CANNOT_WRITE_TO_FILE_DESCRIPTOR',
  76: 'CANNOT_OPEN_FILE',
  77: 'CANNOT_CLOSE_FILE',
  95: 'CANNOT_READ_FROM_SOCKET',
  96: 'CANNOT_WRITE_TO_SOCKET',
  159: 'TIMEOUT_EXCEEDED',
  160: 'TOO_SLOW',
  172: 'CANNOT_CREATE_DIRECTORY',
  173: 'CANNOT_ALLOCATE_MEMORY',
  201: 'QUOTA_EXCEEDED',
  202: 'TOO_MANY_SIMULTANEOUS_QUERIES',
  203: 'NO_FREE_CONNECTION',
  204: 'CANNOT_FSYNC',
  209: 'SOCKET_TIMEOUT',
  210: 'NETWORK_ERROR',
  218: 'TABLE_IS_DROPPED',
  225: 'NO_ZOOKEEPER',
  236: 'ABORTED',
  241: 'MEMORY_LIMIT_EXCEEDED',
  242: 'TABLE_IS_READ_ONLY',
  243: 'NOT_ENOUGH_SPACE',
  244: 'UNEXPECTED_ZOOKEEPER_ERROR',
  // Too many parts for merges to keep up with: they catch up. (The same code for a block spread over
  // too many partitions is a refusal of the rows: errors.ts, TOO_MANY_PARTITIONS_IN_BLOCK.)
  252: 'TOO_MANY_PARTS',
  279: 'ALL_CONNECTION_TRIES_FAILED',
  285: 'TOO_FEW_LIVE_REPLICAS',
  289: 'REPLICA_IS_NOT_IN_QUORUM',
  294: 'CANNOT_WRITE_TO_FILE',
  319: 'UNKNOWN_STATUS_OF_INSERT',
  369: 'ALL_REPLICAS_ARE_STALE',
  394: 'QUERY_WAS_CANCELLED',
  425: 'SYSTEM_ERROR',
  439: 'CANNOT_SCHEDULE_TASK',
  460: 'CANNOT_CREATE_TIMER',
  473: 'DEADLOCK_AVOIDED',
  499: 'S3_ERROR',
  573: 'EPOLL_ERROR',
  586: 'CANNOT_CREATE_FILE',
  745: 'SERVER_OVERLOADED',
  999: 'KEEPER_EXCEPTION',
  // Poco's network and I/O layer (a remote disk, a TLS connection of the server's own).
  1000: 'POCO_EXCEPTION',
};

/**
 * The deployment is not (yet) what the code expects — a table or column missing during a rolling
 * migration, credentials or grants wrong. The records are fine and would all fail alike, so this
 * retries (the partition pauses and `driftline_consumer_backing_off` shows it) instead of
 * dead-lettering every record.
 */
export const ENVIRONMENT_CODES: Readonly<Record<number, string>> = {
  16: 'NO_SUCH_COLUMN_IN_TABLE',
  60: 'UNKNOWN_TABLE',
  81: 'UNKNOWN_DATABASE',
  164: 'READONLY',
  192: 'UNKNOWN_USER',
  194: 'REQUIRED_PASSWORD',
  // A server profile that forbids a setting driftline sends (every insert lifts
  // `max_partitions_per_insert_block`, client.ts): every insert fails alike, whatever its rows.
  452: 'SETTING_CONSTRAINT_VIOLATION',
  497: 'ACCESS_DENIED',
  516: 'AUTHENTICATION_FAILED',
};

/** The server refused a value of a row (type, parse, range, constraint): the record is poison. */
export const REJECTED_CODES: Readonly<Record<number, string>> = {
  6: 'CANNOT_PARSE_TEXT',
  7: 'INCORRECT_NUMBER_OF_COLUMNS',
  8: 'THERE_IS_NO_COLUMN',
  25: 'CANNOT_PARSE_ESCAPE_SEQUENCE',
  26: 'CANNOT_PARSE_QUOTED_STRING',
  27: 'CANNOT_PARSE_INPUT_ASSERTION_FAILED',
  32: 'ATTEMPT_TO_READ_AFTER_EOF',
  38: 'CANNOT_PARSE_DATE',
  41: 'CANNOT_PARSE_DATETIME',
  53: 'TYPE_MISMATCH',
  69: 'ARGUMENT_OUT_OF_BOUND',
  70: 'CANNOT_CONVERT_TYPE',
  72: 'CANNOT_PARSE_NUMBER',
  117: 'INCORRECT_DATA',
  128: 'TOO_LARGE_ARRAY_SIZE',
  130: 'CANNOT_READ_ARRAY_FROM_TEXT',
  131: 'TOO_LARGE_STRING_SIZE',
  190: 'SIZES_OF_ARRAYS_DONT_MATCH',
  321: 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE',
  349: 'CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN',
  376: 'CANNOT_PARSE_UUID',
  407: 'DECIMAL_OVERFLOW',
  467: 'CANNOT_PARSE_BOOL',
  469: 'VIOLATED_CONSTRAINT',
  565: 'TOO_MANY_PARTITIONS',
  675: 'CANNOT_PARSE_IPV4',
  676: 'CANNOT_PARSE_IPV6',
  691: 'UNKNOWN_ELEMENT_OF_ENUM',
};
