package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "cacheproxy unknown commit unknown unknown"},
		{"no vcs", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"cacheproxy (devel) commit unknown go1.26.8"},
		{"clean", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
			Settings: settings("vcs", "git", "vcs.revision", "5cc035f0123456789abcdef0123456789abcdef0", "vcs.time", "2026-11-25T22:55:29Z", "vcs.modified", "false")},
			"cacheproxy v1.2.3 commit 5cc035f 2026-11-25T22:55:29Z go1.26.8"},
		{"modified", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", "5cc035f0123456789abcdef0123456789abcdef0", "vcs.modified", "true")},
			"cacheproxy (devel) commit 5cc035f (modified) go1.26.8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionLine(tt.info); got != tt.want {
				t.Errorf("versionLine = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestVersionCommand runs "version" and "-version" through the program:
// exit 0 and one line on stdout. The test binary carries no VCS
// information, so the commit is "unknown"; a binary built by go build from
// this checkout names its commit.
func TestVersionCommand(t *testing.T) {
	want := regexp.MustCompile(`^cacheproxy \S+ commit unknown go\S+\n$`)
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		cmd := command(t, args)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("cacheproxy %s: %v\nstderr: %s", args[0], err, stderr.String())
		}
		if !want.MatchString(stdout.String()) {
			t.Errorf("cacheproxy %s printed %q, want a line matching %s", args[0], stdout.String(), want)
		}
	}
	cmd := command(t, []string{"version", "extra"})
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("cacheproxy version extra: %v, want exit status 2", err)
	}

	// go build stamps the commit of a plain checkout, but not of a linked
	// git worktree, whose .git is a file Go does not recognise
	// (golang/go#58218): there the commit is unknown too.
	bin := buildCacheproxy(t)
	gitDirs, err := exec.Command("git", "rev-parse", "--absolute-git-dir", "--git-common-dir", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v (the test needs git and a checkout)", err)
	}
	f := strings.Fields(string(gitDirs))
	if len(f) != 3 {
		t.Fatalf("git rev-parse printed %q", gitDirs)
	}
	commit := f[2][:7]
	if common, _ := filepath.Abs(f[1]); common != f[0] {
		t.Logf("linked worktree (%s): go build records no VCS information", f[0])
		commit = "unknown"
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	if !regexp.MustCompile(`^cacheproxy \S+ commit ` + commit + `( \(modified\))?( \S+)? go\S+\n$`).Match(out) {
		t.Errorf("built binary: version printed %q, want commit %s", out, commit)
	}
	t.Logf("built binary: %s", strings.TrimSpace(string(out)))
}

// buildCacheproxy builds this command with go build -buildvcs=true (so
// with VCS information where Go finds it, whatever GOFLAGS says) into a
// temporary directory and returns the binary's path.
func buildCacheproxy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cacheproxy")
	cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
