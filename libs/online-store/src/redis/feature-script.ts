import { ROW_COPY, ROW_EVENT_ID, ROW_TIME } from '../rows.js';

/**
 * The one write script of the online store: event-time last-write-wins of rows and the exact
 * sliding-window aggregates of their entities, atomically per entity. One call carries many
 * entities of one view (the view's field names travel once per call, each entity its values and a
 * presence mask), which divides Redis' per-call cost and the client's per-command cost. ioredis
 * sends it with EVALSHA (EVAL once per connection, again after a NOSCRIPT).
 *
 * KEYS     per entity: row, its layout-v1 hash [, window sorted set, its layout-v1 set] (keys.ts)
 * ARGV     ttl_ms, nf, field × nf, nagg [, horizon_ms, max_events, budget, nslots, (name, fn, window_ms, slot) × nagg],
 *          ceiling_ms, n, then per entity: t, id, copy, mask, value × nf [, nev, (t, id, copy, packed) × nev]
 *          (copy: copyDigest of @driftline/features, what tells copies of one event id apart)
 *          (mask: one '1'/'0' per field, '0' = absent or null, deleted from the row)
 *
 * Row: one JSON object of strings (cjson; strings keep every digit, cjson's numbers would not),
 * rewritten whole when it changes. Applied only if (t, id, copy) is greater than the stored (ROW_TIME,
 * ROW_EVENT_ID, ROW_COPY; a row without a copy has '') — ids and copies compared as bytes, never with
 * the locale-dependent `<` of Lua strings — so an older, replayed or duplicated event changes nothing
 * and any delivery order converges to the same row, a re-send with other values at the same time
 * included. A value at the row's name that is not a JSON object is refused with a WRONGTYPE reply, as
 * Redis refuses a key of another type (CONFIG_INVALID: not ours at that key, never an outage).
 * Migration: when the row is absent and its layout-v1 hash exists, the hash is the stored row: it is
 * moved into the new row (keeping its remaining TTL when this write changes nothing) and deleted,
 * and its window set is renamed, so an upgrade loses no row and no window history.
 * Window: members `id \0 copy \0 packed-values` scored by event time (`id \0 packed-values`, copy '',
 * before copies); an id counts once, as its greatest copy (time, then copy): a greater copy replaces
 * the member of its id, any other is a no-op — the copy the row keeps, in any delivery order; members at or below anchor − horizon are trimmed (they can never count again, since the
 * anchor only grows), and beyond max_events the lowest-ranked (oldest (time, id)) members are
 * trimmed too, so a hot entity's set and each write's refold stay within max_events (the newest
 * max_events of any delivery order: the same set); aggregates are recomputed only when the set or
 * the anchor changed, folding
 * values in (time, id) order so float sums do not depend on arrival order.
 * Repair: a stored row time above `ceiling_ms` (the writer's now + the largest future skew any
 * configuration accepts) cannot come from an accepted event: it was written before event times were
 * bounded (a µs `event_time` read as ms). Such a row would win every later write forever, so it is
 * treated as absent (the new event replaces it) and window members above the ceiling are removed.
 * Budget (windowed views): a call stops before an entity that would take its refold work (window
 * members read plus events carried, one more per entity) past `budget`, the first entity excepted;
 * the caller sends the rest again (ChunkedPipeline). Redis serves no other client meanwhile.
 * Returns { rows applied, entities whose served aggregates changed, rows repaired, rows expired,
 * entities written (the first ones of the call) } (expired: winners already past the TTL, deleted
 * on arrival, counted neither as applied nor as aggregated).
 * Anchor: the greatest of the event's time, the row's and the set's newest member's (a set outlives
 * its row), as offlineRow anchors at the newest event.
 * TTL: a changed row expires ttl after its newest event time; the window set at anchor + ttl +
 * horizon, never earlier than it already would, since an event accepted until the row's expiry
 * still counts members down to its time − horizon.
 *
 * Each entity's keys share a hash tag; driftline still needs a standalone Redis (the join scripts
 * take keys of several slots; a cluster's replies are CONFIG_INVALID). Needs Redis 6.2+ (PXAT).
 */
