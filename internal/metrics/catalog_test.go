package metrics_test

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/guestflow/guestflow/internal/metrics"
	// The worker exports its Stats through metrics.CounterFunc: linked in,
	// its counters join Defs.
	_ "github.com/guestflow/guestflow/internal/worker"
)

// Paths relative to this package's folder, where go test runs.
const (
	docsPath      = "../../docs/operations.md"
	alertsPath    = "../../deploy/prometheus/guestflow-alerts.yaml"
	dashboardPath = "../../deploy/grafana/guestflow-dashboard.json"
)

// defs returns metrics.Defs by name.
func defs(t *testing.T) map[string]metrics.Def {
	t.Helper()
	out := map[string]metrics.Def{}
	for _, d := range metrics.Defs() {
		if _, dup := out[d.Name]; dup {
			t.Errorf("metric %s defined twice", d.Name)
		}
		out[d.Name] = d
	}
	if len(out) == 0 {
		t.Fatal("no metric defined")
	}
	return out
}

// TestEveryDefIsRegistered: what Defs lists is what the default registry
// serves, under the same type and labels, and nothing guestflow_… is served
// that Defs does not list.
func TestEveryDefIsRegistered(t *testing.T) {
	// A vector is served only once it has a child.
	metrics.StepResults.WithLabelValues("test", metrics.ResultDone)
	metrics.StepDuration.WithLabelValues("test")
	metrics.DeadLetters.WithLabelValues("test", "test")
	metrics.RemoteRequests.WithLabelValues("test", "test", "200")
	metrics.RemoteDuration.WithLabelValues("test", "test")
	metrics.ThrottleWait.WithLabelValues("test")
	metrics.ConsumerPending.WithLabelValues("test")
	defer metrics.ConsumerPending.DeleteLabelValues("test")

	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[dto.MetricType]string{dto.MetricType_COUNTER: "counter", dto.MetricType_GAUGE: "gauge", dto.MetricType_HISTOGRAM: "histogram"}
	want := defs(t)
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "guestflow_") {
			continue
		}
		d, ok := want[f.GetName()]
		if !ok {
			t.Errorf("%s is registered but not in metrics.Defs", f.GetName())
			continue
		}
		delete(want, f.GetName())
		if types[f.GetType()] != d.Type {
			t.Errorf("%s: registered as %v, defined as %s", d.Name, f.GetType(), d.Type)
		}
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		if !sameSet(labels, d.Labels) {
			t.Errorf("%s: labels %v, defined as %v", d.Name, labels, d.Labels)
		}
	}
	for name := range want {
		t.Errorf("%s is in metrics.Defs but not served (a vector this test does not touch?)", name)
	}
	// Prometheus' naming conventions: _total on counters, base units.
	var names []string
	for _, d := range metrics.Defs() {
		names = append(names, d.Name)
	}
	problems, err := testutil.GatherAndLint(prometheus.DefaultGatherer, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// docRow is a row of the metrics table: "| `name` | type | `l1`, `l2` | meaning |".
var docRow = regexp.MustCompile("^\\|\\s*`(guestflow_[a-z0-9_]+)`\\s*\\|\\s*([a-z]*)\\s*\\|([^|]*)\\|")

// TestDocsListEveryMetric: docs/operations.md has one row per metric, with
// its type and labels.
func TestDocsListEveryMetric(t *testing.T) {
	f, err := os.Open(docsPath)
	if err != nil {
		t.Fatalf("the metrics are documented in %s: %v", docsPath, err)
	}
	defer f.Close()
	want := defs(t)
	seen := map[string]bool{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Metrics"
			continue
		}
		m := docRow.FindStringSubmatch(line)
		if !in || m == nil {
			continue
		}
		name, typ := m[1], m[2]
		labels := regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(m[3], -1)
		var got []string
		for _, l := range labels {
			got = append(got, l[1])
		}
		if seen[name] {
			t.Errorf("%s: %s is listed twice", docsPath, name)
		}
		seen[name] = true
		d, ok := want[name]
		if !ok {
			t.Errorf("%s lists %s, which the code does not define", docsPath, name)
			continue
		}
		if typ != d.Type || !sameSet(got, d.Labels) {
			t.Errorf("%s: %s is a %s with labels %v, documented as a %q with %v", docsPath, name, d.Type, d.Labels, typ, got)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s is not in the metrics table of %s", name, docsPath)
		}
	}
}

