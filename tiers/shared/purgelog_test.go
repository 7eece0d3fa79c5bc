package shared

import (
	"testing"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// TestBanSteps runs every decision the purge log makes about a published
// ban (tablePos.step), from a table in sync at epoch "e" with bans applied
// up to 10, and from a table never synced or renewing; and whether a
// table confirms a ban (tablePos.confirms), which receive asks once the
// step is taken.
func TestBanSteps(t *testing.T) {
	inSync := tablePos{epoch: "e", known: true, applied: 10, synced: true}
	never := tablePos{}
	renewing := inSync
	renewing.renewing = true
	ban := func(seq uint64, id string) tiers.Ban {
		return tiers.Ban{Seq: seq, Selector: tiers.All, ID: id}
	}
	for _, tc := range []struct {
		name       string
		pos        tablePos
		ban        tiers.Ban
		appliedID  string // the ID applied at ban.Seq, if remembered
		remembered bool
		want       banStep
	}{
		{"never synced: the resync loads it", never, ban(11, "r@e"), "", false, stepWait},
		{"renewing: adopt first", renewing, ban(11, "r@e"), "", false, stepAdopt},
		{"the next in sequence", inSync, ban(11, "r@e"), "", false, stepApply},
		{"applied already, by a catch-up", inSync, ban(9, "r@e"), "r@e", true, stepApplied},
		{"the last applied, again", inSync, ban(10, "r@e"), "r@e", true, stepApplied},
		{"numbered like one applied, another ID", inSync, ban(9, "s@e"), "r@e", true, stepReplace},
		{"numbered like one applied, not remembered", inSync, ban(9, "r@e"), "", false, stepCheck},
		{"another epoch", inSync, ban(11, "r@f"), "", false, stepCheck},
		{"another epoch, numbered like one applied", inSync, ban(9, "r@f"), "r@e", true, stepCheck},
		{"a gap", inSync, ban(12, "r@e"), "", false, stepResync},
		{"an epoch's opening ban, next", inSync, ban(11, "epoch-x@e"), "", false, stepApply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.pos.step(tc.ban, tc.appliedID, tc.remembered); got != tc.want {
				t.Errorf("step = %v, want %v", got, tc.want)
			}
		})
	}

	// Applied, in its epoch: confirmed only by a table complete and not
	// renewing.
	b := ban(10, "r@e")
	for _, tc := range []struct {
		name string
		pos  tablePos
		want bool
	}{
		{"in sync", inSync, true},
		{"in sync, applied since", tablePos{epoch: "e", known: true, applied: 12, synced: true}, true},
		{"out of sync (resubscribing)", tablePos{epoch: "e", known: true, applied: 10}, false},
		{"renewing", renewing, false},
		{"below it", tablePos{epoch: "e", known: true, applied: 9, synced: true}, false},
		{"another epoch", tablePos{epoch: "f", known: true, applied: 10, synced: true}, false},
	} {
		if got := tc.pos.confirms(b); got != tc.want {
			t.Errorf("%s: confirms %v, want %v", tc.name, got, tc.want)
		}
	}
}
