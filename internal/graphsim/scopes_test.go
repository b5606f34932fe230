package graphsim

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// throttledBy checks a 429 names scope (<Scope>/<Limit>, followed by the
// app and resource) and reason as Microsoft's identity and access 429s do.
func throttledBy(t *testing.T, what string, r result, scope, resource, reason string) {
	t.Helper()
	if r.status != 429 {
		t.Fatalf("%s: %d %s, want 429", what, r.status, r.raw)
	}
	if got, want := r.header.Get("x-ms-throttle-scope"), scope+"/"+DefaultClientID+"/"+resource; got != want {
		t.Errorf("%s: x-ms-throttle-scope %q, want %q", what, got, want)
	}
	if got := r.header.Get("x-ms-throttle-information"); got != reason {
		t.Errorf("%s: x-ms-throttle-information %q, want %q", what, got, reason)
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("%s: no Retry-After", what)
	}
}

func TestResourceUnitCosts(t *testing.T) {
	e := start(t, Options{})
	id := invitedID(e.invite("ana@fabrikam.com"))
	tests := []struct {
		method, path string
		body         any
		want         string
	}{
		{"GET", "/users", nil, "2"},
		{"GET", "/users?$select=id,mail", nil, "1"},             // $select: -1
		{"GET", "/users?$top=10", nil, "1"},                     // $top below 20: -1
		{"GET", "/users?$top=20", nil, "2"},                     // not below 20
		{"GET", "/users?$select=id&$top=5", nil, "1"},           // never below 1
		{"GET", "/users/" + id, nil, "1"},                       // not in the table: 1
		{"GET", "/users/" + id + "?$select=id", nil, "1"},       // never below 1
		{"GET", "/users/" + id + "?$expand=memberOf", nil, "2"}, // $expand: +1
		{"GET", "/users/" + id + "/licenseDetails", nil, "2"},   // as me/licenseDetails
		{"GET", "/subscribedSkus", nil, "3"},
		{"GET", "/subscribedSkus?$select=skuId", nil, "2"},
		{"PATCH", "/users/" + id, map[string]any{"usageLocation": "PT"}, "1"},
	}
	sum := 1 // the invitation
	for _, tt := range tests {
		r := e.graph(tt.method, tt.path, tt.body)
		if got := r.header.Get("x-ms-resource-unit"); got != tt.want {
			t.Errorf("%s %s: x-ms-resource-unit %q, want %q (%d %s)", tt.method, tt.path, got, tt.want, r.status, r.raw)
		}
		if p := r.header.Get("x-ms-throttle-limit-percentage"); p != "" {
			t.Errorf("%s %s: x-ms-throttle-limit-percentage %q without any limit", tt.method, tt.path, p)
		}
		sum += int(tt.want[0] - '0')
	}
	// Outlook and Dataverse are not identity and access calls.
	if r := e.sendMail(SenderAddress); r.status != 202 || r.header.Get("x-ms-resource-unit") != "" {
		t.Errorf("sendMail: %d, x-ms-resource-unit %q", r.status, r.header.Get("x-ms-resource-unit"))
	}
	if r := e.dv("sales", "GET", "/WhoAmI", nil); r.header.Get("x-ms-resource-unit") != "" {
		t.Errorf("Dataverse answered x-ms-resource-unit %q", r.header.Get("x-ms-resource-unit"))
	}
	if st := e.s.Stats(); st.ResourceUnits != sum || st.Scopes["ru"].Admitted != len(tests)+1 {
		t.Errorf("resourceUnits %d, ru scope %+v; want %d units in %d calls", st.ResourceUnits, st.Scopes["ru"], sum, len(tests)+1)
	}
}

