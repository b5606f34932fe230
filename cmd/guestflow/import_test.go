package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/broker"
	"github.com/guestflow/guestflow/internal/config"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

const importHeader = "Email address to invite [inviteeEmail] Required,Redirection url [inviteRedirectURL] Required," +
	"Send invitation message (true or false) [sendEmail],Customized invitation message [customizedMessageBody]," +
	"First name [givenName],Last name [surname],Usage location [usageLocation],Instance [instance],Roles [roles],License [license]"

// importEnv is a temporary folder with a configuration naming the seeded
// instances and an embedded NATS server whose streams exist.
type importEnv struct {
	t      *testing.T
	dir    string
	config string
	url    string
	js     jetstream.JetStream
}

func newImportEnv(t *testing.T) *importEnv {
	t.Helper()
	ns, err := broker.Start(broker.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, js, err := app.Connect(config.NATS{URL: ns.ClientURL()}, "import-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := worker.EnsureStreams(context.Background(), js, worker.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	e := &importEnv{t: t, dir: t.TempDir(), url: ns.ClientURL(), js: js}
	e.config = e.write("guestflow.yaml", `nats:
  url: `+ns.ClientURL()+`
instances:
  sales: {url: "https://contoso-sales.crm4.dynamics.com", license: DYN365_ENTERPRISE_SALES, roles: [Salesperson]}
  service: {url: "https://contoso-service.crm4.dynamics.com", license: DYN365_ENTERPRISE_CUSTOMER_SERVICE, roles: [Customer Service Representative]}
`)
	return e
}

func (e *importEnv) write(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// csvFile writes a bulk-invite file with the full header and rows.
func (e *importEnv) csvFile(name string, rows ...string) string {
	return e.write(name, "version:v1.0,,,\n"+importHeader+"\n"+strings.Join(rows, "\n")+"\n")
}

// run executes `guestflow import` with args and returns its stderr and exit
// status, as main would map them.
func (e *importEnv) run(args ...string) (string, int) {
	e.t.Helper()
	var stderr bytes.Buffer
	root := newRoot()
	root.SetArgs(append([]string{"import"}, args...))
	root.SetErr(&stderr)
	root.SetOut(&bytes.Buffer{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		stderr.WriteString("guestflow: " + err.Error() + "\n")
	}
	return stderr.String(), code
}

// joined returns the events stored on the joined subject, by id.
func (e *importEnv) joined() map[string]storedEvent {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, worker.Stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[string]storedEvent{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		if m.Subject != events.SubjectJoined {
			e.t.Fatalf("message on %s", m.Subject)
		}
		ev, err := events.Decode(m.Subject, m.Header, m.Data)
		if err != nil {
			e.t.Fatalf("stored event does not decode: %v", err)
		}
		j, err := events.ParseJoined(ev.Data())
		if err != nil {
			e.t.Fatalf("stored joined data invalid: %v", err)
		}
		if _, dup := got[ev.ID()]; dup {
			e.t.Fatalf("event %s stored twice", ev.ID())
		}
		got[ev.ID()] = storedEvent{msgID: m.Header.Get(jetstream.MsgIDHeader), contentType: m.Header.Get("Content-Type"),
			source: ev.Source(), subject: ev.Subject(), joined: j}
	}
	return got
}

type storedEvent struct {
	msgID, contentType, source, subject string
	joined                              events.Joined
}

// results reads a result file into its rows, header checked.
func readResults(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("result file: %v", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("result file is not CSV: %v", err)
	}
	if want := []string{"line", "email", "status", "onboardingid", "error"}; len(rows) == 0 || !reflect.DeepEqual(rows[0], want) {
		t.Fatalf("result header %q, want %q", rows, want)
	}
	return rows[1:]
}

func TestImportPublishesValidRowsAndReportsTheRest(t *testing.T) {
	e := newImportEnv(t)
	in := e.csvFile("guests.csv",
		"ana.silva@fabrikam.com,,true,\"Welcome,\nAna!\",Ana,Silva,pt,sales,,",                                       // 3–4
		"liam.obrien@contoso.example,,no,,Liam,O'Brien,UK,service,,",                                                 // 5: UK
		"kenji.sato@adatum.example,https://contoso.example/start,0,,Kenji,Sato,JP,service,Sales Manager;Basic User,", // 6
		"Ana.Silva@Fabrikam.com,,,,Ana,Silva,PT,sales,,",                                                             // 7: duplicate
		"mia@fabrikam.com,,,,Mia,Wong,HK,crm,,",                                                                      // 8: not configured
		"noah@fabrikam.com,,,,Noah,Berg,SE,,,",                                                                       // 9: instance from --instance
	)
	stderr, code := e.run(in, "--config", e.config, "--instance", "sales", "--roles", "Salesperson,Sales Manager")
	if code != 3 {
		t.Fatalf("exit %d, want 3 (some rejected, some published):\n%s", code, stderr)
	}
	for _, want := range []string{
		in + ":5: rejected: usageLocation:", `"GB"`,
		in + ":7: duplicate: same address as line 3",
		in + `:8: rejected: instance: "crm" is not a configured instance`,
		"3 published, 1 duplicate, 2 rejected; results in " + in + ".results.csv",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	rows := readResults(t, in+".results.csv")
	type result struct{ line, email, status string }
	var got []result
	ids := map[string]string{}
	for _, r := range rows {
		got = append(got, result{r[0], r[1], r[2]})
		if (r[3] != "") != (r[2] == "published") || (r[4] != "") != (r[2] != "published") {
			t.Errorf("result row %q: id and error do not fit the status", r)
		}
		if r[3] != "" {
			ids[r[1]] = r[3]
		}
	}
	want := []result{{"3", "ana.silva@fabrikam.com", "published"}, {"5", "liam.obrien@contoso.example", "rejected"},
		{"6", "kenji.sato@adatum.example", "published"}, {"7", "Ana.Silva@Fabrikam.com", "duplicate"},
		{"8", "mia@fabrikam.com", "rejected"}, {"9", "noah@fabrikam.com", "published"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results %v\nwant    %v", got, want)
	}

	stored := e.joined()
	if len(stored) != 3 {
		t.Fatalf("%d events stored, want 3", len(stored))
	}
	for email, id := range ids {
		ev, ok := stored[id]
		if !ok {
			t.Errorf("%s: no event %s in the stream", email, id)
			continue
		}
		if ev.msgID != id || ev.source != "guestflow/import" || ev.subject != email || ev.contentType != "application/cloudevents+json" {
			t.Errorf("%s: stored %+v", email, ev)
		}
	}
	ana, kenji, noah := stored[ids["ana.silva@fabrikam.com"]].joined, stored[ids["kenji.sato@adatum.example"]].joined,
		stored[ids["noah@fabrikam.com"]].joined
	if ana.Message != "Welcome,\nAna!" || ana.UsageLocation != "PT" || !ana.SendsEmail() || ana.RedirectURL != "" ||
		!reflect.DeepEqual(ana.Roles, []string{"Salesperson", "Sales Manager"}) {
		t.Errorf("ana: %+v", ana)
	}
	if kenji.SendsEmail() || kenji.RedirectURL != "https://contoso.example/start" || !reflect.DeepEqual(kenji.Roles, []string{"Sales Manager", "Basic User"}) {
		t.Errorf("kenji: %+v", kenji)
	}
	if noah.Instance != "sales" {
		t.Errorf("noah: instance %q, want --instance's sales", noah.Instance)
	}
}

func TestImportExitStatus(t *testing.T) {
	e := newImportEnv(t)
	good := "ana@fabrikam.com,,,,Ana,Silva,PT,sales,,"
	bad := "liam@contoso.example,,,,Liam,O'Brien,UK,sales,,"
	tests := []struct {
		name    string
		file    string
		args    []string
		code    int
		results bool   // a result file is written
		stderr  string // in stderr
	}{
		{"all published", e.csvFile("all.csv", good), nil, 0, true, "1 published, 0 duplicate, 0 rejected"},
		{"duplicates are not failures", e.csvFile("dup.csv", good, "ANA@fabrikam.com,,,,Ana,Silva,PT,sales,,"), nil, 0, true, "1 published, 1 duplicate, 0 rejected"},
		{"some rejected", e.csvFile("some.csv", good, bad), nil, 3, true, "1 published, 0 duplicate, 1 rejected"},
		{"every row rejected", e.csvFile("none.csv", bad), nil, 1, true, "nothing was published"},
		{"no data rows", e.csvFile("empty.csv"), nil, 0, true, "the file has no data rows"},
		{"unreadable: no [inviteeEmail]", e.write("nohdr.csv", "version:v1.0\nEmail,[givenName]\na@b.example,A\n"), nil, 1, false,
			"line 2: the header has no [inviteeEmail] column"},
		{"unreadable: no version line", e.write("nover.csv", importHeader+"\n"+good+"\n"), nil, 1, false, "version:v1.0"},
		{"missing file", filepath.Join(e.dir, "absent.csv"), nil, 1, false, "no such file"},
		{"no NATS", e.csvFile("nonats.csv", good), []string{"--nats", "nats://127.0.0.1:1"}, 1, true, "nothing was published: NATS nats://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stderr, code := e.run(append([]string{tt.file, "--config", e.config}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
			_, err := os.Stat(tt.file + ".results.csv")
			if (err == nil) != tt.results {
				t.Errorf("result file written: %v, want %v", err == nil, tt.results)
			}
		})
	}
	t.Run("no NATS rejects every row in the results", func(t *testing.T) {
		for _, r := range readResults(t, filepath.Join(e.dir, "nonats.csv.results.csv")) {
			if r[2] != "rejected" || !strings.Contains(r[4], "NATS") {
				t.Errorf("result %q", r)
			}
		}
	})
}

func TestImportWithoutStream(t *testing.T) {
	ns, err := broker.Start(broker.Options{Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	e := &importEnv{t: t, dir: t.TempDir()}
	in := e.csvFile("guests.csv", "ana@fabrikam.com,,,,Ana,Silva,PT,sales,,")
	t.Chdir(e.dir) // no guestflow.yaml here
	stderr, code := e.run(in, "--nats", ns.ClientURL())
	if code != 1 || !strings.Contains(stderr, "no stream stores guestflow.user.joined") {
		t.Errorf("exit %d, want 1 naming the missing stream:\n%s", code, stderr)
	}
}

func TestImportDryRunPublishesNothing(t *testing.T) {
	e := newImportEnv(t)
	in := e.csvFile("guests.csv", "ana@fabrikam.com,,,,Ana,Silva,PT,sales,,", "liam@contoso.example,,,,Liam,O'Brien,UK,sales,,")
	// An unreachable NATS proves the dry run does not even connect.
	stderr, code := e.run(in, "--config", e.config, "--dry-run", "--nats", "nats://127.0.0.1:1")
	if code != 3 {
		t.Errorf("exit %d, want 3 as the real import would:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "dry run: nothing published; 1 would be published, 0 duplicate, 1 rejected") {
		t.Errorf("stderr:\n%s", stderr)
	}
	rows := readResults(t, in+".results.csv")
	if len(rows) != 2 || rows[0][2] != "published" || rows[0][3] == "" || rows[1][2] != "rejected" {
		t.Errorf("results %q", rows)
	}
	if n := len(e.joined()); n != 0 {
		t.Errorf("dry run stored %d events", n)
	}
}

// TestImportTwiceStoresEachEventOnce is the contract's promise: the ids come
// from the file, so the duplicate window absorbs a second import, and the
// second import says so rather than claiming to have published.
func TestImportTwiceStoresEachEventOnce(t *testing.T) {
	e := newImportEnv(t)
	in := e.csvFile("guests.csv", "ana@fabrikam.com,,,,Ana,Silva,PT,sales,,", "liam@contoso.example,,,,Liam,O'Brien,IE,service,,",
		"mia@fabrikam.com,,,,Mia,Wong,UK,sales,,")
	results := filepath.Join(e.dir, "out.csv")
	var runs [][][]string
	for i, want := range []string{"2 published, 0 duplicate, 1 rejected", "0 published, 2 already published, 0 duplicate, 1 rejected"} {
		stderr, code := e.run(in, "--config", e.config, "--results", results)
		if code != 3 || !strings.Contains(stderr, want) {
			t.Fatalf("import %d: exit %d, want 3 and %q:\n%s", i+1, code, want, stderr)
		}
		runs = append(runs, readResults(t, results))
	}
	stored := e.joined()
	if len(stored) != 2 {
		t.Fatalf("%d events stored, want 2", len(stored))
	}
	for i, r := range runs[1][:2] {
		first := runs[0][i]
		if r[2] != "already_published" || r[3] != first[3] || first[2] != "published" || !strings.Contains(r[4], "duplicate window") {
			t.Errorf("second import reports %q; the first %q", r, first)
		}
		if _, ok := stored[r[3]]; !ok {
			t.Errorf("result %q not stored", r)
		}
	}
	if r := runs[1][2]; r[2] != "rejected" {
		t.Errorf("the bad row the second time: %q", r)
	}
}

func TestImportAlreadyPublishedIsNotAFailure(t *testing.T) {
	e := newImportEnv(t)
	in := e.csvFile("guests.csv", "ana@fabrikam.com,,,,Ana,Silva,PT,sales,,")
	for i, want := range []string{"1 published, 0 duplicate, 0 rejected", "0 published, 1 already published, 0 duplicate, 0 rejected"} {
		if stderr, code := e.run(in, "--config", e.config); code != 0 || !strings.Contains(stderr, want) {
			t.Errorf("import %d: exit %d, want 0 and %q:\n%s", i+1, code, want, stderr)
		}
	}
}

func TestImportWithoutConfigurationLeavesInstancesToTheInviteStep(t *testing.T) {
	e := newImportEnv(t)
	in := e.csvFile("guests.csv", "ana@fabrikam.com,,,,Ana,Silva,PT,crm,,")
	t.Chdir(e.dir)
	if err := os.Remove(e.config); err != nil {
		t.Fatal(err)
	}
	stderr, code := e.run("guests.csv", "--nats", e.url)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if rows := readResults(t, in+".results.csv"); rows[0][2] != "published" {
		t.Errorf("results %q", rows)
	}
}

func TestImportRefusesToOverwriteItsInput(t *testing.T) {
	e := newImportEnv(t)
	in := e.csvFile("guests.csv", "ana@fabrikam.com,,,,Ana,Silva,PT,sales,,")
	before, _ := os.ReadFile(in)
	stderr, code := e.run(in, "--config", e.config, "--results", in)
	after, _ := os.ReadFile(in)
	if code != 1 || !bytes.Equal(before, after) || !strings.Contains(stderr, "is the input file") {
		t.Errorf("exit %d, input changed %v:\n%s", code, !bytes.Equal(before, after), stderr)
	}
	if n := len(e.joined()); n != 0 {
		t.Errorf("%d events published", n)
	}
}
