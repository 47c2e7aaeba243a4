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
//
// All or nothing: Redis does not roll a script back, so a script that failed on record k of n
// (a foreign value at a key, a stored value that does not parse) kept the writes of records
// 1..k-1 but not the batch's counts, dirty marks and tallies written after the loop; the retry
// then found those records applied (duplicates) and the counts stayed wrong for good (found by a
// review). So every script that writes more than once runs in two passes: the first only reads
// — every state of the batch (one MGET, and an EXISTS that finds a key of another type), every
// stored value it will parse, every key and field its writes will touch (TYPE, HMGET, GET) — and
// plans the writes and the reply, following the batch's own writes in a table; the second
// applies the plan, which nothing can then fail (OOM is checked by Redis before a script's first
// write only). A failure is an error reply before any write: WRONGTYPE naming the key (or field)
// for a key of another type or a value driftline did not write (CONFIG_INVALID, see errors.ts),
// a raised script error for an argument the caller should never have sent (INTERNAL).

/**
 * Validation helpers: each refuses (raises an error reply) before the script's first write. Every
 * `local function` is a closure made again at each call (≈ 0.05 µs each), so a script includes
 * only the groups it uses (the per-record EXPIRE_SCRIPT: CHECKS alone).
 */
const CHECKS = `
local function refuse(message) error({ err = (string.gsub(message, '[\\r\\n]', ' ')) }) end
local function type_of(key) return redis.call('TYPE', key)['ok'] end
local function foreign(key, what)
  refuse('WRONGTYPE ' .. key .. ' holds a ' .. type_of(key) .. ', not ' .. what .. ' (nothing of this step was written)')
end
local function malformed(key, what)
  refuse('WRONGTYPE the value at ' .. key .. ' is not ' .. what .. ' (nothing of this step was written)')
end
-- A key this step writes: absent or of the type it writes.
local function check_type(key, want, what)
  local t = type_of(key)
  if t ~= 'none' and t ~= want then foreign(key, what) end
end
local function get_string(key, what)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' then foreign(key, what) end
  return v
end
local function zscore(key, member, what)
  local s = redis.pcall('ZSCORE', key, member)
  if type(s) == 'table' then foreign(key, what) end
  return s
end
-- An integer as INCR and HINCRBY read it, with room for any batch's increments (18 digits).
local function is_int(s)
  local digits = string.match(s, '^%-?([1-9]%d*)$')
  return s == '0' or (digits ~= nil and #digits <= 18)
end
local function is_finite(n) return n ~= nil and n == n and n ~= math.huge and n ~= -math.huge end
-- A finite number, as ZADD and HINCRBYFLOAT read it too (no surrounding space), or nil.
local function finite(s)
  local n = tonumber(s)
  if not is_finite(n) or string.byte(s, 1) <= 32 or string.byte(s, -1) <= 32 then return nil end
  return n
end
local function bad_argument(what, s)
  refuse('ERR driftline join script: ' .. what .. ' ' .. string.format('%q', tostring(s)) .. ' is not valid (nothing of this step was written)')
end
local function number_arg(s, what)
  local n = finite(s)
  if n == nil then bad_argument(what, s) end
  return n
end
local function ttl_arg(s, what)
  if #s > 15 or not string.find(s, '^[1-9]%d*$') then bad_argument(what, s) end
end
`;

/** Parsers of stored states; a value that does not parse is refused, naming its key. */
const PARSE_P = `
local function parse_p(key, v) -- P<deadline>\\n<window key>\\n<prediction> (E: expiredAt for deadline)
  local a = string.find(v, '\\n', 2, true)
  local b = a and string.find(v, '\\n', a + 1, true)
  local t = b and finite(string.sub(v, 2, a - 1))
  if not t then malformed(key, 'a join state (' .. string.sub(v, 1, 1) .. ')') end
  return t, string.sub(v, a + 1, b - 1), string.sub(v, b + 1)
end
`;