func TestResourceUnitLimit(t *testing.T) {
	e := start(t, Options{ResourceUnitLimit: Limit{N: 10, Per: 10 * time.Second}})
	for i := range 4 { // 8 of 10: not more than 0.8 yet
		r := e.graph("GET", "/users", nil)
		if r.status != 200 || r.header.Get("x-ms-throttle-limit-percentage") != "" {
			t.Fatalf("list %d: %d, x-ms-throttle-limit-percentage %q", i+1, r.status, r.header.Get("x-ms-throttle-limit-percentage"))
		}
	}
	r := e.graph("GET", "/users", nil)
	if r.status != 200 || r.header.Get("x-ms-throttle-limit-percentage") != "1" {
		t.Fatalf("list 5: %d, x-ms-throttle-limit-percentage %q, want 1", r.status, r.header.Get("x-ms-throttle-limit-percentage"))
	}
	r = e.graph("GET", "/users/"+MeganUserID, nil)
	throttledBy(t, "read past the quota", r, "Tenant_Application/ReadWrite", DefaultTenantID, "ResourceUnitLimitExceeded")
	if r.errCode() != "TooManyRequests" || r.header.Get("Retry-After") != "10" || r.header.Get("x-ms-resource-unit") != "" {
		t.Errorf("refusal: %s, Retry-After %q, x-ms-resource-unit %q", r.raw, r.header.Get("Retry-After"), r.header.Get("x-ms-resource-unit"))
	}
	if p := r.header.Get("x-ms-throttle-limit-percentage"); p != "1.1" {
		t.Errorf("refusal: x-ms-throttle-limit-percentage %q, want 1.1 (what it would have used)", p)
	}
	// Writes cost resource units too, and a refused one has no effect.
	r = e.graph("PATCH", "/users/"+MeganUserID, map[string]any{"usageLocation": "GB"})
	throttledBy(t, "write past the quota", r, "Tenant_Application/ReadWrite", DefaultTenantID, "ResourceUnitLimitExceeded")
	if u := e.findUser(MeganUserID); u.UsageLocation == "GB" {
		t.Error("a throttled PATCH had an effect")
	}

	// With $select a list costs half: ten fit where five did.
	e.s.advance(10 * time.Second)
	for i := range 10 {
		if r := e.graph("GET", "/users?$select=id", nil); r.status != 200 {
			t.Fatalf("selected list %d: %d %s", i+1, r.status, r.raw)
		}
	}
	throttledBy(t, "11th selected list", e.graph("GET", "/users?$select=id", nil), "Tenant_Application/ReadWrite", DefaultTenantID, "ResourceUnitLimitExceeded")
	st := e.s.Stats()
	if ru := st.Scopes["ru"]; ru.Admitted != 15 || ru.Spent != 20 || ru.Throttled != 3 || ru.Limit != "10/10s" || st.ResourceUnits != 20 {
		t.Errorf("ru scope %+v, resourceUnits %d", ru, st.ResourceUnits)
	}
	if st.Throttled != 3 {
		t.Errorf("throttled %d, want 3", st.Throttled)
	}
}

func TestWriteScopeHeaders(t *testing.T) {
	e := start(t, Options{WriteLimit: Limit{N: 4, Per: time.Minute}})
	id := invitedID(e.invite("ana@fabrikam.com"))
	want := []string{"", "", "1"} // after the invitation: 2/4, 3/4, 4/4
	for i, p := range want {
		r := e.graph("PATCH", "/users/"+id, map[string]any{"usageLocation": "PT"})
		if r.status != 204 || r.header.Get("x-ms-throttle-limit-percentage") != p || r.header.Get("x-ms-resource-unit") != "1" {
			t.Errorf("write %d: %d, x-ms-throttle-limit-percentage %q (want %q), x-ms-resource-unit %q",
				i+2, r.status, r.header.Get("x-ms-throttle-limit-percentage"), p, r.header.Get("x-ms-resource-unit"))
		}
	}
	r := e.graph("POST", "/groups/"+SalesGroupID+"/members/$ref", map[string]any{"@odata.id": e.s.URL() + "/v1.0/directoryObjects/" + id})
	throttledBy(t, "5th write", r, "Tenant_Application/Write", DefaultTenantID, "WriteLimitExceeded")
	if p := r.header.Get("x-ms-throttle-limit-percentage"); p != "1.25" {
		t.Errorf("x-ms-throttle-limit-percentage %q, want 1.25", p)
	}
	// Reads spend no write budget.
	if r := e.graph("GET", "/users/"+id, nil); r.status != 200 || r.header.Get("x-ms-throttle-limit-percentage") != "" {
		t.Errorf("read: %d, x-ms-throttle-limit-percentage %q", r.status, r.header.Get("x-ms-throttle-limit-percentage"))
	}
	if w := e.s.Stats().Scopes["write"]; w.Admitted != 4 || w.Throttled != 1 || w.Limit != "4/1m0s" {
		t.Errorf("write scope %+v", w)
	}
}

