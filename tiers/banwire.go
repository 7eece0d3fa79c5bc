package tiers

// The wire forms of a purge. A ban, the one encoding of a purge that
// Redis stores and publishes, is "seq|kind|unixmilli|id|value". The
// fleet's scripts write it in Redis, where the sequence number and the
// time are assigned, and every instance reads it back with ParseBan. A
// selector, what an instance asks the script to record, is the ban's
// kind and value fields alone: "kind|value" (Selector.Wire). BanLua is
// the Lua side of both, kept here beside the Go side so that the two are
// one definition (tiers/shared's TestBanLuaMatchesGo runs both against
// each other). A field added to Selector is encoded in the kind field
// (as Soft is, "soft-url": see WireKind), so that neither form, nor the
// scripts that take a selector, change shape.

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
	sel, err := wireSelector(parts[1], parts[4])
	if err != nil {
		return Ban{}, err
	}
	ms, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return Ban{}, fmt.Errorf("tiers: malformed ban time %q", parts[2])
	}
	return Ban{Seq: seq, Selector: sel, At: time.UnixMilli(ms), ID: parts[3]}, nil
}

// Wire is s in its wire form, "kind|value": its ban's kind field
// (WireKind) and value. It is the one argument by which the fleet's purge
// script receives a selector (decode_selector in BanLua splits it);
// ParseSelectorWire reads it back.
func (s Selector) Wire() string { return s.WireKind() + "|" + s.Value }

// ParseSelectorWire parses the wire form written by Selector.Wire. It
// does not validate the selector (Selector.Validate).
func ParseSelectorWire(w string) (Selector, error) {
	kind, value, ok := strings.Cut(w, "|")
	if !ok {
		return Selector{}, fmt.Errorf("tiers: malformed selector %q", w)
	}
	return wireSelector(kind, value)
}

// wireSelector is the selector of the kind and value fields of a ban or
// selector wire form: the one reading of both.
func wireSelector(kind, value string) (Selector, error) {
	k, soft, ok := parseWireKind(kind)
	if !ok {
		return Selector{}, fmt.Errorf("tiers: unknown ban kind %q", kind)
	}
	return Selector{Kind: k, Value: value, Soft: soft}, nil
}

// BanLua is the wire forms in Lua, for the fleet's Redis scripts to
// prepend:
//
//   - ban_all is BanAll's name, the wire kind of a hard purge of
//     everything (a soft one's is "soft-all");
//   - decode_selector(s) splits a selector's wire form (Selector.Wire)
//     into its wire kind and value, or returns nil if it holds no '|';
//   - encode_ban(seq, kind, ms, id, value) writes a ban as Ban.String
//     does (seq and ms numbers or numeric strings, exact up to 2^53, which
//     millisecond clocks and sequence numbers stay far below);
//   - ban_at_cost(ban, overhead) reads a ban's time in ms and its cost as
//     BanCost counts it (its value's length plus overhead, BanOverhead);
//     a malformed ban is as old as can be and costs its whole length.
var BanLua = `
local ban_all = '` + All.WireKind() + `'
local function decode_selector(s)
  local p = string.find(s, '|', 1, true)
  if not p then return nil end
  return string.sub(s, 1, p - 1), string.sub(s, p + 1)
end
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
