package failure

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docsPath is the operator's reference for reason codes, relative to this
// package's folder (go test runs in it).
const docsPath = "../../docs/dead-letters.md"

// reasonCode is the shape of a Guestflow-Reason value: snake_case ASCII.
var reasonCode = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// sourceReasons parses failure.go and returns every untyped string constant whose
// value looks like a reason code, by constant name. Go cannot list
// constants at run time, so this is what notices a constant that was added
// to the source but not to Reasons.
func sourceReasons(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "failure.go", nil, 0)
	if err != nil {
		t.Fatalf("parse failure.go: %v", err)
	}
	out := map[string]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if vs.Type != nil {
				continue // typed constants (Kind) are not reason codes
			}
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil || !reasonCode.MatchString(v) {
					continue
				}
				out[name.Name] = v
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("found no reason-code constants in failure.go; has the file moved?")
	}
	return out
}

// docRow is one row of the reason-code table: "| `code` | meaning | action |".
var docRow = regexp.MustCompile("^\\|\\s*`([^`]+)`\\s*\\|(.*)\\|\\s*$")

// documentedReasons reads the rows of the "Reason codes" section of
// docs/dead-letters.md, by code, with their other cells.
func documentedReasons(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(docsPath)
	if err != nil {
		t.Fatalf("the reason codes are documented in %s: %v", docsPath, err)
	}
	defer f.Close()
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.EqualFold(strings.TrimSpace(strings.TrimPrefix(line, "## ")), "Reason codes")
			continue
		}
		if !in {
			continue
		}
		m := docRow.FindStringSubmatch(line)
		if m == nil || !reasonCode.MatchString(m[1]) {
			continue
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("%s:%d: `%s` has a second row", docsPath, n, m[1])
		}
		var cells []string
		for _, c := range strings.Split(m[2], "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		out[m[1]] = cells
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no reason-code table under a \"## Reason codes\" heading", docsPath)
	}
	return out
}

// TestReasonsListsEveryConstant fails when a reason constant is added to
// failure.go without being added to Reasons, or the other way round.
func TestReasonsListsEveryConstant(t *testing.T) {
	consts := sourceReasons(t)
	values := map[string]string{} // value → constant
	for name, v := range consts {
		values[v] = name
	}
	seen := map[string]bool{}
	for _, r := range Reasons {
		if seen[r] {
			t.Errorf("Reasons lists %q twice", r)
		}
		seen[r] = true
		if _, ok := values[r]; !ok {
			t.Errorf("Reasons lists %q, which is no string constant of failure.go", r)
		}
	}
	for v, name := range values {
		if !seen[v] {
			t.Errorf("constant %s = %q is missing from Reasons in failure.go", name, v)
		}
	}
}

// TestReasonsAreDocumented fails when a reason code is added on one side
// only: in internal/failure without a row in docs/dead-letters.md, or in
// the table without a constant behind it.
func TestReasonsAreDocumented(t *testing.T) {
	documented := documentedReasons(t)
	codes := map[string]bool{}
	for _, v := range sourceReasons(t) {
		codes[v] = true
	}
	for _, r := range Reasons {
		codes[r] = true
	}
	for _, c := range slices.Sorted(maps.Keys(codes)) {
		cells, ok := documented[c]
		if !ok {
			t.Errorf("reason %q has no row in the table of %s; add | `%s` | what it means | what to do |", c, docsPath, c)
			continue
		}
		if len(cells) < 2 || cells[0] == "" || cells[1] == "" {
			t.Errorf("%s: the row of `%s` needs what it means and what the operator should do", docsPath, c)
		}
	}
	for _, c := range slices.Sorted(maps.Keys(documented)) {
		if !codes[c] {
			t.Errorf("%s documents `%s`, which is no reason code of internal/failure", docsPath, c)
		}
	}
}