func TestTenantWriteLimit(t *testing.T) {
	e := start(t, Options{TenantWriteLimit: Limit{N: 2, Per: 5 * time.Minute}})
	id := invitedID(e.invite("ana@fabrikam.com"))
	if r := e.graph("POST", "/users/"+id+"/assignLicense", map[string]any{
		"addLicenses": []any{map[string]any{"skuId": SkuSales}}, "removeLicenses": []string{},
	}); r.status != 400 { // no usage location: refused by the handler, but admitted and charged
		t.Fatalf("assignLicense: %d %s", r.status, r.raw)
	}
	r := e.graph("PATCH", "/users/"+id, map[string]any{"usageLocation": "PT"})
	throttledBy(t, "3rd write", r, "Tenant/Write", DefaultTenantID, "WriteLimitExceeded")
	if r.header.Get("Retry-After") != "300" {
		t.Errorf("Retry-After %q, want 300", r.header.Get("Retry-After"))
	}
	if st := e.s.Stats().Scopes; st["tenantWrite"].Admitted != 2 || st["tenantWrite"].Throttled != 1 || st["write"].Throttled != 0 {
		t.Errorf("scopes %+v", st)
	}
}

func TestInviteScopeHeaders(t *testing.T) {
	e := start(t, Options{InviteLimit: Limit{N: 1, Per: 5 * time.Second}, WriteLimit: Limit{N: 2, Per: time.Minute}})
	e.invite("a@x.example")
	r := e.graph("POST", "/invitations", map[string]any{"invitedUserEmailAddress": "b@x.example", "inviteRedirectUrl": "https://x.example"})
	throttledBy(t, "2nd invitation", r, "Tenant/Write", DefaultTenantID, "InvitationLimitExceeded")
	if p := r.header.Get("x-ms-throttle-limit-percentage"); p != "1.8" {
		t.Errorf("x-ms-throttle-limit-percentage %q, want 1.8 (2 of 1, capped)", p)
	}
	// The refused invitation charged none of its scopes: the second of two
	// writes is still free.
	if r := e.graph("PATCH", "/users/"+MeganUserID, map[string]any{"usageLocation": "GB"}); r.status != 204 {
		t.Errorf("write after a refused invitation: %d %s", r.status, r.raw)
	}
	if st := e.s.Stats().Scopes; st["write"].Admitted != 2 || st["invite"].Admitted != 1 || st["invite"].Throttled != 1 || st["write"].Throttled != 0 {
		t.Errorf("scopes %+v", st)
	}
}

// sendMail sends one message from sender.
func (e *env) sendMail(sender string) result {
	e.t.Helper()
	return e.graph("POST", "/users/"+sender+"/sendMail", mailBody())
}

func mailBody() map[string]any {
	return map[string]any{"message": map[string]any{
		"subject": "hi", "body": map[string]any{"contentType": "text", "content": "hi"},
		"toRecipients": []any{map[string]any{"emailAddress": map[string]any{"address": "ana@fabrikam.example"}}},
	}}
}

