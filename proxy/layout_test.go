package proxy

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestFilesFormADAG keeps the promise of architecture.md: the package's
// files call each other without a cycle, so that a reader of the request
// path goes down from ServeHTTP and never back up into a file above. It
// type-checks the package alone (imported packages are left unresolved:
// only calls to functions and methods declared here matter) and fails on
// any cycle of file-to-file calls, naming the calls that make it.
func TestFilesFormADAG(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: emptyImporter{}, Error: func(error) {}}
	pkg, _ := conf.Check("proxy", fset, files, info) // errors: the unresolved imports

	// calls[a][b] lists the functions of file b that file a calls.
	calls := map[string]map[string][]string{}
	for _, f := range files {
		from := fset.Position(f.Pos()).Filename
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var id *ast.Ident
			switch fn := ast.Unparen(call.Fun).(type) {
			case *ast.Ident:
				id = fn
			case *ast.SelectorExpr:
				id = fn.Sel
			case *ast.IndexExpr: // an instantiated generic function
				if x, ok := fn.X.(*ast.Ident); ok {
					id = x
				}
			}
			fn, ok := info.Uses[id].(*types.Func)
			if id == nil || !ok || fn.Pkg() != pkg {
				return true
			}
			to := fset.Position(fn.Pos()).Filename
			if to != from {
				if calls[from] == nil {
					calls[from] = map[string][]string{}
				}
				if !slices.Contains(calls[from][to], fn.Name()) {
					calls[from][to] = append(calls[from][to], fn.Name())
				}
			}
			return true
		})
	}
	if len(calls) < 10 {
		t.Fatalf("found calls between %d files only: the walk is broken", len(calls))
	}
	checkTableOrder(t, calls)
	if cycle := findCycle(calls); cycle != nil {
		var steps []string
		for i := 0; i+1 < len(cycle); i++ {
			steps = append(steps, cycle[i]+" calls "+cycle[i+1]+" ("+strings.Join(calls[cycle[i]][cycle[i+1]], ", ")+")")
		}
		t.Errorf("the files call each other in a cycle; move the shared helper to the lower file (architecture.md):\n\t%s",
			strings.Join(steps, "\n\t"))
	}
}

// findCycle returns a cycle of the graph as its nodes, the first repeated
// last, or nil if there is none.
func findCycle(g map[string]map[string][]string) []string {
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = open
		stack = append(stack, n)
		var next []string
		for m := range g[n] {
			next = append(next, m)
		}
		sort.Strings(next)
		for _, m := range next {
			switch state[m] {
			case open:
				i := slices.Index(stack, m)
				return append(slices.Clone(stack[i:]), m)
			case unseen:
				if c := visit(m); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	var nodes []string
	for n := range g {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		if state[n] == unseen {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// emptyImporter stands in every imported package by an empty one: the
// test needs only the package's own declarations.
type emptyImporter struct{}

func (emptyImporter) Import(p string) (*types.Package, error) {
	pkg := types.NewPackage(p, path.Base(p))
	pkg.MarkComplete()
	return pkg, nil
}

func TestFindCycle(t *testing.T) {
	g := map[string]map[string][]string{"a.go": {"b.go": {"f"}}, "b.go": {"c.go": {"g"}}}
	if c := findCycle(g); c != nil {
		t.Fatalf("a DAG: cycle %v", c)
	}
	g["c.go"] = map[string][]string{"a.go": {"h"}}
	if c := findCycle(g); len(c) != 4 || c[0] != c[3] {
		t.Fatalf("a -> b -> c -> a: %v", c)
	}
}

// checkTableOrder keeps the other half of the promise: architecture.md
// lists every file of the package in a table ordered so that a file calls
// only files below it (or in its own row).
func checkTableOrder(t *testing.T, calls map[string]map[string][]string) {
	t.Helper()
	f, err := os.Open("../architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := map[string]int{}
	in, n := false, 0
	name := regexp.MustCompile("`([a-z0-9_]+\\.go)`")
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## Files of `proxy`"):
			in = true
		case in && strings.HasPrefix(line, "## "):
			in = false
		case in && strings.HasPrefix(line, "| `"):
			n++
			cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
			for _, m := range name.FindAllStringSubmatch(cell, -1) {
				row[m[1]] = n
			}
		}
	}
	if n == 0 {
		t.Fatal("architecture.md: no table of proxy's files found")
	}
	names, _ := filepath.Glob("*.go")
	for _, file := range names {
		if !strings.HasSuffix(file, "_test.go") && row[file] == 0 {
			t.Errorf("architecture.md's table of proxy's files does not list %s", file)
		}
	}
	for from, tos := range calls {
		for to, fns := range tos {
			if row[from] != 0 && row[to] != 0 && row[to] < row[from] {
				t.Errorf("architecture.md lists %s above %s, which calls it (%s): order the table by calls",
					to, from, strings.Join(fns, ", "))
			}
		}
	}
}

// TestOnlyTheChainTouchesTheTiers keeps architecture.md's "the chain is
// the only door to the tiers": outside options.go (which declares them)
// and proxy.go (which hands them to the chain), no file of the package
// reads Options.Local or Options.Shared.
func TestOnlyTheChainTouchesTheTiers(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") || name == "options.go" || name == "proxy.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Local" && sel.Sel.Name != "Shared" {
				return true
			}
			if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "o" {
				t.Errorf("%s: reads o.%s: go through the chain (chain.go)", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}