export const FEATURE_WRITE_SCRIPT = `
local function gt(a, b)
  if a == b then return false end
  local la, lb = #a, #b
  local n = la < lb and la or lb
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return la > lb
end
local function fmt(x) return string.format('%.17g', x) end
-- copy and packed values of a window member (a member written before copies has copy '').
local function member_parts(member)
  local a = string.find(member, '\\0', 1, true)
  local b = string.find(member, '\\0', a + 1, true)
  if b then return string.sub(member, a + 1, b - 1), string.sub(member, b + 1) end
  return '', string.sub(member, a + 1)
end

local ttl = tonumber(ARGV[1])
local nf = tonumber(ARGV[2])
local fields = {}
for i = 1, nf do fields[i] = ARGV[2 + i] end
local q = 3 + nf
local nagg = tonumber(ARGV[q])
q = q + 1
local horizon, maxev, budget, nslots, aggs = 0, 0, 0, 0, {}
if nagg > 0 then
  horizon = tonumber(ARGV[q])
  maxev = tonumber(ARGV[q + 1])
  budget = tonumber(ARGV[q + 2])
  nslots = tonumber(ARGV[q + 3])
  q = q + 4
  for i = 1, nagg do
    aggs[i] = { ARGV[q], ARGV[q + 1], tonumber(ARGV[q + 2]), tonumber(ARGV[q + 3]) }
    q = q + 4
  end
end
local ceiling = tonumber(ARGV[q])
local n = tonumber(ARGV[q + 1])
-- The server's clock: a row expires ttl after its newest event time, not after the write.
local clock = redis.call('TIME')
local nowms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
q = q + 2
local stride = nagg > 0 and 4 or 2
local applied, aggregated, repaired, expired = 0, 0, 0, 0
-- Refold work of the call so far: window members read and events carried, one per entity.
local work = 0

-- The refold's scratch, reused by every entity of the call (a small set's write was mostly
-- allocations): per aggregate its window's lower bound and running count, sum, min and max; the
-- values of the member being folded; the members the events add (fm, ft, fid: member, time, id).
local lo, cnt, sum, mn, mx, slots, fm, ft, fid = {}, {}, {}, {}, {}, {}, {}, {}, {}
local skip = 0
-- Folds one member into every aggregate whose window holds it; called in the set's order (time,
-- then member bytes), so values are folded in (time, id) order and float sums do not depend on
-- the arrival order.
local function fold(member, time)
  local _, packed = member_parts(member)
  if nslots == 1 then
    -- A member written when the view aggregated more features holds more values: the first is
    -- this one's (a feature changing its slot is reported as a rebuild). tonumber of the whole
    -- was nil: every kept member read as missing after an aggregate was removed (a review).
    slots[1] = tonumber(packed) or tonumber(string.match(packed, '^([^,]*)'))
  else
    local k = 0
    for v in string.gmatch(packed .. ',', '([^,]*),') do
      if k == nslots then break end
      k = k + 1
      slots[k] = tonumber(v) or false
    end
    for j = k + 1, nslots do slots[j] = false end
  end
  for a = 1, nagg do
    if time > lo[a] then
      local v = slots[aggs[a][4]]
      if v then
        cnt[a] = cnt[a] + 1
        sum[a] = sum[a] + v
        if mn[a] == nil or v < mn[a] then mn[a] = v end
        if mx[a] == nil or v > mx[a] then mx[a] = v end
      end
    end
  end
end
-- The first skip members are those ZREMRANGEBYRANK cut (beyond max_events).
local function take(member, time)
  if skip > 0 then skip = skip - 1 else fold(member, time) end
end
local function before(x, y) return ft[x] < ft[y] or (ft[x] == ft[y] and gt(fm[y], fm[x])) end

for e = 1, n do
  local k = (e - 1) * stride
  -- Redis serves no other client while a script runs, so a call's work is bounded: a later entity
  -- whose window set would take the call past the budget is left to the next call (the reply says
  -- how many were written). The first always goes: every call makes progress. 100 hot entities
  -- of full 1,000-member sets were one call of ~0.2 s; of 100,000, seconds, then BUSY (a review).
  if nagg > 0 and work > 0 then
    local nevNext = tonumber(ARGV[q + 4 + nf])
    if work + 1 + maxev + nevNext > budget and work + 1 + redis.call('ZCARD', KEYS[k + 3]) + nevNext > budget then
      return { applied, aggregated, repaired, expired, e - 1 }
    end
  end
  local cost = 1
  local row, oldRow = KEYS[k + 1], KEYS[k + 2]
  local ts, id, copy, mask = ARGV[q], ARGV[q + 1], ARGV[q + 2], ARGV[q + 3]
  local t = tonumber(ts)
  local cur, keepTtl = nil, nil
  local stored = redis.call('GET', row)
  if stored then
    local ok, decoded = pcall(cjson.decode, stored)
    if not ok or type(decoded) ~= 'table' then
      return redis.error_reply('WRONGTYPE the value at ' .. row .. ' is not a driftline row (a JSON object)')
    end
    cur = decoded
  else
    local hash = redis.call('HGETALL', oldRow)
    if #hash > 0 then
      cur = {}
      for i = 1, #hash, 2 do cur[hash[i]] = hash[i + 1] end
      keepTtl = redis.call('PTTL', oldRow)
      redis.call('DEL', oldRow)
      if nagg > 0 and redis.call('EXISTS', KEYS[k + 4]) == 1 then
        if redis.call('EXISTS', KEYS[k + 3]) == 0 then redis.call('RENAME', KEYS[k + 4], KEYS[k + 3])
        else redis.call('DEL', KEYS[k + 4]) end
      end
    end
  end
  local oldT = cur and tonumber(cur['${ROW_TIME}'])
  local frozen = oldT ~= nil and oldT > ceiling
  if frozen then
    oldT = nil
    repaired = repaired + 1
  end
  local changed, won, recomputed = false, false, false
  local oldId = cur and cur['${ROW_EVENT_ID}'] or ''
  if oldT == nil or t > oldT or (t == oldT and (gt(id, oldId) or (id == oldId and gt(copy, cur['${ROW_COPY}'] or '')))) then
    cur = cur or {}
    cur['${ROW_TIME}'] = ts
    cur['${ROW_EVENT_ID}'] = id
    cur['${ROW_COPY}'] = copy
    for i = 1, nf do
      if string.byte(mask, i) == 49 then cur[fields[i]] = ARGV[q + 3 + i] else cur[fields[i]] = nil end
    end
    applied = applied + 1
    changed, won = true, true
  end
  q = q + 4 + nf
  if nagg > 0 then
    local zkey = KEYS[k + 3]
    if frozen then redis.call('ZREMRANGEBYSCORE', zkey, '(' .. fmt(ceiling), '+inf') end
    -- The window is anchored at the newest event seen, as offlineRow's: the row's time, or a newer
    -- member the set kept past an expired row (a TTL raised since). An old event replayed in a quiet
    -- spell, its row gone, anchored at its own time and cut the set's life short (found by a review).
    local anchor = t
    if oldT ~= nil and oldT > anchor then anchor = oldT end
    local newest = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
    -- A member above the ceiling with no frozen row (a µs time of the era before bounds, its row
    -- lost): as the anchor it would put every event below the floor and empty the set for good.
    if not frozen and #newest > 0 and tonumber(newest[2]) > ceiling then
      redis.call('ZREMRANGEBYSCORE', zkey, '(' .. fmt(ceiling), '+inf')
      repaired = repaired + 1
      newest = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
    end
    if #newest > 0 and tonumber(newest[2]) > anchor then anchor = tonumber(newest[2]) end
    local floor = anchor - horizon
    local nev = tonumber(ARGV[q])
    q = q + 1
    local added = 0
    -- A moved anchor: members at or below the new floor can never count again. Trimmed before the
    -- read (an event is only added above the floor: the set trimming after the adds leaves).
    local moved = oldT == nil or anchor > oldT
    if moved then redis.call('ZREMRANGEBYSCORE', zkey, '-inf', fmt(floor)) end
    -- The set, read once (it was read twice: the ids, then again to refold): member i is
    -- all[2i - 1], its time all[2i]; the members the events add are fm/ft[j], index m0 + j.
    local all, m0 = nil, 0
    if nev > 0 or moved then
      all = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
      m0 = #all / 2
      cost = cost + m0 + nev
    end
    -- Looked up by id: the member an event's id has (the copy kept): an id counts once, as its
    -- greatest copy (ZADD NX alone compared id and values, so a resend with other values in a
    -- later batch counted twice; keeping the first copy made the sum depend on the delivery order
    -- and disagree with the row). One added by this write first, else the last in the set's order
    -- (should it hold two). Event ids and copies hold no NUL. Few events search the members by
    -- prefix; more index every id (present: id -> index, m0 + j for fm[j]).
    local present = nil
    if nev > 3 then
      present = {}
      for i = 1, m0 do
        local member = all[2 * i - 1]
        present[string.sub(member, 1, string.find(member, '\\0', 1, true) - 1)] = i
      end
    end
    local nfm, gone, reread = 0, nil, false
    for i = 1, nev do
      local et, eid, ecopy = tonumber(ARGV[q]), ARGV[q + 1], ARGV[q + 2]
      local old = nil
      if present ~= nil then old = present[eid]
      else
        for j = nfm, 1, -1 do
          if fid[j] == eid then
            old = m0 + j
            break
          end
        end
        if old == nil then
          local prefix = eid .. '\\0'
          for j = m0, 1, -1 do
            if string.find(all[2 * j - 1], prefix, 1, true) == 1 then
              old = j
              break
            end
          end
        end
      end
      local oldMember, keptT = nil, nil
      if old ~= nil then
        if old > m0 then oldMember, keptT = fm[old - m0], ft[old - m0]
        else oldMember, keptT = all[2 * old - 1], tonumber(all[2 * old]) end
      end
      local greater = old == nil
      if not greater and et > floor then
        local keptCopy = member_parts(oldMember)
        greater = et > keptT or (et == keptT and gt(ecopy, keptCopy))
      end
      if et > floor and greater then
        if old ~= nil then
          redis.call('ZREM', zkey, oldMember)
          gone = gone or {}
          gone[old] = true
        end
        local member = eid .. '\\0' .. ecopy .. '\\0' .. ARGV[q + 3]
        -- 0: the member was there under another index (never written so): read the set again.
        if redis.call('ZADD', zkey, ARGV[q], member) == 0 then reread = true end
        nfm = nfm + 1
        fm[nfm], ft[nfm], fid[nfm] = member, et, eid
        if present ~= nil then present[eid] = m0 + nfm end
        added = added + 1
      end
      q = q + 4
    end
    if added > 0 or moved then
      if added > 0 then redis.call('ZREMRANGEBYRANK', zkey, 0, -(maxev + 1)) end
      -- One pass over the set as Redis now holds it, every aggregate folded as it goes.
      for x = 1, nagg do
        lo[x], cnt[x], sum[x], mn[x], mx[x] = anchor - aggs[x][3], 0, 0, nil, nil
      end
      skip = 0
      if reread then
        local set = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
        for i = 1, #set, 2 do fold(set[i], tonumber(set[i + 1])) end
      else
        -- The members read less those replaced, merged with the added ones (sorted); past
        -- max_events without the lowest ranks, as ZREMRANGEBYRANK cut them.
        local fresh, nfresh, kept = {}, 0, m0
        for j = 1, nfm do
          if gone == nil or not gone[m0 + j] then
            nfresh = nfresh + 1
            fresh[nfresh] = j
          end
        end
        if gone ~= nil then
          for x in pairs(gone) do
            if x <= m0 then kept = kept - 1 end
          end
        end
        for j = 2, nfresh do
          if before(fresh[j], fresh[j - 1]) then
            table.sort(fresh, before)
            break
          end
        end
        if added > 0 and kept + nfresh > maxev then skip = kept + nfresh - maxev end
        local f = 1
        for i = 1, m0 do
          if gone == nil or not gone[i] then
            local member, time = all[2 * i - 1], tonumber(all[2 * i])
            while f <= nfresh and (ft[fresh[f]] < time or (ft[fresh[f]] == time and gt(member, fm[fresh[f]]))) do
              take(fm[fresh[f]], ft[fresh[f]])
              f = f + 1
            end
            take(member, time)
          end
        end
        for j = f, nfresh do take(fm[fresh[j]], ft[fresh[j]]) end
      end
      local out, dels = {}, {}
      for a, agg in ipairs(aggs) do
        local name, fn = agg[1], agg[2]
        if fn == 'count' then
          out[#out + 1] = name
          out[#out + 1] = tostring(cnt[a])
        elseif fn == 'sum' then
          out[#out + 1] = name
          out[#out + 1] = fmt(sum[a])
        elseif cnt[a] == 0 then
          dels[#dels + 1] = name
        else
          out[#out + 1] = name
          if fn == 'mean' then out[#out + 1] = fmt(sum[a] / cnt[a])
          elseif fn == 'min' then out[#out + 1] = fmt(mn[a])
          else out[#out + 1] = fmt(mx[a]) end
        end
      end
      for i = 1, #out, 2 do cur[out[i]] = out[i + 1] end
      for _, name in ipairs(dels) do cur[name] = nil end
      -- Kept a horizon past the row: an event accepted later (time > now − ttl) may still count
      -- members down to its time − horizon, when the row it would have anchored on has expired
      -- (deleted with the row, a quiet entity's next event aggregated over itself alone). Only ever
      -- extended: no write shortens a life given before (PEXPIREAT GT needs Redis 7). A set already
      -- past it is deleted here (PEXPIREAT in the past).
      if ttl > 0 then
        local left = redis.call('PTTL', zkey)
        if left < 0 or anchor + ttl + horizon > nowms + left then redis.call('PEXPIREAT', zkey, anchor + ttl + horizon) end
      end
      aggregated = aggregated + 1
      recomputed = true
      changed = true
    end
  end
  work = work + cost
  -- A changed row expires the view's TTL after its newest event time (Feast's ttl): a replay, or
  -- an old event after the row expired, no longer serves values older than the TTL for a whole
  -- TTL more. One already past it is removed. A migration that changed nothing keeps the v1 TTL.
  if changed and ttl > 0 then
    local expireAt = tonumber(cur['${ROW_TIME}']) + ttl
    if expireAt <= nowms then
      -- The window set stays until its own expiry (above): later events within the TTL count it.
      redis.call('DEL', row)
      if won then
        applied = applied - 1
        expired = expired + 1
      end
      -- Never served: not an aggregate update either (the set keeps the event for later ones).
      if recomputed then aggregated = aggregated - 1 end
    else
      redis.call('SET', row, cjson.encode(cur), 'PXAT', expireAt)
    end
  elseif changed or keepTtl ~= nil then
    local px = changed and 0 or keepTtl
    if px > 0 then redis.call('SET', row, cjson.encode(cur), 'PX', px)
    else redis.call('SET', row, cjson.encode(cur)) end
  end
end
return { applied, aggregated, repaired, expired, n }
`;