func TestMailLimit(t *testing.T) {
	e := start(t, Options{MailLimit: Limit{N: 2, Per: 10 * time.Minute}})
	// Both spellings of the sender are one mailbox.
	for _, sender := range []string{SenderAddress, SenderUserID} {
		if r := e.sendMail(sender); r.status != 202 {
			t.Fatalf("sendMail as %s: %d %s", sender, r.status, r.raw)
		}
	}
	r := e.sendMail(strings.ToUpper(SenderAddress))
	throttledBy(t, "3rd mail", r, "Application/ReadWrite", SenderUserID, "MailboxRequestLimitExceeded")
	if r.errCode() != "ApplicationThrottled" || r.header.Get("Retry-After") != "600" {
		t.Errorf("refusal: Retry-After %q, %s", r.header.Get("Retry-After"), r.raw)
	}
	if n := len(e.s.Mails()); n != 2 {
		t.Errorf("%d mails sent, want 2", n)
	}
	// Another mailbox has limits of its own; identity calls are not Outlook's.
	if r := e.sendMail(MeganAddress); r.status != 202 {
		t.Errorf("another mailbox: %d %s", r.status, r.raw)
	}
	if r := e.graph("GET", "/users", nil); r.status != 200 {
		t.Errorf("identity read: %d", r.status)
	}
	if m := e.s.Stats().Scopes["mail"]; m.Admitted != 3 || m.Throttled != 1 || m.Limit != "2/10m0s" {
		t.Errorf("mail scope %+v", m)
	}
}

func TestMailConcurrency(t *testing.T) {
	concurrent := func(opts Options) (statuses map[int]int, refused []result) {
		e := start(t, opts)
		tok := e.token("") // fetched first, so all requests start together
		results := make(chan result, 5)
		var wg sync.WaitGroup
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- e.do("POST", "/v1.0/users/"+SenderAddress+"/sendMail", tok, mailBody())
			}()
		}
		wg.Wait()
		close(results)
		statuses = map[int]int{}
		for r := range results {
			statuses[r.status]++
			if r.status == 429 {
				refused = append(refused, r)
			}
		}
		if r := e.sendMail(SenderAddress); r.status != 202 {
			t.Errorf("after the others ended: %d %s", r.status, r.raw)
		}
		return statuses, refused
	}

	statuses, refused := concurrent(Options{MailLimit: Limit{N: 10000, Per: 10 * time.Minute}, Latency: 300 * time.Millisecond})
	if statuses[202] != 4 || statuses[429] != 1 {
		t.Fatalf("statuses %v, want four 202 and one 429", statuses)
	}
	r := refused[0]
	throttledBy(t, "5th concurrent mail", r, "Application/ReadWrite", SenderUserID, "MailboxConcurrencyLimitExceeded")
	if r.errCode() != "ApplicationThrottled" || r.errMessage() != "Application is over its MailboxConcurrency limit." || r.header.Get("Retry-After") != "1" {
		t.Errorf("refusal: Retry-After %q, %s", r.header.Get("Retry-After"), r.raw)
	}

	// Without --mail-limit there is no concurrency limit either.
	if statuses, _ := concurrent(Options{Latency: 300 * time.Millisecond}); statuses[202] != 5 {
		t.Errorf("without a mail limit: %v", statuses)
	}
}

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		in   string
		want Schedule
		err  string
	}{
		{"", nil, ""},
		{"30/s", Schedule{{0, 30}}, ""},
		{"0/s,30/s@20s,0/s@40s", Schedule{{0, 0}, {20 * time.Second, 30}, {40 * time.Second, 0}}, ""},
		{"300/10s@0s, 0.5/s@1m", Schedule{{0, 30}, {time.Minute, 0.5}}, ""},
		{"30", nil, "want a rate N/DURATION"},
		{"-1/s", nil, "zero or more"},
		{"5/0s", nil, "positive duration"},
		{"5/s@10s", nil, "the first step starts at 0"},
		{"0/s,5/s", nil, "needs @OFFSET"},
		{"0/s,5/s@20s,1/s@10s", nil, "is not after the previous step's 20s"},
		{"0/s,5/s@soon", nil, "not an offset"},
	}
	for _, tt := range tests {
		got, err := ParseSchedule(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSchedule(%q) error %v, want one saying %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("ParseSchedule(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ParseSchedule(%q)[%d] = %+v, want %+v", tt.in, i, got[i], tt.want[i])
			}
		}
		if back, err := ParseSchedule(got.String()); err != nil || back.String() != got.String() {
			t.Errorf("%q does not round-trip through String %q: %v", tt.in, got.String(), err)
		}
	}
	if got := (Schedule{{0, 0}, {20 * time.Second, 30}}).writes(0, 30*time.Second); got != 300 {
		t.Errorf("writes over 30s = %v, want 300", got)
	}
}

