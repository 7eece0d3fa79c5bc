package shared

import (
	"strings"
	"testing"
)

func TestParseDeployment(t *testing.T) {
	tests := []struct {
		url     string
		mode    Mode
		want    Mode
		addrs   int
		wantErr string
	}{
		{url: "redis://127.0.0.1:6000/0", want: ModeStandalone, addrs: 1},
		{url: "rediss://u:p@h:6000/2", want: ModeStandalone, addrs: 1},
		{url: "redis://:pw@s1:26379?master_name=mymaster&addr=s2:26379&addr=s3:26379", want: ModeSentinel, addrs: 3},
		{url: "redis://n1:7000?addr=n2:7000&addr=n3:7000", want: ModeCluster, addrs: 3},
		{url: "redis://n1:7000", mode: ModeCluster, want: ModeCluster, addrs: 1},
		{url: "redis://s1:26379?master_name=m", mode: ModeSentinel, want: ModeSentinel, addrs: 1},
		{url: "redis://h:1?master_name=m", mode: ModeStandalone, wantErr: "master_name"},
		{url: "redis://h:1?addr=h:2", mode: ModeStandalone, wantErr: "addr="},
		{url: "redis://h:1", mode: ModeSentinel, wantErr: "master_name"},
		{url: "redis://h:1?master_name=m", mode: ModeCluster, wantErr: "master_name"},
		{url: "redis://n1:7000/3?addr=n2:7000", wantErr: "database 0"},
		{url: "redis://u:secret@h:1?colour=blue", wantErr: "unexpected option"},
		{url: "redis://u:secret@h:1?master_name=m&colour=blue", wantErr: "unexpected option"},
	}
	for _, tt := range tests {
		d, err := ParseDeployment(tt.url, tt.mode)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDeployment(%q, %q) = %v, want an error with %q", tt.url, tt.mode, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
			continue
		}
		if err != nil || d.Mode != tt.want || len(d.Addrs) != tt.addrs {
			t.Errorf("ParseDeployment(%q, %q) = %+v, %v; want mode %s with %d addresses", tt.url, tt.mode, d, err, tt.want, tt.addrs)
		}
	}
}
