-- The purge script of the release before the selector's one argument
-- (tiers.Selector.Wire): the selector as two of eleven positional
-- arguments, ARGV[1] its wire kind and ARGV[3] its value. Kept to test
-- that instances of that release and this one, sharing a Redis during a
-- rolling upgrade, record and publish bans of one form. Run with
-- epochLua prepended.
if tonumber(ARGV[9]) > 0 and ms > tonumber(ARGV[9]) then return {'late'} end
local epoch = ensure_epoch(KEYS[5], KEYS[1], KEYS[2], KEYS[4], ARGV[11], ARGV[8], '', 0, ms, ARGV[7])
local seq = string.format('%d', redis.call('INCR', KEYS[1]))
local ban = encode_ban(seq, ARGV[1], ms, ARGV[2] .. '@' .. epoch, ARGV[3])
local keep, maxBans, maxBytes, overhead = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if ARGV[1] == ban_all then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. seq)
  redis.call('SET', KEYS[4], 0)
end
redis.call('ZADD', KEYS[2], seq, ban)
local bytes = redis.call('INCRBY', KEYS[4], #ARGV[3] + overhead)
for i = 1, 16 do
  local first = redis.call('ZRANGE', KEYS[2], 0, 0)
  if first[1] == ban then break end
  local at, cost = ban_at_cost(first[1], overhead)
  if at >= ms - keep then break end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, 0)
  bytes = redis.call('DECRBY', KEYS[4], cost)
end
local n = redis.call('ZCARD', KEYS[2])
local floor = nil
for i = 1, 256 do
  if n <= 1 or (n <= maxBans and bytes <= maxBytes) then break end
  local first = redis.call('ZPOPMIN', KEYS[2])
  local _, cost = ban_at_cost(first[1], overhead)
  bytes = redis.call('DECRBY', KEYS[4], cost)
  floor = first[2]
  n = n - 1
end
if floor and tonumber(floor) > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], floor)
end
if n == 1 then redis.call('SET', KEYS[4], #ARGV[3] + overhead) end
redis.call('PUBLISH', ARGV[11], ban)
local out = {ban, ms}
for _, v in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], ms - tonumber(ARGV[10]), '+inf', 'WITHSCORES')) do
  out[#out + 1] = v
end
return out