func TestNeighbourSpendsTenantWrites(t *testing.T) {
	sched, _ := ParseSchedule("5/s,20/s@10s,0/s@20s")
	e := start(t, Options{Neighbour: sched, TenantWriteLimit: Limit{N: 252, Per: time.Hour}})
	after := func(d time.Duration) int {
		e.s.advance(d)
		e.s.neighbourSpend() // catch up now rather than at the next tick
		return e.s.Stats().NeighbourWrites
	}
	if n := after(10 * time.Second); n < 50 || n > 51 { // 5/s for 10s, and a few real milliseconds at 20/s
		t.Errorf("after 10s the neighbour made %d writes, want 50", n)
	}
	if n := after(15 * time.Second); n != 250 { // + 20/s for 10s, then nothing
		t.Errorf("after 25s the neighbour made %d writes, want 250", n)
	}
	if n := after(time.Minute); n != 250 {
		t.Errorf("at rate 0 the neighbour made %d more writes", n-250)
	}

	// Its writes spend the tenant's budget: two of 252 are left for guestflow.
	r := e.graph("POST", "/invitations", map[string]any{"invitedUserEmailAddress": "ana@fabrikam.com", "inviteRedirectUrl": "https://x.example"})
	if r.status != 201 || r.header.Get("x-ms-throttle-limit-percentage") != "1" {
		t.Fatalf("invitation: %d, x-ms-throttle-limit-percentage %q, want 1 (251 of 252) %s", r.status, r.header.Get("x-ms-throttle-limit-percentage"), r.raw)
	}
	id := invitedID(r)
	if r := e.graph("PATCH", "/users/"+id, map[string]any{"usageLocation": "PT"}); r.status != 204 {
		t.Fatalf("last write: %d %s", r.status, r.raw)
	}
	throttledBy(t, "write past the neighbour's", e.graph("PATCH", "/users/"+id, map[string]any{"usageLocation": "ES"}),
		"Tenant/Write", DefaultTenantID, "WriteLimitExceeded")
	st := e.s.Stats()
	if st.NeighbourThrottled != 0 || st.Writes != 2 || st.Scopes["tenantWrite"].Admitted != 2 || st.Scopes["tenantWrite"].Throttled != 1 {
		t.Errorf("stats: neighbourThrottled %d, writes %d, tenantWrite %+v", st.NeighbourThrottled, st.Writes, st.Scopes["tenantWrite"])
	}
}

func TestNeighbourIsThrottledAndStops(t *testing.T) {
	sched, _ := ParseSchedule("100/s")
	e := start(t, Options{Neighbour: sched, TenantWriteLimit: Limit{N: 10, Per: time.Hour}})
	e.s.advance(time.Second)
	e.s.neighbourSpend()
	st := e.s.Stats()
	if st.NeighbourWrites != 10 || st.NeighbourThrottled < 90 {
		t.Errorf("neighbour wrote %d and was refused %d times, want 10 and at least 90", st.NeighbourWrites, st.NeighbourThrottled)
	}
	throttledBy(t, "guestflow's write", e.graph("PATCH", "/users/"+MeganUserID, map[string]any{"usageLocation": "GB"}),
		"Tenant/Write", DefaultTenantID, "WriteLimitExceeded")

	// It runs on its own while the server does, and not after Close.
	begin := e.s.Stats().NeighbourThrottled
	deadline := time.Now().Add(5 * time.Second)
	for e.s.Stats().NeighbourThrottled == begin && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.s.Stats().NeighbourThrottled == begin {
		t.Fatal("the neighbour did not spend on its own")
	}
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := e.s.Stats().NeighbourThrottled
	time.Sleep(5 * neighbourTick)
	if n := e.s.Stats().NeighbourThrottled; n != stopped {
		t.Errorf("the neighbour spent %d more after Close", n-stopped)
	}
}

