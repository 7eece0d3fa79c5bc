package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readmeRoot is the repository, seen from this package's directory.
const readmeRoot = "../.."

// pendingDocs are link targets written on another branch of the same
// issue, allowed to be missing until it is merged. Remove an entry once
// its file is in the tree: from then on a missing one fails the test.
var pendingDocs = map[string]string{}

// TestReadme checks that the README and the docs lead somewhere: every
// relative link in README.md, docs/*.md and bench/results/*.md names a
// file that exists and, with a #fragment, a heading of that file; every
// `make TARGET` they show is a target of the Makefile; every setting of
// the settings table (and every route key) is described in
// docs/configuration.md; and the README's table of common settings names
// only real settings.
func TestReadme(t *testing.T) {
	files := []string{"README.md", "architecture.md", "configs/deploy/README.md"}
	for _, pattern := range []string{"docs/*.md", "bench/results/*.md"} {
		m, err := filepath.Glob(filepath.Join(readmeRoot, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			rel, _ := filepath.Rel(readmeRoot, f)
			files = append(files, rel)
		}
	}
	for _, want := range []string{"docs/configuration.md", "docs/security.md", "docs/consistency.md", "docs/deployments.md", "docs/performance.md", "docs/http-caching.md"} {
		if !hasString(files, want) {
			t.Errorf("%s is missing", want)
		}
	}

	makefile := readFile(t, filepath.Join(readmeRoot, "Makefile"))

	for _, f := range files {
		text := readFile(t, filepath.Join(readmeRoot, f))
		for _, l := range mdLinks(text) {
			checkLink(t, f, l)
		}
		for _, target := range makeTargets(text) {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).MatchString(makefile) {
				t.Errorf("%s shows `make %s`, which is no target of the Makefile", f, target)
			}
		}
	}

	readme := readFile(t, filepath.Join(readmeRoot, "README.md"))
	if n := strings.Count(readme, "\n"); n > 360 {
		t.Errorf("README.md has %d lines: a front door is a few hundred; put depth in docs/", n)
	}
	for _, cmd := range []string{"make demo", "make test"} {
		if !strings.Contains(readme, "```sh\n"+cmd) && !strings.Contains(readme, "\n"+cmd) {
			t.Errorf("the README's quickstart does not show %q", cmd)
		}
	}

	conf := readFile(t, filepath.Join(readmeRoot, "docs", "configuration.md"))
	known := map[string]bool{"config": true}
	for _, s := range settings {
		known[s.name] = true
		if !strings.Contains(conf, "`-"+s.name+"`") && !strings.Contains(conf, "`-"+s.name+"`,") {
			t.Errorf("docs/configuration.md does not describe the setting -%s", s.name)
		}
	}
	for _, k := range []string{"path", "ttl", "bypass", "override", "cookies", "client-no-cache"} {
		if !strings.Contains(conf, "| `"+k+"` |") {
			t.Errorf("docs/configuration.md's route table does not describe the route key %s", k)
		}
	}
	table := regexp.MustCompile("(?m)^\\| `-([a-z0-9-]+)` \\|")
	for _, m := range table.FindAllStringSubmatch(readme, -1) {
		if !known[m[1]] {
			t.Errorf("the README's settings table names -%s, which is no setting", m[1])
		}
	}
}

// makeTargets returns the targets of the make commands text shows: lines
// of its code blocks that start with make, and inline `make TARGET`.
func makeTargets(text string) []string {
	var out []string
	inFence := false
	inline := regexp.MustCompile("`make ([a-z][a-z0-9-]*)")
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			inFence = !inFence
		case inFence:
			if f := strings.Fields(trimmed); len(f) > 1 && f[0] == "make" && !strings.Contains(f[1], "=") {
				out = append(out, f[1])
			}
		default:
			for _, m := range inline.FindAllStringSubmatch(line, -1) {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// mdLinks returns the targets of the markdown links and images in text,
// outside fenced code blocks.
func mdLinks(text string) []string {
	var out []string
	inFence := false
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		for _, m := range link.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// checkLink checks that target, a link in the file from (relative to the
// repository), leads to an existing file and heading.
func checkLink(t *testing.T, from, target string) {
	t.Helper()
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return
	}
	path, frag, _ := strings.Cut(target, "#")
	file := from
	if path != "" {
		file = filepath.Clean(filepath.Join(filepath.Dir(from), path))
	}
	if strings.HasPrefix(file, "..") {
		t.Errorf("%s links to %s, outside the repository", from, target)
		return
	}
	if _, err := os.Stat(filepath.Join(readmeRoot, file)); err != nil {
		if why, ok := pendingDocs[filepath.ToSlash(file)]; ok {
			t.Logf("%s links to %s, not yet in this tree (%s)", from, target, why)
			return
		}
		t.Errorf("%s links to %s: %v", from, target, err)
		return
	}
	if frag == "" {
		return
	}
	if !strings.HasSuffix(file, ".md") {
		t.Errorf("%s links to %s: a fragment of a file that is not markdown", from, target)
		return
	}
	if !hasString(mdAnchors(readFile(t, filepath.Join(readmeRoot, file))), frag) {
		t.Errorf("%s links to %s: %s has no heading #%s", from, target, file, frag)
	}
}

// mdAnchors returns the fragment GitHub gives each heading of a markdown
// text: lower case, punctuation dropped, spaces as hyphens, repeated
// headings numbered.
func mdAnchors(text string) []string {
	var out []string
	seen := map[string]int{}
	inFence := false
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		if n := seen[a]; n > 0 {
			out = append(out, a+"-"+strconv.Itoa(n))
		} else {
			out = append(out, a)
		}
		seen[a]++
	}
	return out
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
