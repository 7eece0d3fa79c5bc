package main

// cacheproxy version and cacheproxy -version: what was built, from the
// build information the Go toolchain embeds in every binary.

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// runVersion prints the version line to stdout and returns the exit
// status. It takes no arguments.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "cacheproxy: version takes no arguments, got %q\n", args[0])
		return 2
	}
	info, _ := debug.ReadBuildInfo() // nil when the binary has none
	fmt.Fprintln(stdout, versionLine(info))
	return 0
}

// versionLine describes a build in one line:
//
//	cacheproxy (devel) commit 5cc035f (modified) 2026-11-25T22:55:29Z go1.26.8
//
// It names the module version, the VCS commit (abbreviated to 7 digits;
// "unknown" when the binary carries no VCS information, as with go test
// or go build -buildvcs=false), "(modified)" when the work tree had
// uncommitted changes, the commit's time, and the Go version. The Go
// toolchain records no build time, so the time is the commit's. info may be
// nil.
func versionLine(info *debug.BuildInfo) string {
	version, goVersion := "unknown", "unknown"
	var revision, modified, when string
	if info != nil {
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value
			case "vcs.time":
				when = s.Value
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cacheproxy %s commit ", version)
	if revision == "" {
		b.WriteString("unknown")
	} else {
		b.WriteString(revision[:min(len(revision), 7)])
		if modified == "true" {
			b.WriteString(" (modified)")
		}
		if when != "" {
			b.WriteString(" " + when)
		}
	}
	b.WriteString(" " + goVersion)
	return b.String()
}