// metricName finds the guestflow metrics a PromQL expression uses.
var metricName = regexp.MustCompile(`\bguestflow_[a-zA-Z0-9_]+`)

// used returns the defined metrics expr uses, and the names it uses that
// are not defined: a histogram's _bucket, _sum and _count series are its
// own, no other metric has them.
func used(defined map[string]metrics.Def, expr string) (found, unknown []string) {
	for _, n := range metricName.FindAllString(expr, -1) {
		if _, ok := defined[n]; ok && defined[n].Type != "histogram" {
			found = append(found, n)
			continue
		}
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok {
				base = b
				break
			}
		}
		if d, ok := defined[base]; ok && d.Type == "histogram" && base != n {
			found = append(found, base)
			continue
		}
		unknown = append(unknown, n)
	}
	return found, unknown
}

// ruleFile is a Prometheus rule file, as far as these tests read it.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true) // a misspelt key is an error, as in Prometheus
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", alertsPath, err)
	}
	if len(rf.Groups) == 0 {
		t.Fatalf("%s has no groups", alertsPath)
	}
	return rf
}

// dashboardExprs returns every "expr" of the dashboard's panels and
// variables, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	out := map[string][]string{}
	var walk func(title string, v any)
	walk = func(title string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok {
				title = s
			}
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") && strings.Contains(s, "guestflow_") {
					out[title] = append(out[title], s)
					continue
				}
				walk(title, x)
			}
		case []any:
			for _, x := range v {
				walk(title, x)
			}
		}
	}
	walk("", d)
	if len(out) == 0 {
		t.Fatalf("%s has no expressions", dashboardPath)
	}
	return out
}

// TestDeployFilesUseDefinedMetrics: the alert rules and the dashboard ask
// only for metrics the code defines, and the dashboard shows every one.
func TestDeployFilesUseDefinedMetrics(t *testing.T) {
	defined := defs(t)
	charted := map[string]bool{}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			_, unknown := used(defined, r.Expr)
			for _, n := range unknown {
				t.Errorf("%s: rule %s uses %s, which the code does not define", alertsPath, r.Alert, n)
			}
		}
	}
	for title, exprs := range dashboardExprs(t) {
		for _, e := range exprs {
			found, unknown := used(defined, e)
			for _, n := range unknown {
				t.Errorf("%s: panel %q uses %s, which the code does not define", dashboardPath, title, n)
			}
			for _, n := range found {
				charted[n] = true
			}
		}
	}
	for name := range defined {
		if !charted[name] {
			t.Errorf("%s is on no panel of %s", name, dashboardPath)
		}
	}
}

// rangeSelector is a PromQL range or offset duration, e.g. [15m] or
// offset 1h.
var rangeSelector = regexp.MustCompile(`\[([^\]]*)\]|offset\s+([0-9a-z]+)`)

// TestAlertRulesAreWellFormed checks what Prometheus would refuse or what
// would make an alert useless: without the PromQL parser (its module is
// large), expressions are checked for balanced brackets and valid
// durations.
func TestAlertRulesAreWellFormed(t *testing.T) {
	names := map[string]bool{}
	for _, g := range readRules(t).Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a group needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if !regexp.MustCompile(`^Guestflow[A-Z][A-Za-z]+$`).MatchString(r.Alert) || r.Record != "" {
				t.Errorf("rule %q: an alerting rule named Guestflow…", r.Alert)
			}
			if names[r.Alert] {
				t.Errorf("rule %s is defined twice", r.Alert)
			}
			names[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("rule %s has no expression", r.Alert)
			}
			if !balanced(r.Expr) {
				t.Errorf("rule %s: unbalanced brackets or quotes in %q", r.Alert, r.Expr)
			}
			for _, m := range rangeSelector.FindAllStringSubmatch(r.Expr, -1) {
				if _, err := time.ParseDuration(m[1] + m[2]); err != nil {
					t.Errorf("rule %s: duration %q: %v", r.Alert, m[1]+m[2], err)
				}
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("rule %s: severity %q, want critical, warning or info", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %s needs a summary and a description", r.Alert)
			}
		}
	}
}

// balanced reports whether expr's brackets pair up outside its string
// literals, and its string literals end.
func balanced(expr string) bool {
	var stack []rune
	var quote rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, c := range expr {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			stack = append(stack, c)
		case pairs[c] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return quote == 0 && len(stack) == 0
}