/** The batch scripts' reads and checks (all of them include CHECKS and PARSE_P first). */
const BATCH_CHECKS = `
-- Items of a list in slices Lua's unpack takes (it is bounded by a few thousand).
local function slices(list)
  if #list <= 1000 then return {list} end
  local parts = {}
  for from = 1, #list, 1000 do
    local part = {}
    for i = from, math.min(from + 999, #list) do part[#part + 1] = list[i] end
    parts[#parts + 1] = part
  end
  return parts
end
-- The values of the state keys (false: absent), in one MGET per 1,000 keys. MGET reads a key of
-- another type as absent, so an EXISTS counting more keys than MGET found one: it is named.
local function read_states(keys)
  local values, base = {}, 0
  if #keys == 0 then return values end -- a chunk of no records (only its span: a marker)
  for _, part in ipairs(slices(keys)) do
    local got = redis.call('MGET', unpack(part))
    local found = 0
    for i = 1, #part do
      values[base + i] = got[i]
      if got[i] then found = found + 1 end
    end
    if redis.call('EXISTS', unpack(part)) ~= found then
      for i = 1, #part do
        if not got[i] and type_of(part[i]) ~= 'none' then foreign(part[i], 'a join state (a string)') end
      end
    end
    base = base + #part
  end
  return values
end
local function parse_l(key, v) -- L<label time>\\n<label>
  local nl = string.find(v, '\\n', 2, true)
  local t = nl and finite(string.sub(v, 2, nl - 1))
  if not t then malformed(key, 'a join state (L)') end
  return t, string.sub(v, nl + 1)
end
local function parse_k(key, v) -- K<joinedAt>\\n<window key>\\n<prediction length>\\n<prediction><label>
  local a = string.find(v, '\\n', 2, true)
  local b = a and string.find(v, '\\n', a + 1, true)
  local c = b and string.find(v, '\\n', b + 1, true)
  local plen = c and string.match(string.sub(v, b + 1, c - 1), '^%d+$') and tonumber(string.sub(v, b + 1, c - 1))
  if not plen or c + plen > #v then malformed(key, 'a join state (K)') end
  return string.sub(v, 2, a - 1), string.sub(v, a + 1, b - 1), string.sub(v, c + 1, c + plen), string.sub(v, c + plen + 1)
end
-- The window key of a K or E state (between its first two newlines).
local function window_of(key, v)
  local a = string.find(v, '\\n', 2, true)
  local b = a and string.find(v, '\\n', a + 1, true)
  if not b then malformed(key, 'a join state (' .. string.sub(v, 1, 1) .. ')') end
  return string.sub(v, a + 1, b - 1)
end
-- The pending counts the deltas (window key → delta) will change: a hash, each field a count.
local function check_counts(key, deltas)
  local fields = {}
  for wk, d in pairs(deltas) do if d ~= 0 then fields[#fields + 1] = wk end end
  if #fields == 0 then return end
  check_type(key, 'hash', 'the pending counts (a hash)')
  for _, part in ipairs(slices(fields)) do
    local got = redis.call('HMGET', key, unpack(part))
    for i = 1, #part do
      if got[i] and not is_int(got[i]) then malformed(key .. ' field ' .. part[i], 'a pending count (an integer)') end
    end
  end
end
-- The watermark of a source: whether max_et raises it (a stored value must be a number).
local function raises_watermark(key, max_et)
  local wm = get_string(key, 'a watermark (a string)')
  if not wm then return true end
  local w = finite(wm)
  if w == nil then malformed(key, 'a watermark (a number)') end
  return w < max_et
end
-- What MARK_DIRTY touches: the dirty set and the mark sequence (a counter INCR can raise).
local function check_mark(dirty_key, seq_key)
  check_type(dirty_key, 'zset', 'the dirty windows (a sorted set)')
  local seq = get_string(seq_key, 'the dirty mark sequence (a string)')
  if seq and not is_int(seq) then malformed(seq_key, 'the dirty mark sequence (an integer)') end
end
`;