/**
 * The fallback reader of layout-v1 rows (hashes not yet migrated by a write): HMGET of the same
 * fields on every key, in one call. Only the entities a batch's MGET found absent go through it.
 * KEYS: v1 row hashes; ARGV: fields. Answers per key the HMGET reply, nil for no key, or 0 for a
 * key of another type (not a row: the reader treats it as a damaged row). An HMGET of such a key
 * failed the whole call with WRONGTYPE, so one foreign value failed every entity of a batch
 * (found by a review). Keys of different entities may sit in different cluster slots: called with
 * one key at a time when entitiesPerCall = 1.
 */
export const FEATURE_V1_READ_SCRIPT = `
local out = {}
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind == 'hash' then out[i] = redis.call('HMGET', KEYS[i], unpack(ARGV))
  elseif kind == 'none' then out[i] = false
  else out[i] = 0 end
end
return out
`;

/**
 * The size probe of layout-v1 rows for a bounded batch read (`readBytesPerCall`): per key, the
 * bytes an HMGET of the ARGV fields would answer (the sum of their HSTRLEN), -1 for no key, or -2
 * for a key of another type. Its reply is a number per key whatever the hashes weigh, so the
 * reader can then read them in calls of a bounded reply. KEYS and ARGV as FEATURE_V1_READ_SCRIPT.
 */
