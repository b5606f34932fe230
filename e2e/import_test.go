package e2e

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// TestImportOnboardsAPortalFile runs the real `guestflow import` binary on a
// 200-row file in the portal's format, as Excel saves it (byte order mark,
// CRLF, padded version line, the template's examples row, quoted multi-line
// messages), against the running system. Every good row must reach
// onboarded; every bad row must be reported with its line and never sent.
func TestImportOnboardsAPortalFile(t *testing.T) {
	bin := buildGuestflow(t)
	// Some rows land their invitations on the company's own site, which
	// the instances allow.
	s := start(t, graphsim.Options{SyncDelay: 200 * time.Millisecond}, func(su *setup) {
		su.configure = func(c *config.Config, _ *graphsim.Sim) {
			for name, in := range c.Instances {
				in.AllowedRedirectHosts = append([]string{"contoso.example"}, config.MyAppsHosts...)
				c.Instances[name] = in
			}
		}
	})

	dir := t.TempDir()
	cfgYAML, err := s.cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "guestflow.yaml")
	csvPath := filepath.Join(dir, "guests.csv")
	f := portalFile(200)
	for name, data := range map[string][]byte{cfgPath: cfgYAML, csvPath: f.data} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(bin, "import", csvPath, "--config", cfgPath)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("import: %v, want exit status 3 (some rows rejected):\n%s", err, stderr.String())
	}
	summary := fmt.Sprintf("%d published, 1 duplicate, %d rejected; results in %s.results.csv", len(f.good), len(f.bad)-1, csvPath)
	if !strings.Contains(stderr.String(), summary) {
		t.Errorf("stderr lacks %q:\n%s", summary, stderr.String())
	}

	// Every bad row: on stderr at its line, in the results, not published.
	results := readResultFile(t, csvPath+".results.csv")
	if len(results) != len(f.good)+len(f.bad) {
		t.Errorf("%d result rows for %d data rows", len(results), len(f.good)+len(f.bad))
	}
	for line, b := range f.bad {
		want := fmt.Sprintf("%s:%d: %s: %s", csvPath, line, b.status, b.field)
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("%s: stderr lacks %q:\n%s", b.what, want, stderr.String())
		}
		if r := results[line]; r.status != b.status || r.id != "" {
			t.Errorf("%s: result %+v, want %s without an id", b.what, r, b.status)
		}
	}

	// Every good row: published under the id in the results, onboarded
	// into the instance its row named.
	ids := make([]string, 0, len(f.good))
	for line, g := range f.good {
		r := results[line]
		if r.status != "published" || r.id == "" || !strings.EqualFold(r.email, g.email) {
			t.Fatalf("line %d (%s): result %+v", line, g.email, r)
		}
		ids = append(ids, r.id)
	}
	done := s.await(ids...)
	for line, g := range f.good {
		ev := done[results[line].id]
		var out events.Onboarded
		if err := ev.DataAs(&out); err != nil {
			t.Fatal(err)
		}
		if ev.Subject() != strings.ToLower(g.email) || out.Instance != g.instance || out.SkuPartNumber != s.cfg.Instances[g.instance].License {
			t.Errorf("line %d: onboarded %s into %s with %s, want %s into %s", line, ev.Subject(), out.Instance, out.SkuPartNumber, g.email, g.instance)
		}
		if (out.NotifiedAt != "") != g.sends {
			t.Errorf("line %d: notifiedAt %q, want a mail: %v", line, out.NotifiedAt, g.sends)
		}
	}

	if n := s.count(worker.Stream, events.SubjectJoined); n != uint64(len(f.good)) {
		t.Errorf("%d joined events in the stream, want %d (the good rows only)", n, len(f.good))
	}
	var users []simUser
	s.inspect("/_sim/users", &users)
	invited := map[string]int{}
	for _, u := range users {
		invited[strings.ToLower(u.Mail)]++
	}
	for line, b := range f.bad {
		if want := b.invitedAs; invited[strings.ToLower(b.email)] != want {
			t.Errorf("line %d (%s): %d directory users for %s, want %d", line, b.what, invited[strings.ToLower(b.email)], b.email, want)
		}
	}
	if dl := s.deadLetters(); len(dl) != 0 {
		t.Errorf("dead letters: %v", dl)
	}
}

// buildGuestflow builds the command under test with the flags of this test
// binary (a -race run builds a race binary), so the build reuses the cache.
func buildGuestflow(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build guestflow: %v", err)
	}
	args := []string{"build", "-o", filepath.Join(t.TempDir(), "guestflow")}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "-race" && s.Value == "true":
				args = append(args, "-race")
			case s.Key == "-tags" && s.Value != "":
				args = append(args, "-tags", s.Value)
			}
		}
	}
	args = append(args, "github.com/guestflow/guestflow/cmd/guestflow")
	out, err := exec.Command(gobin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return args[2]
}

