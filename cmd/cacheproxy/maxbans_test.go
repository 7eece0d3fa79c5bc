package main

import (
	"strings"
	"testing"

	"github.com/cacheproxy/cacheproxy/tiers"
)

func TestMaxBansSetting(t *testing.T) {
	c, err := loadConfig([]string{"-origin", "http://o"}, env(nil))
	if n, _ := (&tiers.Bans{MaxBans: c.MaxBans}).Limits(); err != nil || n != tiers.DefaultMaxBans {
		t.Errorf("default: %d, %v; want %d", n, err, tiers.DefaultMaxBans)
	}
	c, err = loadConfig([]string{"-origin", "http://o"}, env(map[string]string{"CACHEPROXY_MAX_BANS": "5000"}))
	if err != nil || c.MaxBans != 5000 {
		t.Errorf("env: %d, %v; want 5000", c.MaxBans, err)
	}
	for _, bad := range []string{"0", "-1", "many"} {
		if _, err := loadConfig([]string{"-origin", "http://o", "-max-bans", bad}, env(nil)); err == nil || !strings.Contains(err.Error(), "-max-bans") {
			t.Errorf("-max-bans %s: %v, want an error naming it", bad, err)
		}
	}
}
