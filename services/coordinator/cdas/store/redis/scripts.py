"""The Lua scripts of the Redis store, registered once per client (EVALSHA).

Every script touches only the keys it is given, all of one run (one hash tag, so one Redis Cluster
slot). Binary arguments are packed little-endian: indexes as int64 (``<i8``), floats as float64
(``<d``). Numbers handed to Redis commands as scores are formatted with ``%.17g``, which round-trips
every double exactly (Lua's own number-to-string keeps only 14 digits).
"""

from __future__ import annotations

LOAD = r"""
-- Everything an operation on one run reads first, in one round trip.
-- KEYS: 1 meta, 2 steps (zset), 3 stats (hash), 4 the step's record (hash), 5 core (string)
-- ARGV: 1 step ('' for none), 2 steps retained, 3 prompt indexes to read core records of
--       (<i8 blob), 4 core record width
-- Returns {meta fields and values, record fields and values, the step's stats or false,
--          retained steps that the step would evict, core records blob, the eviction cutoff
--          (those steps are the ones below it; '' without a step)}
local meta = redis.call('HGETALL', KEYS[1])
if #meta == 0 then return {meta} end
local record, stats, evict, cutoff = {}, false, {}, ''
if ARGV[1] ~= '' then
  record = redis.call('HGETALL', KEYS[4])
  stats = redis.call('HGET', KEYS[3], ARGV[1])
  local step = tonumber(ARGV[1])
  local latest = tonumber(redis.call('HGET', KEYS[1], 'max_step'))
  if step > latest then latest = step end
  cutoff = string.format('%.0f', latest - tonumber(ARGV[2]) + 1)
  evict = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff)
end
local parts, w, blob = {}, tonumber(ARGV[4]), ARGV[3]
-- an index past the records (a digit-only id that is not a row index, say "5156409136276128")
-- reads as zeros: the caller keeps only the records of registered prompts, and GETRANGE would
-- refuse offsets past 2^53, where Lua's doubles stop printing as integers
local size = #blob > 0 and redis.call('STRLEN', KEYS[5]) or 0
for j = 0, #blob / 8 - 1 do
  local i = struct.unpack('<i8', blob, j * 8 + 1)
  if i >= 0 and i * w < size then
    parts[#parts + 1] = redis.call('GETRANGE', KEYS[5], i * w, i * w + w - 1)
  else
    parts[#parts + 1] = string.rep('\0', w)
  end
end
return {meta, record, stats, evict, table.concat(parts), cutoff}
"""

SIDES = r"""
-- The ordered index's entries on each side of c, with their scores, skipping excluded prompts
-- (the prompts an operation rewrote, whose entries it knows itself): what the ordered index's
-- ``nearest`` merges with an operation's own writes (an ``advance`` selects after applying).
-- KEYS: 1 the index; ARGV: 1 c (exact decimal), 2 entries wanted <= c, 3 wanted > c,
--       4 excluded prompt indexes (<i8 blob)
-- Returns {members <= c (largest first), their scores, members > c (smallest first), scores}
local c, xb = ARGV[1], ARGV[4]
local excluded, nex = {}, #xb / 8
for j = 0, nex - 1 do excluded[struct.unpack('<i8', xb, j * 8 + 1)] = true end
local function side(down, need)
  local got, scores = {}, {}
  if need <= 0 then return got, scores end
  local offset, page = 0, need + math.min(nex, need)
  while #got < need do
    local rows
    if down then
      rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], c, '-inf', 'WITHSCORES',
        'LIMIT', offset, page)
    else
      rows = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. c, '+inf', 'WITHSCORES',
        'LIMIT', offset, page)
    end
    for k = 1, #rows, 2 do
      local m = rows[k]
      if nex == 0 or not excluded[struct.unpack('>I4', m, 8)] then
        got[#got + 1] = m
        scores[#scores + 1] = rows[k + 1]
        if #got == need then break end
      end
    end
    offset = offset + #rows / 2
    if #rows / 2 < page then break end
  end
  return got, scores
end
local lo, lo_scores = side(true, tonumber(ARGV[2]))
local hi, hi_scores = side(false, tonumber(ARGV[3]))
return {table.concat(lo), table.concat(lo_scores, ' '),
  table.concat(hi), table.concat(hi_scores, ' ')}
"""

GATHER = r"""
-- Read slots of several fixed-width arrays (binary strings) in one round trip.
-- KEYS: the arrays; ARGV[2k-1]: slot width of array k, ARGV[2k]: its slot indexes (<i8 blob)
-- Returns one blob per array: the slots in order, zero bytes past the end of the string.
local out = {}
for k = 1, #KEYS do
  local w, blob = tonumber(ARGV[2 * k - 1]), ARGV[2 * k]
  local parts = {}
  for j = 0, #blob / 8 - 1 do
    local i = struct.unpack('<i8', blob, j * 8 + 1)
    local s = redis.call('GETRANGE', KEYS[k], i * w, i * w + w - 1)
    if #s < w then s = s .. string.rep('\0', w - #s) end
    parts[#parts + 1] = s
  end
  out[k] = table.concat(parts)
end
return out
"""