// goodRow is a row that must be onboarded; badRow one that must not be sent.
type (
	goodRow struct {
		email, instance string
		sends           bool // the onboarding mail is sent
	}
	badRow struct {
		what, email string
		status      string // rejected or duplicate
		field       string // how its stderr report continues
		invitedAs   int    // directory users with its address afterwards
	}
	generated struct {
		data []byte
		good map[int]goodRow // by line
		bad  map[int]badRow
	}
)

// portalFile generates n data rows across the seeded instances, with one
// bad row of each kind spread among them, and records the line each row
// starts on.
func portalFile(n int) generated {
	instances := []string{"sales", "service", "legacy"}
	countries := []string{"PT", "IE", "JP", "DE", "GB", "US", "BR", "IN"}
	bad := map[int]badRow{
		17:  {what: "bad email", email: "guest017(at)partner.example", status: "rejected", field: "email:"},
		52:  {what: "UK usage location", email: "guest052@partner.example", status: "rejected", field: `usageLocation: "UK"`},
		88:  {what: "missing surname", email: "guest088@partner.example", status: "rejected", field: "surname: the [surname] cell is empty"},
		121: {what: "unknown instance", email: "guest121@partner.example", status: "rejected", field: `instance: "crm" is not a configured instance`},
		150: {what: "duplicate address", email: "GUEST003@Partner.example", status: "duplicate", field: "same address as line", invitedAs: 1},
		177: {what: "bad sendEmail", email: "guest177@partner.example", status: "rejected", field: `sendEmail: "maybe"`},
	}
	var b strings.Builder
	line := 1
	write := func(s string) {
		b.WriteString(s + "\r\n")
		line += 1 + strings.Count(s, "\n")
	}
	b.WriteString("\ufeff")
	write("version:v1.0,,,,,,,,,")
	write("Email address to invite [inviteeEmail] Required,Redirection url [inviteRedirectURL] Required," +
		"Send invitation message (true or false) [sendEmail],Customized invitation message [customizedMessageBody]," +
		"First name [givenName],Last name [surname],Usage location [usageLocation],Instance [instance],Roles [roles],License [license]")
	write("Example: lstokes@fabrikam.com,https://myapplications.microsoft.com,TRUE,Welcome to the Contoso organization!,,,,,,")
	g := generated{good: map[int]goodRow{}, bad: map[int]badRow{}}
	for i := range n {
		email := fmt.Sprintf("guest%03d@partner.example", i)
		inst := instances[i%len(instances)]
		c := []string{email, "", "", "", "Guest", fmt.Sprintf("Number %d", i), countries[i%len(countries)], inst, "", ""}
		switch {
		case i%10 == 1:
			c[3] = fmt.Sprintf("\"Welcome, guest %d!\r\nYour \"\"%s\"\" access is ready.\"", i, inst) // quoted, two lines
		case i%10 == 2:
			c[2] = []string{"false", "No", "0", "TRUE", "yes"}[i%5]
		case i%10 == 3:
			c[1] = "https://contoso.example/welcome"
		case i%10 == 4 && inst == "sales":
			c[8] = "Salesperson;Sales Manager"
		}
		start := line
		if bd, ok := bad[i]; ok {
			switch i {
			case 17:
				c[0] = bd.email
			case 52:
				c[6] = "UK"
			case 88:
				c[5] = ""
			case 121:
				c[7] = "crm"
			case 150:
				c[0] = bd.email
			case 177:
				c[2] = "maybe"
			}
			g.bad[start] = bd
		} else {
			send := c[2] == "" || c[2] == "TRUE" || c[2] == "yes"
			g.good[start] = goodRow{email: email, instance: inst, sends: send}
		}
		write(strings.Join(c, ","))
	}
	g.data = []byte(b.String())
	return g
}

type resultRow struct{ email, status, id, err string }

// readResultFile reads the import's result file, by line.
func readResultFile(t *testing.T, path string) map[int]resultRow {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil || len(rows) == 0 || strings.Join(rows[0], ",") != "line,email,status,onboardingid,error" {
		t.Fatalf("result file: %v\n%s", err, raw)
	}
	got := map[int]resultRow{}
	for _, r := range rows[1:] {
		var line int
		if _, err := fmt.Sscan(r[0], &line); err != nil {
			t.Fatalf("result line %q: %v", r[0], err)
		}
		got[line] = resultRow{email: r[1], status: r[2], id: r[3], err: r[4]}
	}
	return got
}
