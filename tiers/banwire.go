package tiers

// The wire form of a ban, the one encoding of a purge that Redis stores
// and publishes: "seq|kind|unixmilli|id|value". The fleet's scripts write
// it in Redis, where the sequence number and the time are assigned, and
// every instance reads it back with ParseBan; BanLua is the Lua side,
// kept here beside the Go side so that the two are one definition
// (tiers/shared's TestBanLuaMatchesGo runs both against each other).

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// String encodes b in its wire form. ParseBan reads it back.
func (b *Ban) String() string {
	return strconv.FormatUint(b.Seq, 10) + "|" + b.WireKind() + "|" +
		strconv.FormatInt(b.At.UnixMilli(), 10) + "|" + b.ID + "|" + b.Value
}

// ParseBan parses the wire form written by Ban.String and BanLua.
func ParseBan(s string) (Ban, error) {
	parts := strings.SplitN(s, "|", 5)
	if len(parts) != 5 {
		return Ban{}, fmt.Errorf("tiers: malformed ban %q", s)
	}
	seq, err := strconv.ParseUint(parts[0], 10, 64)
	if err != nil {
		return Ban{}, fmt.Errorf("tiers: malformed ban seq %q", parts[0])
	}
	kind, soft, ok := parseWireKind(parts[1])
	if !ok {
		return Ban{}, fmt.Errorf("tiers: unknown ban kind %q", parts[1])
	}
	ms, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return Ban{}, fmt.Errorf("tiers: malformed ban time %q", parts[2])
	}
	return Ban{Seq: seq, Selector: Selector{Kind: kind, Value: parts[4], Soft: soft}, At: time.UnixMilli(ms), ID: parts[3]}, nil
}

// BanLua is the wire form in Lua, for the fleet's Redis scripts to
// prepend:
//
//   - ban_all is BanAll's name;
//   - encode_ban(seq, kind, ms, id, value) writes a ban as Ban.String
//     does (seq and ms numbers or numeric strings, exact up to 2^53, which
//     millisecond clocks and sequence numbers stay far below);
//   - ban_at_cost(ban, overhead) reads a ban's time in ms and its cost as
//     BanCost counts it (its value's length plus overhead, BanOverhead);
//     a malformed ban is as old as can be and costs its whole length.
var BanLua = `
local ban_all = '` + BanAll.String() + `'
local function encode_ban(seq, kind, ms, id, value)
  return string.format('%d|%s|%d|%s|%s', seq, kind, ms, id, value)
end
local function ban_at_cost(m, overhead)
  local p, f = 0, {}
  for i = 1, 4 do
    p = string.find(m, '|', p + 1, true)
    if not p then return 0, #m + overhead end
    f[i] = p
  end
  return tonumber(string.sub(m, f[2] + 1, f[3] - 1)) or 0, #m - f[4] + overhead
end
`
