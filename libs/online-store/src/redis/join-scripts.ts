// Lua scripts of the Redis join store. They mirror the pure transitions of @driftline/join
// (onPrediction, onLabel, onExpire, onAck) step for step; a contract test runs random sequences
// against both. Each script call is one atomic step, so a crash can only happen between steps,
// and every step is idempotent under replay.
//
// Records are identified by their join key, `joinKey({ model, id })` of @driftline/join (the
// scripts call it `id`): the state key is `<state prefix><join key>`, and schedule and outbox
// members are join keys, so two models sharing a prediction id never share a state.
//
// State value (binary-safe string), first byte = tag:
//   P<deadline>\n<windowKey>\n<prediction bytes>
//   L<label time>\n<label bytes>
//   K<joinedAt>\n<windowKey>\n<prediction length>\n<prediction bytes><label bytes>
//   E<expiredAt>\n<windowKey>\n<prediction bytes>
//   J | X  (tombstones)
// P and L carry no TTL: the schedule (sorted set) is what ends them, so every one is counted.
// K, E (backstop) and J, X (tombstones) do. Window keys are JSON and never contain a raw newline. Numbers travel as decimal strings from
// TypeScript (no float formatting in Lua).

// Batch scripts: one EVALSHA per batch (not per record) keeps both Redis and the client's
// per-command overhead off the hot path; the whole batch is one atomic step, applied in record
// order exactly as the per-record transitions would be. Pending counts and dirty marks are
// aggregated per window and written once per batch (one mark number per call, see MARK_DIRTY). State keys are built in the script from
// their prefix (`<prefix>v2:s:<join key>`) instead of being passed as KEYS: half the arguments to send,
// which is most of the client's cost. This, like the multi-key batches, assumes one Redis
// (or a primary with replicas), not Redis Cluster.

const PARSE_K = `
local function parse_k(v)
  local a = string.find(v, '\\n', 2, true)
  local b = string.find(v, '\\n', a + 1, true)
  local c = string.find(v, '\\n', b + 1, true)
  local plen = tonumber(string.sub(v, b + 1, c - 1))
  return string.sub(v, 2, a - 1), string.sub(v, a + 1, b - 1), string.sub(v, c + 1, c + plen), string.sub(v, c + plen + 1)
end
`;

/** Applies the per-window pending deltas of a batch and raises its source's watermark (KEYS[4]). */
const FLUSH = `
local function flush(deltas, max_et)
  for wk, d in pairs(deltas) do
    if d ~= 0 and redis.call('HINCRBY', KEYS[2], wk, d) <= 0 then redis.call('HDEL', KEYS[2], wk) end
  end
  local wm = redis.call('GET', KEYS[4])
  if (not wm) or tonumber(wm) < tonumber(max_et) then redis.call('SET', KEYS[4], max_et) end
end
`;

/**
 * Marks windows dirty (a set of window keys → true) with a new mark: a number taken from the mark
 * sequence, shared by the windows of this call and by no other mark. clearDirty deletes a mark only
 * if the score is still the one it read, so a score repeated by a later mark (the same clock value,
 * as two steps of one batch have) would let a recompute that read older rows clear the newer mark.
 */
const MARK_DIRTY = `
local function mark_dirty(dirty_key, seq_key, windows)
  if next(windows) == nil then return end
  -- Above every epoch-millisecond time (exact in a double up to 2^53): marks left by a version
  -- that scored them with times sort first, so the oldest marks are still recomputed first.
  local mark = 1e15 + redis.call('INCR', seq_key)
  for wk, _ in pairs(windows) do redis.call('ZADD', dirty_key, mark, wk) end
end
`;

/**
 * Adds a batch's tallies (aggregated per group and slot in the script) to the groups' hashes and
 * lists the groups in the tally set (KEYS[5]). Sums are formatted with 17 significant digits: a
 * Lua number handed to redis.call is formatted with 14.
 */
const ADD_TALLIES = `
local function add_tallies(tallies, tally_prefix)
  for group, slots in pairs(tallies) do
    local key = tally_prefix .. group
    for slot, t in pairs(slots) do
      redis.call('HINCRBY', key, 'c' .. slot, t[1])
      redis.call('HINCRBYFLOAT', key, 's' .. slot, string.format('%.17g', t[2]))
    end
    redis.call('SADD', KEYS[5], group)
  end
end
`;

