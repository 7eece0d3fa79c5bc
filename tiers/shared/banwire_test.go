package shared

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// banWireScript writes a ban with the fleet scripts' encoder and reads it
// back with their decoder, and splits a selector's wire form (ARGV[7]):
// {encode_ban(ARGV...), at, cost, ban_all, kind, value}.
var banWireScript = redis.NewScript(tiers.BanLua + `
local ban = encode_ban(ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5])
local at, cost = ban_at_cost(ban, tonumber(ARGV[6]))
local kind, value = decode_selector(ARGV[7])
return {ban, at, cost, ban_all, kind, value}
`)

// TestBanLuaMatchesGo: the Lua side of the ban's wire form (tiers.BanLua,
// what Redis records and publishes) writes what tiers.Ban.String writes,
// tiers.ParseBan reads every field back, and the Lua decoder finds the
// time and cost Go counts (tiers.BanCost), for values with the
// separators and escapes a URL, prefix or tag can hold; and the Lua
// decoder of a selector's wire form (tiers.Selector.Wire) finds the
// kind and value fields Go writes in the ban.
func TestBanLuaMatchesGo(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client()
	values := []string{"", "/", "/a?b=1&c=2", "/x|y|z", "/p%7C@q", "caf\u00e9:42", "/" + strings.Repeat("%", 300),
		"/" + strings.Repeat("a|", tiers.MaxBanValue/2-1)}
	i := 0
	for _, kind := range tiers.BanKinds {
		for j, v := range values {
			i++
			sel := tiers.Selector{Kind: kind, Value: v, Soft: j%2 == 1}
			want := tiers.Ban{Seq: 1_764_633_600_000 + uint64(i), Selector: sel,
				At: time.UnixMilli(1_764_633_600_123 + int64(i)), ID: "req" + strings.Repeat("f", i%7) + "@epoch"}
			res, err := banWireScript.Run(t.Context(), client, nil, want.Seq, sel.WireKind(),
				want.At.UnixMilli(), want.ID, v, tiers.BanOverhead, sel.Wire()).Slice()
			if err != nil {
				t.Fatal(err)
			}
			s, _ := res[0].(string)
			if s != want.String() {
				t.Errorf("Lua wrote %.80q, Go writes %.80q", s, want.String())
			}
			got, err := tiers.ParseBan(s)
			if err != nil || got.Seq != want.Seq || got.Selector != want.Selector || !got.At.Equal(want.At) || got.ID != want.ID {
				t.Errorf("ParseBan(%.80q) = %+v, %v; want %+v", s, got, err, want)
			}
			if at, _ := res[1].(int64); at != want.At.UnixMilli() {
				t.Errorf("Lua read time %d, want %d", at, want.At.UnixMilli())
			}
			if cost, _ := res[2].(int64); cost != int64(tiers.BanCost(v)) {
				t.Errorf("Lua counted %d bytes, tiers.BanCost says %d", cost, tiers.BanCost(v))
			}
			if all, _ := res[3].(string); all != tiers.All.WireKind() {
				t.Errorf("Lua's ban_all = %q", all)
			}
			if kind, _ := res[4].(string); kind != sel.WireKind() {
				t.Errorf("Lua read the kind of %.80q as %q, want %q", sel.Wire(), kind, sel.WireKind())
			}
			if value, _ := res[5].(string); value != v {
				t.Errorf("Lua read the value of %.80q as %.80q", sel.Wire(), value)
			}
		}
	}
}