/** Applies the per-window pending deltas of a batch (checked by check_counts) and raises its source's watermark (KEYS[4]) when raises_watermark said so. */
const FLUSH = `
local function flush(deltas, raise, max_et)
  for wk, d in pairs(deltas) do
    if d ~= 0 and redis.call('HINCRBY', KEYS[2], wk, d) <= 0 then redis.call('HDEL', KEYS[2], wk) end
  end
  if raise then redis.call('SET', KEYS[4], max_et) end
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
 * The applied-through marker of the chunk's source (applied.ts of @driftline/join), value
 * `from,through,greatest Kafka timestamp`. plan_marker reads it (before any write), keeps it only
 * if it holds for these records (none at or below its end is newer than its greatest timestamp,
 * or without one; span_restart '1' drops it) and returns it with the value it takes after the
 * chunk (nil: deleted), its greatest timestamp at most `now` (nextMarker). span_first '' means no
 * offsets: no marker is read or written. offsets and times: per record, a number or false.
 */
const MARKER = `
local function plan_marker(key, span_first, span_last, span_time, span_restart, offsets, times, n, now)
  if span_first == '' then return nil, nil, false end
  local first, last = number_arg(span_first, 'span first offset'), number_arg(span_last, 'span last offset')
  local m = nil
  local v = get_string(key, 'an applied marker (a string)')
  if v then
    local f, t, x = string.match(v, '^([^,]+),([^,]+),([^,]+)$')
    m = f and { finite(f), finite(t), finite(x) }
    if not (m and m[1] and m[2] and m[3]) then malformed(key, 'an applied marker (from,through,time)') end
  end
  if span_restart == '1' then m = nil end
  if m then
    for i = 1, n do
      local o = offsets[i]
      if o and o <= m[2] and ((not times[i]) or times[i] > m[3]) then m = nil; break end
    end
  end
  local t = span_time ~= '' and finite(span_time)
  if not t or t < 0 then return m, nil, v ~= nil end
  t = math.min(t, now)
  if m and first <= m[2] + 1 and last >= m[1] - 1 then
    -- A step with no record checked (shadow predictions only) never raises the greatest time.
    return m, { math.min(m[1], first), math.max(m[2], last), n > 0 and math.max(m[3], t) or m[3] }, v ~= nil
  end
  return m, { first, last, t }, v ~= nil
end
local function covered(m, o) return m ~= nil and o and o >= m[1] and o <= m[2] end
-- A record's offset or Kafka timestamp argument: a number, or false ('' or a negative time).
local function position_arg(s, what)
  if s == '' then return false end
  local x = number_arg(s, what)
  if x < 0 then return false end
  return x
end
local function write_marker(key, nm, existed)
  if nm then
    redis.call('SET', key, string.format('%.17g,%.17g,%.17g', nm[1], nm[2], nm[3]))
  elseif existed then
    redis.call('DEL', key)
  end
