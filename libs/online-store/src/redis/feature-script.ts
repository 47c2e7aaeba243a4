import { ROW_COPY, ROW_EVENT_ID, ROW_TIME } from '../rows.js';

/**
 * The one write script of the online store: event-time last-write-wins of rows and the exact
 * sliding-window aggregates of their entities, atomically per entity. One call carries many
 * entities of one view (the view's field names travel once per call, each entity its values and a
 * presence mask), which divides Redis' per-call cost and the client's per-command cost. ioredis
 * sends it with EVALSHA (EVAL once per connection, again after a NOSCRIPT).
 *
 * KEYS     per entity: row, its layout-v1 hash [, window sorted set, its layout-v1 set] (keys.ts)
 * ARGV     ttl_ms, nf, field × nf, nagg [, horizon_ms, max_events, nslots, (name, fn, window_ms, slot) × nagg],
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
 * Returns { rows applied, entities whose served aggregates changed, rows repaired, rows expired }
 * (expired: winners already past the TTL, deleted on arrival, counted neither as applied nor as
 * aggregated).
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
-- id, copy, packed values of a window member (a member written before copies has copy '').
local function member_parts(member)
  local a = string.find(member, '\\0', 1, true)
  local b = string.find(member, '\\0', a + 1, true)
  if b then return string.sub(member, 1, a - 1), string.sub(member, a + 1, b - 1), string.sub(member, b + 1) end
  return string.sub(member, 1, a - 1), '', string.sub(member, a + 1)
end

local ttl = tonumber(ARGV[1])
local nf = tonumber(ARGV[2])
local fields = {}
for i = 1, nf do fields[i] = ARGV[2 + i] end
local q = 3 + nf
local nagg = tonumber(ARGV[q])
q = q + 1
local horizon, maxev, nslots, aggs = 0, 0, 0, {}
if nagg > 0 then
  horizon = tonumber(ARGV[q])
  maxev = tonumber(ARGV[q + 1])
  nslots = tonumber(ARGV[q + 2])
  q = q + 3
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

for e = 1, n do
  local k = (e - 1) * stride
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
    -- Ids already in the window, with the time and copy kept: an event id counts once, as its
    -- greatest copy (ZADD NX alone compared id and values, so a resend with other values in a
    -- later batch counted twice; keeping the first copy made the sum depend on the delivery order
    -- and disagree with the row). Event ids and copies hold no NUL.
    -- id -> its member (the copy kept); its time and copy are read only when a copy of the id
    -- arrives again (rare), so the common write builds no table per member.
    local present = {}
    if nev > 0 then
      for _, member in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
        present[string.sub(member, 1, string.find(member, '\\0', 1, true) - 1)] = member
      end
    end
    for i = 1, nev do
      local et, eid, ecopy = tonumber(ARGV[q]), ARGV[q + 1], ARGV[q + 2]
      local old = present[eid]
      local greater = old == nil
      if not greater and et > floor then
        local keptT = tonumber(redis.call('ZSCORE', zkey, old))
        local _, keptCopy = member_parts(old)
        greater = et > keptT or (et == keptT and gt(ecopy, keptCopy))
      end
      if et > floor and greater then
        if old ~= nil then redis.call('ZREM', zkey, old) end
        local member = eid .. '\\0' .. ecopy .. '\\0' .. ARGV[q + 3]
        redis.call('ZADD', zkey, ARGV[q], member)
        present[eid] = member
        added = added + 1
      end
      q = q + 4
    end
    local moved = oldT == nil or anchor > oldT
    if added > 0 or moved then
      if moved then redis.call('ZREMRANGEBYSCORE', zkey, '-inf', fmt(floor)) end
      if added > 0 then redis.call('ZREMRANGEBYRANK', zkey, 0, -(maxev + 1)) end
      local all = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
      local times, vals, m = {}, {}, 0
      for i = 1, #all, 2 do
        m = m + 1
        times[m] = tonumber(all[i + 1])
        local _, _, packed = member_parts(all[i])
        if nslots == 1 then
          -- A member written when the view aggregated more features holds more values: the first is
          -- this one's (a feature changing its slot is reported as a rebuild). tonumber of the whole
          -- was nil: every kept member read as missing after an aggregate was removed (a review).
          vals[m] = { tonumber(packed) or tonumber(string.match(packed, '^([^,]*)')) }
        else
          local slots, k = {}, 0
          for v in string.gmatch(packed .. ',', '([^,]*),') do
            k = k + 1
            slots[k] = tonumber(v) or false
          end
          vals[m] = slots
        end
      end
      local out, dels = {}, {}
      for _, a in ipairs(aggs) do
        local name, fn, lo, slot = a[1], a[2], anchor - a[3], a[4]
        local cnt, sum, mn, mx = 0, 0, nil, nil
        for i = 1, m do
          if times[i] > lo then
            local v = vals[i][slot]
            if v then
              cnt = cnt + 1
              sum = sum + v
              if mn == nil or v < mn then mn = v end
              if mx == nil or v > mx then mx = v end
            end
          end
        end
        if fn == 'count' then
          out[#out + 1] = name
          out[#out + 1] = tostring(cnt)
        elseif fn == 'sum' then
          out[#out + 1] = name
          out[#out + 1] = fmt(sum)
        elseif cnt == 0 then
          dels[#dels + 1] = name
        else
          out[#out + 1] = name
          if fn == 'mean' then out[#out + 1] = fmt(sum / cnt)
          elseif fn == 'min' then out[#out + 1] = fmt(mn)
          else out[#out + 1] = fmt(mx) end
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
return { applied, aggregated, repaired, expired }
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