func TestScopeStatsJSON(t *testing.T) {
	sched, _ := ParseSchedule("0/s")
	e := start(t, Options{
		ResourceUnitLimit: Limit{N: 3500, Per: 10 * time.Second}, MailLimit: Limit{N: 10000, Per: 10 * time.Minute}, Neighbour: sched,
	})
	e.graph("GET", "/subscribedSkus", nil)
	var raw map[string]json.RawMessage
	e.inspect("/stats", &raw)
	for _, k := range []string{"requests", "byStatus", "writes", "invitations", "throttled", "faults", "calls", "scopes", "resourceUnits", "neighbourWrites", "neighbourThrottled"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("/_sim/stats has no %q: %s", k, raw)
		}
	}
	var sc map[string]map[string]any
	if err := json.Unmarshal(raw["scopes"], &sc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ru": "3500/10s", "write": "", "tenantWrite": "", "invite": "", "mail": "10000/10m0s", "mailConcurrency": "4"}
	for k, limit := range want {
		if sc[k] == nil || sc[k]["limit"] != limit {
			t.Errorf("scopes[%q] = %v, want limit %q", k, sc[k], limit)
		}
	}
	if len(sc) != len(want) || sc["ru"]["admitted"] != 1.0 || sc["ru"]["spent"] != 3.0 {
		t.Errorf("scopes %v", sc)
	}
	e.s.Reset()
	if st := e.s.Stats(); st.Scopes["ru"].Admitted != 0 || st.ResourceUnits != 0 || st.Scopes["ru"].Limit != "3500/10s" {
		t.Errorf("after Reset: %+v", st.Scopes["ru"])
	}
}

func TestWindowWeighted(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newWindow(Limit{N: 5, Per: 10 * time.Second})
	w.add(t0, 3)
	w.add(t0.Add(2*time.Second), 2)
	now := t0.Add(4 * time.Second)
	for _, tt := range []struct {
		cost int
		want time.Duration
	}{
		{1, 6 * time.Second}, // the 3 at t0 must leave
		{3, 6 * time.Second},
		{4, 8 * time.Second}, // both must leave
		{9, 8 * time.Second}, // dearer than the limit: fits an empty window
	} {
		if got := w.wait(now, tt.cost); got != tt.want {
			t.Errorf("wait for %d units = %s, want %s", tt.cost, got, tt.want)
		}
	}
	if f := w.fraction(1); f != 1.2 {
		t.Errorf("fraction with one more = %v, want 1.2", f)
	}
	if got := w.wait(t0.Add(10*time.Second), 3); got != 0 {
		t.Errorf("once the 3 at t0 left, 3 more fit: wait %s", got)
	}
	if w.total != 2 {
		t.Errorf("total %d after pruning, want 2", w.total)
	}
}

// TestRestartNeighbourCountsTheScheduleFromThen: after RestartNeighbour the
// schedule's offsets count from that moment, not from Start.
func TestRestartNeighbourCountsTheScheduleFromThen(t *testing.T) {
	sched, _ := ParseSchedule("0/s,10/s@10s,0/s@20s")
	e := start(t, Options{Neighbour: sched})
	e.s.advance(15 * time.Second)
	e.s.RestartNeighbour() // 15 s after Start: the schedule is at 0 again
	e.s.advance(5 * time.Second)
	e.s.neighbourSpend()
	if n := e.s.Stats().NeighbourWrites; n != 0 {
		t.Errorf("5s after the restart the neighbour made %d writes, want none (its 10/s starts at 10s)", n)
	}
	e.s.advance(10 * time.Second)
	e.s.neighbourSpend()
	if n := e.s.Stats().NeighbourWrites; n < 50 || n > 51 {
		t.Errorf("15s after the restart the neighbour made %d writes, want 50", n)
	}
}