/**
 * KEYS: schedule, pending counts, dirty windows, the source's watermark, tally groups, dirty mark sequence.
 * ARGV: now, backstop ttl, max event time, state key prefix, tally key prefix, then per record: id,
 * deadline, window key, prediction bytes, tally group ('' = none), tally slot, tally value.
 * Returns per record {outcome} or {outcome, prediction, label, joinedAt}.
 */
export const PREDICTION_SCRIPT = `${PARSE_K}
local now, backstop, max_et, state_prefix, tally_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
${FLUSH}
${MARK_DIRTY}
${ADD_TALLIES}
local deltas, dirty, tallies, out = {}, {}, {}, {}
-- The first transition of a prediction (pending, pending-late-label, joined) counts its tally.
local function tally(group, slot, value)
  if group == '' then return end
  local slots = tallies[group]
  if not slots then slots = {}; tallies[group] = slots end
  local t = slots[slot]
  if t then t[1] = t[1] + 1; t[2] = t[2] + tonumber(value) else slots[slot] = {1, tonumber(value)} end
end
for i = 1, (#ARGV - 5) / 7 do
  local j = 7 * i - 1
  local id, deadline, wk, payload = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
  local key = state_prefix .. id
  local pending_value = 'P' .. deadline .. '\\n' .. wk .. '\\n' .. payload
  -- The common case in one command: create the pending state unless a state exists (then read it).
  local v = redis.call('SET', key, pending_value, 'NX', 'GET')
  local tag = v and string.sub(v, 1, 1)
  local outcome = nil
  if not v then
    outcome = 'pending'
  elseif tag == 'L' then
    local nl = string.find(v, '\\n', 2, true)
    if tonumber(string.sub(v, 2, nl - 1)) > tonumber(deadline) then
      redis.call('SET', key, pending_value)
      outcome = 'pending-late-label'
    else
      local label = string.sub(v, nl + 1)
      redis.call('SET', key, 'K' .. now .. '\\n' .. wk .. '\\n' .. #payload .. '\\n' .. payload .. label, 'PX', backstop)
      redis.call('ZREM', KEYS[1], id)
      tally(ARGV[j + 4], ARGV[j + 5], ARGV[j + 6])
      out[i] = {'joined', '', label, now} -- the prediction is the caller's own record
    end
  elseif tag == 'K' then
    local joined_at, _, p, l = parse_k(v)
    out[i] = {'replayed', p, l, joined_at}
  else
    out[i] = {'duplicate'}
  end
  if outcome then
    redis.call('ZADD', KEYS[1], deadline, id)
    deltas[wk] = (deltas[wk] or 0) + 1
    dirty[wk] = true
    tally(ARGV[j + 4], ARGV[j + 5], ARGV[j + 6])
    out[i] = {outcome}
  end
end
flush(deltas, max_et)
mark_dirty(KEYS[3], KEYS[6], dirty)
add_tallies(tallies, tally_prefix)
return out
`;

/**
 * The tally batch in flight, or a new one: every counted group's hash renamed to its taken key,
 * the group set emptied, the batch id recorded — one atomic step, so an increment is either in
 * the batch or after it. A taker that finds a batch in flight (another instance's, or its own
 * before a crash) returns it under its first id; the sink deduplicates by that id.
 * KEYS: tally groups, flight (the batch id), taken groups.
 * ARGV: new batch id, tally key prefix, taken key prefix.
 * Returns {batch id or '', groups counted since, then per taken group: group, HGETALL of it}.
 */
export const TAKE_TALLIES_SCRIPT = `
local id = redis.call('GET', KEYS[2])
if not id then
  local groups = redis.call('SMEMBERS', KEYS[1])
  if #groups > 0 then
    id = ARGV[1]
    redis.call('SET', KEYS[2], id)
    for _, group in ipairs(groups) do
      if redis.call('EXISTS', ARGV[2] .. group) == 1 then
        redis.call('RENAME', ARGV[2] .. group, ARGV[3] .. group)
        redis.call('SADD', KEYS[3], group)
      end
    end
    redis.call('DEL', KEYS[1])
  end
end
local out = {id or '', redis.call('SCARD', KEYS[1])}
if id then
  for _, group in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    out[#out + 1] = group
    out[#out + 1] = redis.call('HGETALL', ARGV[3] .. group)
  end
end
return out
`;