export const FEATURE_V1_SIZE_SCRIPT = `
local out = {}
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind == 'hash' then
    local n = 0
    for j = 1, #ARGV do n = n + redis.call('HSTRLEN', KEYS[i], ARGV[j]) end
    out[i] = n
  elseif kind == 'none' then out[i] = -1
  else out[i] = -2 end
end
return out
`;

/**
 * A sized batch read of layout-v2 rows in one round trip (`readBatch` of up to
 * READ_SCRIPT_MAX_KEYS rows that might weigh more than its bound). KEYS: the rows' keys (distinct);
 * ARGV[1]: the bytes the values read may total (the first row always read, however large);
 * ARGV[2]: the bytes all the rows may hold (-1: no bound). Sizes every row first (STRLEN; a key of
 * another type counts 0, as MGET answers it nil); over ARGV[2] it reads nothing and answers
 * `{total}`. Otherwise it reads the leading rows within ARGV[1] (one MGET) and answers
 * `{total, read, lengths of the rows not read, values read}`: the reader reads the rest in further
 * MGETs planned from those lengths. A call costs Redis ~4–11 µs a key on this VM under load (each
 * STRLEN is a call from Lua: ~20 times an MGET's cost per key), so longer batches are sized with a
 * pipeline instead; at most 1,000 keys (`unpack` of more can overflow Lua's stack).
 */
export const FEATURE_READ_SCRIPT = `
local n = #KEYS
local budget = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local lengths = {}
local total = 0
for i = 1, n do
  local len = redis.pcall('STRLEN', KEYS[i])
  if type(len) ~= 'number' then len = 0 end
  lengths[i] = len
  total = total + len
end
if limit >= 0 and total > limit then return {total} end
local read = 1
local bytes = lengths[1]
while read < n and bytes + lengths[read + 1] <= budget do
  read = read + 1
  bytes = bytes + lengths[read]
end
local rest = {}
for i = read + 1, n do rest[#rest + 1] = lengths[i] end
return {total, read, rest, redis.call('MGET', unpack(KEYS, 1, read))}
`;