end
`;

/**
 * Adds a batch's tallies (aggregated per group and slot in the script) to the groups' hashes and
 * lists the groups in the tally set (KEYS[5]). Sums are formatted with 17 significant digits: a
 * Lua number handed to redis.call is formatted with 14. check_tallies checks first that every
 * increment can be applied: the set and the hashes of their types, each count an integer, each
 * sum a number that stays finite.
 */
const ADD_TALLIES = `
local function check_tallies(tallies, tally_prefix)
  if next(tallies) == nil then return end
  check_type(KEYS[5], 'set', 'the tally groups (a set)')
  for group, slots in pairs(tallies) do
    local key = tally_prefix .. group
    check_type(key, 'hash', 'a tally (a hash)')
    local fields, sums = {}, {}
    for slot, t in pairs(slots) do
      if not is_finite(t[2]) then bad_argument('sum of the tallies of ' .. key .. ' slot ' .. slot, t[2]) end
      fields[#fields + 1] = 'c' .. slot
      fields[#fields + 1] = 's' .. slot
      sums[#sums + 1] = t[2]
    end
    local n = 0
    for _, part in ipairs(slices(fields)) do
      local got = redis.call('HMGET', key, unpack(part))
      for i = 1, #part do
        local v, field = got[i], part[i]
        n = n + 1
        if v and string.sub(field, 1, 1) == 'c' and not is_int(v) then malformed(key .. ' field ' .. field, 'a tally count (an integer)') end
        if v and string.sub(field, 1, 1) == 's' then
          local x = finite(v)
          if x == nil or not is_finite(x + sums[n / 2]) then malformed(key .. ' field ' .. field, 'a tally sum (a finite number)') end
        end
      end
    end
  end
end
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
 * KEYS: schedule, pending counts, dirty windows, the source's watermark, tally groups, dirty mark
 * sequence, the source's applied marker.
 * ARGV: now, backstop ttl, max event time ('' = no records), state key prefix, tally key prefix, label
 * reach (labelReachMs: a waiting label dated before deadline − reach is early), span first offset
 * ('' = no marker), span last offset, span's greatest Kafka timestamp, '1' to drop the marker
 * first, then per record: id, deadline, window key, prediction bytes, tally group ('' = none),
 * tally slot, tally value, offset ('' = none), Kafka timestamp ('' = none).
 * An absent state the marker covers is a replay whose tombstone expired: 'duplicate', nothing written.
 * Returns per record {outcome} or {outcome, prediction, label, joinedAt}.
 * First pass reads and checks (see CHECKS), second pass writes.
 */
export const PREDICTION_SCRIPT = `${CHECKS}${PARSE_P}${BATCH_CHECKS}
local now, backstop, max_et, state_prefix, tally_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
${FLUSH}
${MARK_DIRTY}
${ADD_TALLIES}
${MARKER}
local now_n = number_arg(now, 'now')
ttl_arg(backstop, 'backstop ttl')
local reach = number_arg(ARGV[6], 'label reach')
-- '' for a chunk of no records: no event time, the watermark stays.
local max_et_n = max_et ~= '' and number_arg(max_et, 'max event time')
local n = (#ARGV - 10) / 9
if n % 1 ~= 0 then bad_argument('argument count', #ARGV) end
local keys, offsets, times = {}, {}, {}
for i = 1, n do
  local j = 9 * i + 2
  keys[i] = state_prefix .. ARGV[j]
  offsets[i] = position_arg(ARGV[j + 7], 'offset')
  times[i] = position_arg(ARGV[j + 8], 'kafka timestamp')
end
local marker, next_marker, marker_existed = plan_marker(KEYS[7], ARGV[7], ARGV[8], ARGV[9], ARGV[10], offsets, times, n, now_n)
-- state: the batch's view of each state key (false: absent), its own writes included.
local state, values = {}, read_states(keys)
for i = 1, n do if state[keys[i]] == nil then state[keys[i]] = values[i] end end
-- The plan: per record, the write (1 pending, 2 joined) and the value it writes.
local act, written, deltas, dirty, tallies, out = {}, {}, {}, {}, {}, {}
-- The first transition of a prediction (pending, pending-late-label, pending-early-label, joined) counts its tally.
local function tally(group, slot, value)
  if group == '' then return end
  local x = number_arg(value, 'tally value')
  local slots = tallies[group]
  if not slots then slots = {}; tallies[group] = slots end
  local t = slots[slot]
  if t then t[1] = t[1] + 1; t[2] = t[2] + x else slots[slot] = {1, x} end
end
for i = 1, n do
  local j = 9 * i + 2
  local deadline, wk, payload = ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
  local key = keys[i]
  local v = state[key]
  local tag = v and string.sub(v, 1, 1)
  local outcome = nil
  if not v and covered(marker, offsets[i]) then
    out[i] = {'duplicate'}
  elseif not v then
    outcome = 'pending'
  elseif tag == 'L' then
    local label_time, label = parse_l(key, v)
    local deadline_n = number_arg(deadline, 'deadline')
    if label_time > deadline_n then
      outcome = 'pending-late-label'
    elseif label_time < deadline_n - reach then
      outcome = 'pending-early-label'
    else
      if string.find(wk, '\\n', 1, true) then bad_argument('window key (with a newline)', wk) end
      local joined = 'K' .. now .. '\\n' .. wk .. '\\n' .. #payload .. '\\n' .. payload .. label
      act[i], written[i], state[key] = 2, joined, joined
      tally(ARGV[j + 4], ARGV[j + 5], ARGV[j + 6])
      out[i] = {'joined', '', label, now} -- the prediction is the caller's own record
    end
  elseif tag == 'K' then
    local joined_at, _, p, l = parse_k(key, v)
    out[i] = {'replayed', p, l, joined_at}
  else
    out[i] = {'duplicate'}
  end
  if outcome then
    number_arg(deadline, 'deadline')
    if string.find(wk, '\\n', 1, true) then bad_argument('window key (with a newline)', wk) end
    local pending = 'P' .. deadline .. '\\n' .. wk .. '\\n' .. payload
    act[i], written[i], state[key] = 1, pending, pending
    deltas[wk] = (deltas[wk] or 0) + 1
    dirty[wk] = true
    tally(ARGV[j + 4], ARGV[j + 5], ARGV[j + 6])
    out[i] = {outcome}
  end
end
if next(act) ~= nil then check_type(KEYS[1], 'zset', 'the schedule (a sorted set)') end
check_counts(KEYS[2], deltas)
local raise = max_et_n and raises_watermark(KEYS[4], max_et_n)
if next(dirty) ~= nil then check_mark(KEYS[3], KEYS[6]) end
check_tallies(tallies, tally_prefix)
-- Second pass: the plan, which nothing can fail now.
for i = 1, n do
  local a = act[i]
  if a == 1 then
    redis.call('SET', keys[i], written[i])
    redis.call('ZADD', KEYS[1], ARGV[9 * i + 3], ARGV[9 * i + 2])
  elseif a == 2 then
    redis.call('SET', keys[i], written[i], 'PX', backstop)
    redis.call('ZREM', KEYS[1], ARGV[9 * i + 2])
  end
end
flush(deltas, raise, max_et)
write_marker(KEYS[7], next_marker, marker_existed)
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
 * Every key it renames or reads is checked before its first write (see CHECKS).
 */
export const TAKE_TALLIES_SCRIPT = `${CHECKS}
local function taken(group)
  local h = redis.pcall('HGETALL', ARGV[3] .. group)
  if h['err'] then foreign(ARGV[3] .. group, 'a taken tally (a hash)') end
  return h
end
local id = get_string(KEYS[2], 'the tally batch in flight (a string)')
check_type(KEYS[1], 'set', 'the tally groups (a set)')
check_type(KEYS[3], 'set', 'the taken tally groups (a set)')
if not id then
  local groups = redis.call('SMEMBERS', KEYS[1])
  if #groups > 0 then
    local present, renamed = {}, {}
    for _, group in ipairs(groups) do
      local t = type_of(ARGV[2] .. group)
      if t == 'hash' then
        present[#present + 1] = group
        renamed[group] = true
      elseif t ~= 'none' then
        foreign(ARGV[2] .. group, 'a tally (a hash)')
      end
    end
    -- Groups already listed as taken (none, unless left by hand) are read below: check them too.
    for _, group in ipairs(redis.call('SMEMBERS', KEYS[3])) do
      if not renamed[group] then check_type(ARGV[3] .. group, 'hash', 'a taken tally (a hash)') end
    end
    id = ARGV[1]
    redis.call('SET', KEYS[2], id)
    for _, group in ipairs(present) do
      redis.call('RENAME', ARGV[2] .. group, ARGV[3] .. group)
      redis.call('SADD', KEYS[3], group)
    end
    redis.call('DEL', KEYS[1])
  end
end
local out = {id or '', redis.call('SCARD', KEYS[1])}
if id then
  for _, group in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    out[#out + 1] = group
    out[#out + 1] = taken(group)
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
 * The dirty set and the mark sequence are checked before the first write: a batch forgotten
 * without its marks left its windows without a recompute.
 */
export const ACK_TALLIES_SCRIPT = `${CHECKS}${PARSE_P}${BATCH_CHECKS}
${MARK_DIRTY}
if get_string(KEYS[1], 'the tally batch in flight (a string)') ~= ARGV[1] then return 0 end
check_type(KEYS[2], 'set', 'the taken tally groups (a set)')
local windows = {}
for i = 3, #ARGV do windows[ARGV[i]] = true end
if next(windows) ~= nil then check_mark(KEYS[3], KEYS[4]) end
for _, group in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', ARGV[2] .. group) end
redis.call('DEL', KEYS[1], KEYS[2])
mark_dirty(KEYS[3], KEYS[4], windows)
return 1
`;

/**
 * KEYS: schedule, pending counts, dirty windows, the source's watermark, the source's applied marker.
 * ARGV: now, backstop ttl, max event time ('' = no records), state key prefix, label reach (labelReachMs:
 * a label dated before a pending prediction's deadline − reach is early; two waiting labels further
 * apart than it keep the later), span first offset ('' = no marker), span last offset, span's greatest Kafka timestamp, '1' to drop the marker first, then per
 * record: id, label time, wait-until score, label bytes, '1' when an earlier record of the same
 * batch has the same id (its replay then carries no payloads: that earlier record's row is
 * emitted already, and a flood of one label repeated would otherwise return the stored
 * prediction once per copy), offset ('' = none), Kafka timestamp ('' = none).
 * An absent state the marker covers is a replay whose tombstone expired: 'duplicate', nothing written.
 * First pass reads and checks (see CHECKS), second pass writes.
 */
export const LABEL_SCRIPT = `${CHECKS}${PARSE_P}${BATCH_CHECKS}
local now, backstop, max_et, state_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
${FLUSH}
${MARKER}
local now_n = number_arg(now, 'now')
ttl_arg(backstop, 'backstop ttl')
local reach = number_arg(ARGV[5], 'label reach')
-- '' for a chunk of no records: no event time, the watermark stays.
local max_et_n = max_et ~= '' and number_arg(max_et, 'max event time')
local n = (#ARGV - 9) / 7
if n % 1 ~= 0 then bad_argument('argument count', #ARGV) end
local keys, offsets, times = {}, {}, {}
for i = 1, n do
  local j = 7 * i + 3
  keys[i] = state_prefix .. ARGV[j]
  offsets[i] = position_arg(ARGV[j + 5], 'offset')
  times[i] = position_arg(ARGV[j + 6], 'kafka timestamp')
end
local marker, next_marker, marker_existed = plan_marker(KEYS[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], offsets, times, n, now_n)
-- state: the batch's view of each state key (false: absent), its own writes included.
local state, values = {}, read_states(keys)
for i = 1, n do if state[keys[i]] == nil then state[keys[i]] = values[i] end end
-- The plan: per record, the write (1 waiting label, 2 joined) and the value it writes.
local act, written, deltas, out = {}, {}, {}, {}
local function wait(i, key, et, wait_until, payload)
  number_arg(wait_until, 'wait-until score')
  local waiting = 'L' .. et .. '\\n' .. payload
  act[i], written[i], state[key] = 1, waiting, waiting
end
for i = 1, n do
  local j = 7 * i + 3
  local et, wait_until, payload, repeated = ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ARGV[j + 4]
  local key = keys[i]
  local v = state[key]
  local tag = v and string.sub(v, 1, 1)
  if not v and covered(marker, offsets[i]) then
    out[i] = {'duplicate'}
  elseif not v then
    number_arg(et, 'label time')
    wait(i, key, et, wait_until, payload)
    out[i] = {'waiting'}
  elseif tag == 'P' then
    local deadline, wk, p = parse_p(key, v)
    local et_n = number_arg(et, 'label time')
    if et_n > deadline then
      out[i] = {'late'}
    elseif et_n < deadline - reach then
      out[i] = {'early'} -- not this prediction's label: it keeps waiting for its own
    else
      local joined = 'K' .. now .. '\\n' .. wk .. '\\n' .. #p .. '\\n' .. p .. payload
      act[i], written[i], state[key] = 2, joined, joined
      deltas[wk] = (deltas[wk] or 0) - 1
      out[i] = {'joined', p, '', now} -- the label is the caller's own record
    end
  elseif tag == 'L' then
    -- The earliest wins among labels within one prediction's reach; further apart, the later.
    local et_n, waiting = number_arg(et, 'label time'), parse_l(key, v)
    if et_n > waiting + reach or (et_n < waiting and et_n >= waiting - reach) then wait(i, key, et, wait_until, payload) end
    out[i] = {'waiting-duplicate'}
  elseif tag == 'K' and repeated == '1' then
    out[i] = {'replayed'}
  elseif tag == 'K' then
    local joined_at, _, p, l = parse_k(key, v)
    out[i] = {'replayed', p, l, joined_at}
  elseif tag == 'J' then
    out[i] = {'duplicate'}
  else
    out[i] = {'late'}
  end
end
if next(act) ~= nil then check_type(KEYS[1], 'zset', 'the schedule (a sorted set)') end
check_counts(KEYS[2], deltas)
local raise = max_et_n and raises_watermark(KEYS[4], max_et_n)
-- Second pass: the plan, which nothing can fail now.
for i = 1, n do
  local a = act[i]
  if a == 1 then
    redis.call('SET', keys[i], written[i])
    redis.call('ZADD', KEYS[1], ARGV[7 * i + 5], ARGV[7 * i + 3])
  elseif a == 2 then
    redis.call('SET', keys[i], written[i], 'PX', backstop)
    redis.call('ZREM', KEYS[1], ARGV[7 * i + 3])
  end
end
flush(deltas, raise, max_et)
write_marker(KEYS[5], next_marker, marker_existed)
return out
`;

/**
 * KEYS: state, schedule, pending counts, outbox.
 * ARGV: id, cutoff, now, backstop ttl.
 * Reads and checks first; of the writes only the first (the pending count's HINCRBY) could still
 * fail, and then nothing is written. A state key holding something that is not a join state (a
 * key of another type, a P without its window) has its schedule entry dropped as stale, with a
 * warning in the Redis log, and nothing else written: nothing of it can be expired or counted, and
 * refusing would stop every expiry pass at that entry (the pass takes the schedule in order).
 */
export const EXPIRE_SCRIPT = `${CHECKS}
local id, cutoff, now, backstop = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cut = number_arg(cutoff, 'cutoff')
number_arg(now, 'now')
ttl_arg(backstop, 'backstop ttl')
local score = zscore(KEYS[2], id, 'the schedule (a sorted set)')
if (not score) or tonumber(score) > cut then return 'not-due' end
local v = redis.pcall('GET', KEYS[1])
local tag = type(v) == 'string' and string.sub(v, 1, 1)
local a = tag == 'P' and string.find(v, '\\n', 2, true)
local b = a and string.find(v, '\\n', a + 1, true)
if type(v) == 'table' or (tag == 'P' and not b) then
  redis.log(redis.LOG_WARNING, 'driftline join store: ' .. KEYS[1] .. ' is not a join state; its schedule entry is dropped')
  tag = nil
end
if tag == 'P' then
  local wk = string.sub(v, a + 1, b - 1)
  check_type(KEYS[4], 'zset', 'the outbox (a sorted set)')
  local left = redis.pcall('HINCRBY', KEYS[3], wk, -1)
  if type(left) == 'table' then
    refuse('WRONGTYPE ' .. KEYS[3] .. ' field ' .. wk .. ' is not a pending count (' .. left['err'] .. '; nothing of this step was written)')
  end
  if left <= 0 then redis.call('HDEL', KEYS[3], wk) end
  redis.call('ZREM', KEYS[2], id)
  redis.call('SET', KEYS[1], 'E' .. now .. '\\n' .. wk .. '\\n' .. string.sub(v, b + 1), 'PX', backstop)
  redis.call('ZADD', KEYS[4], now, id)
  return 'expiring'
end
redis.call('ZREM', KEYS[2], id)
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
 * prefix, ids. First pass reads and checks (see CHECKS), second pass writes.
 */
export const ACK_SCRIPT = `${CHECKS}${PARSE_P}${BATCH_CHECKS}
${MARK_DIRTY}
local tomb, expected, state_prefix = ARGV[1], ARGV[2], ARGV[3]
ttl_arg(tomb, 'tombstone ttl')
if expected ~= 'K' and expected ~= 'E' then bad_argument('expected tag', expected) end
local ids, keys = {}, {}
for i = 4, #ARGV do
  ids[#ids + 1] = ARGV[i]
  keys[#keys + 1] = state_prefix .. ARGV[i]
end
if #keys == 0 then return 0 end
local values = read_states(keys)
if expected == 'E' then check_type(KEYS[2], 'zset', 'the outbox (a sorted set)') end
local tombstone = expected == 'K' and 'J' or 'X'
local state, act, dirty, acked = {}, {}, {}, 0
for i, key in ipairs(keys) do
  local v = state[key]
  if v == nil then v = values[i] end
  if v and string.sub(v, 1, 1) == expected then
    dirty[window_of(key, v)] = true
    act[i], state[key] = true, tombstone
    acked = acked + 1
  end
end
if next(dirty) ~= nil then check_mark(KEYS[1], KEYS[3]) end
-- Second pass: the plan, which nothing can fail now.
if expected == 'E' then
  for _, part in ipairs(slices(ids)) do redis.call('ZREM', KEYS[2], unpack(part)) end
end
for i, key in ipairs(keys) do
  if act[i] then redis.call('SET', key, tombstone, 'PX', tomb) end
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
 * Every key is read or checked before the first write (a v2 state without its schedule entry
 * would never expire).
 */
export const MIGRATE_V1_SCRIPT = `${CHECKS}
local v = get_string(KEYS[1], 'a v1 join state (a string)')
local s = zscore(KEYS[3], ARGV[1], 'the v1 schedule (a sorted set)')
local o = zscore(KEYS[5], ARGV[1], 'the v1 outbox (a sorted set)')
local move = v and redis.call('EXISTS', KEYS[2]) == 0
if move then
  if s then check_type(KEYS[4], 'zset', 'the schedule (a sorted set)') end
  if o then check_type(KEYS[6], 'zset', 'the outbox (a sorted set)') end
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('SET', KEYS[2], v, 'PX', ttl) else redis.call('SET', KEYS[2], v) end
  if s then redis.call('ZADD', KEYS[4], s, ARGV[2]) end
  if o then redis.call('ZADD', KEYS[6], o, ARGV[2]) end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return move and 1 or 0
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