/**
 * Forgets the batch in flight if it is the acknowledged one and, in the same step, marks the
 * windows it touched dirty: the mark lives in Redis from the moment the batch leaves it, so the
 * windows are recomputed by some pass whatever fails after (no list held by a process).
 * KEYS: flight, taken groups, dirty windows, dirty mark sequence.
 * ARGV: batch id, taken key prefix, then the window keys to mark. Returns 1 when forgotten.
 */
export const ACK_TALLIES_SCRIPT = `${MARK_DIRTY}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for _, group in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', ARGV[2] .. group) end
redis.call('DEL', KEYS[1], KEYS[2])
local windows = {}
for i = 3, #ARGV do windows[ARGV[i]] = true end
mark_dirty(KEYS[3], KEYS[4], windows)
return 1
`;

/**
 * KEYS: schedule, pending counts, dirty windows, the source's watermark.
 * ARGV: now, backstop ttl, max event time, state key prefix, then per record: id, label time,
 * wait-until score, label bytes, and '1' when an earlier record of the same batch has the same id
 * (its replay then carries no payloads: that earlier record's row is emitted already, and a flood
 * of one label repeated would otherwise return the stored prediction once per copy).
 */
export const LABEL_SCRIPT = `${PARSE_K}
local now, backstop, max_et, state_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
${FLUSH}
local deltas, out = {}, {}
for i = 1, (#ARGV - 4) / 5 do
  local j = 5 * i
  local id, et, wait_until, payload, repeated = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ARGV[j + 4]
  local key = state_prefix .. id
  local v = redis.call('GET', key)
  local tag = v and string.sub(v, 1, 1)
  if not v then
    redis.call('SET', key, 'L' .. et .. '\\n' .. payload)
    redis.call('ZADD', KEYS[1], wait_until, id)
    out[i] = {'waiting'}
  elseif tag == 'P' then
    local a = string.find(v, '\\n', 2, true)
    local b = string.find(v, '\\n', a + 1, true)
    if tonumber(et) > tonumber(string.sub(v, 2, a - 1)) then
      out[i] = {'late'}
    else
      local wk = string.sub(v, a + 1, b - 1)
      local p = string.sub(v, b + 1)
      redis.call('SET', key, 'K' .. now .. '\\n' .. wk .. '\\n' .. #p .. '\\n' .. p .. payload, 'PX', backstop)
      redis.call('ZREM', KEYS[1], id)
      deltas[wk] = (deltas[wk] or 0) - 1
      out[i] = {'joined', p, '', now} -- the label is the caller's own record
    end
  elseif tag == 'L' then
    local nl = string.find(v, '\\n', 2, true)
    if tonumber(et) < tonumber(string.sub(v, 2, nl - 1)) then
      redis.call('SET', key, 'L' .. et .. '\\n' .. payload)
      redis.call('ZADD', KEYS[1], wait_until, id)
    end
    out[i] = {'waiting-duplicate'}
  elseif tag == 'K' and repeated == '1' then
    out[i] = {'replayed'}
  elseif tag == 'K' then
    local joined_at, _, p, l = parse_k(v)
    out[i] = {'replayed', p, l, joined_at}
  elseif tag == 'J' then
    out[i] = {'duplicate'}
  else
    out[i] = {'late'}
  end
end
flush(deltas, max_et)
return out
`;

const DECREMENT = `
local function decrement(wk)
  if redis.call('HINCRBY', KEYS[3], wk, -1) <= 0 then redis.call('HDEL', KEYS[3], wk) end
end
`;

/**
 * KEYS: state, schedule, pending counts, outbox.
 * ARGV: id, cutoff, now, backstop ttl.
 */
