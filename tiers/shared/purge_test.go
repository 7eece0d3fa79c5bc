package shared

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// everySelector is a selector of every kind, hard and soft, with values
// that hold the wire form's separator where a kind allows one.
func everySelector() []tiers.Selector {
	values := map[tiers.BanKind]string{tiers.BanURL: "/a?b=1|c", tiers.BanPrefix: "/p|q/", tiers.BanTag: "player:42", tiers.BanAll: ""}
	var out []tiers.Selector
	for _, kind := range tiers.BanKinds {
		for _, soft := range []bool{false, true} {
			out = append(out, tiers.Selector{Kind: kind, Value: values[kind], Soft: soft})
		}
	}
	return out
}

// TestPurgeScriptSelectorRoundTrip: a selector of every kind, soft or
// hard, goes through the purge script's one selector argument
// (tiers.Selector.Wire, split by decode_selector) and comes back as
// itself in the ban the script returns, stores and publishes; and the
// script tells a hard purge of everything, which drops the bans before
// it, from a soft one, which does not.
func TestPurgeScriptSelectorRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	ctx := context.Background()
	log := watchChannels(t, srv)
	for _, sel := range everySelector() {
		if err := sel.Validate(); err != nil {
			t.Fatalf("%v: %v", sel, err)
		}
		rec, ran, err := a.fleet.record(ctx, sel, requestID(randomID(), "a"))
		if err != nil || !ran {
			t.Fatalf("%v: recorded %v, %v", sel, ran, err)
		}
		if rec.ban.Selector != sel {
			t.Errorf("%v: the script returned a ban of %+v", sel, rec.ban.Selector)
		}
		stored, err := srv.Client().ZRangeByScore(ctx, a.tier.bansKey(), &redis.ZRangeBy{Min: "-inf", Max: "+inf"}).Result()
		if err != nil || len(stored) == 0 {
			t.Fatalf("the log: %v, %v", stored, err)
		}
		last, err := tiers.ParseBan(stored[len(stored)-1])
		if err != nil || last.Seq != rec.ban.Seq || last.Selector != sel {
			t.Errorf("%v: the log's newest ban %q (%v)", sel, stored[len(stored)-1], err)
		}
		if sel.Kind == tiers.BanAll && !sel.Soft && len(stored) != 1 {
			t.Errorf("a hard all-ban left %d bans in the log, want itself alone", len(stored))
		}
		if sel.Kind == tiers.BanAll && sel.Soft && len(stored) < 2 {
			t.Errorf("a soft all-ban dropped the bans before it: %q", stored)
		}
		var published string
		await.Until(t, 10*time.Second, "the ban published", func() bool {
			for _, m := range log.take()["cacheproxy:purge"] {
				if b, err := tiers.ParseBan(m); err == nil && b.Seq == rec.ban.Seq {
					published = m
				}
			}
			return published != ""
		})
		if b, _ := tiers.ParseBan(published); b.Selector != sel {
			t.Errorf("%v: published %q", sel, published)
		}
	}
	// A malformed selector is refused, not recorded.
	before, _ := srv.Client().Get(ctx, a.tier.seqKey()).Result()
	call := purgeCall{request: "x", keep: time.Hour, maxBans: 10, maxBytes: 1 << 20, epoch: randomID(),
		window: time.Minute, channel: a.tier.purgeChannel()}
	args := call.args()
	args[0] = "url/x" // no separator
	keys := []string{a.tier.seqKey(), a.tier.bansKey(), a.tier.floorKey(), a.tier.bytesKey(), a.tier.epochKey(), a.fleet.membersKey()}
	if err := purgeScript.Run(ctx, srv.Client(), keys, args...).Err(); err == nil || !strings.Contains(err.Error(), "malformed selector") {
		t.Errorf("a selector without its separator: %v, want refused", err)
	}
	if after, _ := srv.Client().Get(ctx, a.tier.seqKey()).Result(); after != before {
		t.Errorf("a malformed selector moved the sequence from %s to %s", before, after)
	}
}

// previousPurgeScript is the purge script of the release before the
// selector's one argument (testdata/purge-11args.lua), which instances
// of that release run against the Redis this one shares with them.
func previousPurgeScript(t *testing.T) *redis.Script {
	t.Helper()
	body, err := os.ReadFile("testdata/purge-11args.lua")
	if err != nil {
		t.Fatal(err)
	}
	return redis.NewScript(epochLua + string(body))
}

// previousPurge records a ban of sel with the previous release's script
// and arguments, and returns it as stored.
func previousPurge(t *testing.T, client redis.UniversalClient, tier *Tier, sel tiers.Selector, request string) string {
	t.Helper()
	keys := []string{tier.seqKey(), tier.bansKey(), tier.floorKey(), tier.bytesKey(), tier.epochKey(), tier.metaKey("members")}
	raw, err := previousPurgeScript(t).Run(context.Background(), client, keys, sel.WireKind(), request, sel.Value,
		tier.retention().Milliseconds(), 1000, 1<<20, tiers.BanOverhead, randomID(),
		0, time.Minute.Milliseconds(), tier.purgeChannel()).Slice()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := raw[0].(string)
	return s
}

// TestPurgeScriptRecordsAsBefore: during a rolling upgrade instances of
// the previous release share the Redis; what this release's script
// stores and publishes for a selector is what the previous one's does,
// field for field but the sequence number and the time, so that each
// reads the other's bans.
func TestPurgeScriptRecordsAsBefore(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	ctx := context.Background()
	for _, sel := range everySelector() {
		old := previousPurge(t, srv.Client(), a.tier, sel, "req/a")
		rec, _, err := a.fleet.record(ctx, sel, "req/a")
		if err != nil {
			t.Fatal(err)
		}
		now := rec.ban.String()
		of, nf := strings.SplitN(old, "|", 5), strings.SplitN(now, "|", 5)
		if len(of) != 5 || of[1] != nf[1] || of[3] != nf[3] || of[4] != nf[4] {
			t.Errorf("%v: the previous release recorded %q, this one %q", sel, old, now)
		}
		if b, err := tiers.ParseBan(old); err != nil || b.Selector != sel {
			t.Errorf("%v: the previous release's ban %q reads as %+v, %v", sel, old, b.Selector, err)
		}
	}
	// And this instance applies what the previous release records.
	seq := a.bans.Applied()
	previousPurge(t, srv.Client(), a.tier, tiers.Selector{Kind: tiers.BanURL, Value: "/old"}, "req/b")
	await.Until(t, 10*time.Second, "the previous release's ban applied", func() bool {
		return a.bans.Dead(&tiers.Entry{URL: "/old", Seq: seq})
	})
}