NEAREST = r"""
-- CDAS's selection on the ordered index: the `below` entries with score <= c, largest first, and
-- the `above` entries with score > c, smallest first, skipping excluded prompts; a side that runs
-- short is made up from the other. Equal scores are ordered by member, whose first 7 bytes are
-- the big-endian tie key, so the order is (D, tie key), as in the memory store.
-- KEYS: 1 the index (zset; member = 7-byte key + 4-byte big-endian prompt index)
-- ARGV: 1 c (exact decimal), 2 below, 3 above, 4 excluded prompt indexes (<i8 blob)
-- Returns the members chosen, concatenated (below side first, nearest first)
local c, below, above, xb = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local excluded, nex = {}, #xb / 8
for j = 0, nex - 1 do excluded[struct.unpack('<i8', xb, j * 8 + 1)] = true end
local function side(down, need)
  local got = {}
  if need <= 0 then return got end
  local offset, page = 0, need + nex
  while #got < need do
    local members
    if down then
      members = redis.call('ZREVRANGEBYSCORE', KEYS[1], c, '-inf', 'LIMIT', offset, page)
    else
      members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. c, '+inf', 'LIMIT', offset, page)
    end
    for _, m in ipairs(members) do
      if nex == 0 or not excluded[struct.unpack('>I4', m, 8)] then
        got[#got + 1] = m
        if #got == need then break end
      end
    end
    offset = offset + #members
    if #members < page then break end
  end
  return got
end
local lo = side(true, below)
local hi = side(false, above + below - #lo)
if #lo == below and #lo + #hi < below + above then lo = side(true, below + above - #hi) end
for _, m in ipairs(hi) do lo[#lo + 1] = m end
return table.concat(lo)
"""

DESCEND = r"""
-- Sum-tree descent for weighted sampling: the leaf each target mass u reaches, going right when
-- u >= the left child's sum (then u -= that sum). Pending, uncommitted node values of the calling
-- operation are applied on top of the stored tree.
-- KEYS: 1 the tree (string of <d nodes, node i at byte 8i)
-- ARGV: 1 levels, 2 capacity, 3 targets u (<d blob), 4 pending nodes (<i8), 5 their values (<d)
-- Returns the leaves (<i8 blob)
local levels, cap, ub, nb, vb = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local pending = {}
for j = 0, #nb / 8 - 1 do
  pending[struct.unpack('<i8', nb, j * 8 + 1)] = struct.unpack('<d', vb, j * 8 + 1)
end
local function node(i)
  local v = pending[i]
  if v ~= nil then return v end
  local s = redis.call('GETRANGE', KEYS[1], i * 8, i * 8 + 7)
  if #s < 8 then return 0.0 end
  return (struct.unpack('<d', s))
end
local out = {}
for j = 0, #ub / 8 - 1 do
  local u, n = struct.unpack('<d', ub, j * 8 + 1), 1
  for _ = 1, levels do
    local left = node(2 * n)
    if u >= left then
      u = u - left
      n = 2 * n + 1
    else
      n = 2 * n
    end
  end
  out[#out + 1] = struct.pack('<i8', n - cap)
end
return table.concat(out)
"""

COMMIT = r"""
-- Apply an operation's writes atomically if the run is still at the version it was read at.
-- KEYS: 1 meta, then every key the writes touch
-- ARGV: 1 expected version ('' = the run must not exist yet), then the writes, each as
--       name, key position in KEYS, argument count, arguments...
-- Returns the run's new version, 0 after a delete, or -1 (nothing written) on a version conflict.
local version = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '' then
  if version then return -1 end
elseif version ~= ARGV[1] then
  return -1
end
local function chunked(cmd, key, items)
  for s = 1, #items, 400 do
    redis.call(cmd, key, unpack(items, s, math.min(s + 399, #items)))
  end
end
local i = 2
while i <= #ARGV do
  local op, k, n = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  local a = i + 3
  if op == 'hset' then
    for j = a, a + n - 1, 2 do redis.call('HSET', k, ARGV[j], ARGV[j + 1]) end
  elseif op == 'hdel' then
    for j = a, a + n - 1 do redis.call('HDEL', k, ARGV[j]) end
  elseif op == 'set' then
    redis.call('SET', k, ARGV[a])
  elseif op == 'del' then
    redis.call('DEL', k)
  elseif op == 'setrange' then
    redis.call('SETRANGE', k, tonumber(ARGV[a]), ARGV[a + 1])
  elseif op == 'scatter' then
    local w, ib, vb = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
    for j = 0, #ib / 8 - 1 do
      local idx = struct.unpack('<i8', ib, j * 8 + 1)
      redis.call('SETRANGE', k, idx * w, string.sub(vb, j * w + 1, j * w + w))
    end
  elseif op == 'zadd' then
    local sb, mb, w = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
    local items = {}
    for j = 0, #sb / 8 - 1 do
      items[#items + 1] = string.format('%.17g', (struct.unpack('<d', sb, j * 8 + 1)))
      items[#items + 1] = string.sub(mb, j * w + 1, j * w + w)
    end
    chunked('ZADD', k, items)
  elseif op == 'zrem' then
    -- members blob, width, and the first and last of them in the set's order: when they span
    -- exactly as many entries as there are members (a batch taken around the competence), one
    -- ZREMRANGEBYRANK removes them all; otherwise each is removed by name.
    local mb, w, first, last = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
    local count = #mb / w
    local r1, r2 = redis.call('ZRANK', k, first), redis.call('ZRANK', k, last)
    if r1 and r2 and r2 - r1 + 1 == count then
      redis.call('ZREMRANGEBYRANK', k, r1, r2)
    else
      local items = {}
      for j = 0, count - 1 do items[#items + 1] = string.sub(mb, j * w + 1, j * w + w) end
      chunked('ZREM', k, items)
    end
  elseif op == 'zaddone' then
    redis.call('ZADD', k, ARGV[a], ARGV[a + 1])
  elseif op == 'zremone' then
    redis.call('ZREM', k, ARGV[a])
  else
    return redis.error_reply('unknown write ' .. op)
  end
  i = a + n
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], 'version', 1)
"""