export const EXPIRE_SCRIPT = `${DECREMENT}
local id, cutoff, now, backstop = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local score = redis.call('ZSCORE', KEYS[2], id)
if (not score) or tonumber(score) > tonumber(cutoff) then return 'not-due' end
redis.call('ZREM', KEYS[2], id)
local v = redis.call('GET', KEYS[1])
if not v then return 'stale' end
local tag = string.sub(v, 1, 1)
if tag == 'P' then
  local a = string.find(v, '\\n', 2, true)
  local b = string.find(v, '\\n', a + 1, true)
  local wk = string.sub(v, a + 1, b - 1)
  redis.call('SET', KEYS[1], 'E' .. now .. '\\n' .. wk .. '\\n' .. string.sub(v, b + 1), 'PX', backstop)
  redis.call('ZADD', KEYS[4], now, id)
  decrement(wk)
  return 'expiring'
end
if tag == 'L' then
  redis.call('DEL', KEYS[1])
  return 'orphan-label'
end
return 'stale'
`;

/**
 * K → J (expected tag K) or E → X (expected tag E) once the sink holds the rows; marks their
 * windows dirty. Acknowledging an expired id always takes it out of the outbox.
 * KEYS: dirty windows, outbox, dirty mark sequence. ARGV: tombstone ttl, expected tag, state key
 * prefix, ids.
 */
export const ACK_SCRIPT = `${MARK_DIRTY}
local tomb, expected, state_prefix = ARGV[1], ARGV[2], ARGV[3]
local dirty, acked = {}, 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = state_prefix .. id
  local v = redis.call('GET', key)
  if expected == 'E' then redis.call('ZREM', KEYS[2], id) end
  if v and string.sub(v, 1, 1) == expected then
    local a = string.find(v, '\\n', 2, true)
    local b = string.find(v, '\\n', a + 1, true)
    redis.call('SET', key, expected == 'K' and 'J' or 'X', 'PX', tomb)
    dirty[string.sub(v, a + 1, b - 1)] = true
    acked = acked + 1
  end
end
mark_dirty(KEYS[1], KEYS[3], dirty)
return acked
`;

/** Unmarks a dirty window only if nobody marked it again. KEYS: dirty. ARGV: window key, its mark as read. */
export const CLEAR_DIRTY_SCRIPT = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
`;

/**
 * Gives a dirty window a new mark (MARK_DIRTY's, the one numbering) if its mark is still the one read:
 * a window whose recompute failed goes to the back of the queue.
 * KEYS: dirty, dirty-seq. ARGV: window key, mark read.
 */
export const REQUEUE_DIRTY_SCRIPT = `${MARK_DIRTY}
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  mark_dirty(KEYS[1], KEYS[2], { [ARGV[1]] = true })
  return 1
end
return 0
`;

/**
 * Moves one v1 state (keyed by prediction id alone) to its v2 key (keyed by model and prediction
 * id), with its TTL, its schedule score and its outbox entry, in one atomic step. The value format
 * did not change between the layouts, and pending counts are per window (shared), so nothing else
 * moves. A v2 state that already exists wins (the v1 one is dropped with its entries).
 * KEYS: v1 state, v2 state, v1 schedule, v2 schedule, v1 outbox, v2 outbox.
 * ARGV: v1 member (prediction id), v2 member (join key).
 * Returns 1 when moved, 0 when there was nothing to move or the v2 state existed.
 */
export const MIGRATE_V1_SCRIPT = `
local v = redis.call('GET', KEYS[1])
local moved = 0
if v and redis.call('EXISTS', KEYS[2]) == 0 then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('SET', KEYS[2], v, 'PX', ttl) else redis.call('SET', KEYS[2], v) end
  local s = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if s then redis.call('ZADD', KEYS[4], s, ARGV[2]) end
  local o = redis.call('ZSCORE', KEYS[5], ARGV[1])
  if o then redis.call('ZADD', KEYS[6], o, ARGV[2]) end
  moved = 1
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return moved
`;

/**
 * Each owner's report on its sources, one field per source: `reportedAt,caughtUpAt`. A source not
 * caught up keeps the last time it was (empty if never).
 * KEYS: sources hash. ARGV: now, then per source: source, 1 when caught up else 0.
 */
export const REPORT_SOURCES_SCRIPT = `
local now = ARGV[1]
for i = 2, #ARGV, 2 do
  local caught = ''
  if ARGV[i + 1] == '1' then
    caught = now
  else
    local previous = redis.call('HGET', KEYS[1], ARGV[i])
    if previous then caught = string.match(previous, ',(.*)$') or '' end
  end
  redis.call('HSET', KEYS[1], ARGV[i], now .. ',' .. caught)
end
return 1
`;
