package tiers

import "testing"

func TestSplitKey(t *testing.T) {
	for _, tt := range []struct {
		key, base, suffix string
		variant           bool
	}{
		{"c:1:G:/a?b=1", "c:1:G:/a?b=1", "", false},
		{"c:1:G:/a#Accept-Encoding:gzip\n", "c:1:G:/a", "Accept-Encoding:gzip\n", true},
		{"c:1:G:/a#", "c:1:G:/a", "", true},
		{"c:1:G:/a#X:1#2\n", "c:1:G:/a", "X:1#2\n", true},
	} {
		base, suffix, variant := SplitKey(tt.key)
		if base != tt.base || suffix != tt.suffix || variant != tt.variant {
			t.Errorf("SplitKey(%q) = %q, %q, %v; want %q, %q, %v", tt.key, base, suffix, variant, tt.base, tt.suffix, tt.variant)
		}
	}
}
