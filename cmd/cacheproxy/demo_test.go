package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/syncbuf"
)

// TestDemoKeep runs scripts/demo.sh (make demo) with KEEP=1: after the
// quickstart it leaves the proxy running, and the dashboard URL it prints
// answers, until the script gets SIGINT (Ctrl-C); then it stops everything
// it started and exits 0.
func TestDemoKeep(t *testing.T) {
	dir := t.TempDir()
	for _, pkg := range []string{".", "../demo-origin"} {
		if out, err := exec.Command("go", "build", "-o", dir+"/", pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "scripts", "demo.sh"))
	cmd.Env = append(os.Environ(), "KEEP=1", "DEMO_BIN="+dir)
	// Its own process group, as a terminal's Ctrl-C would signal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 10 * time.Second
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group this test started
			<-exited
		}
		if t.Failed() {
			t.Logf("demo.sh:\n%s", out.String())
		}
	}()

	dashboard := regexp.MustCompile(`dashboard: (http://\S+/ui/)`)
	await.Until(t, 90*time.Second, "demo.sh printing the dashboard URL under KEEP=1", func() bool {
		return dashboard.MatchString(out.String())
	})
	select {
	case <-exited:
		t.Fatalf("demo.sh exited (%v) instead of keeping the proxy running", waitErr)
	default:
	}
	url := dashboard.FindStringSubmatch(out.String())[1]
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("the dashboard %s does not answer while demo.sh keeps running: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET %s: %d, want 200", url, resp.StatusCode)
	}

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("demo.sh after Ctrl-C: %v, want exit 0", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo.sh did not stop within 30s of Ctrl-C")
	}
	if !strings.Contains(out.String(), "stopping everything") {
		t.Error("demo.sh did not say it stopped everything")
	}
	if _, err := http.Get(url); err == nil {
		t.Errorf("the dashboard %s still answers after demo.sh stopped", url)
	}
}
