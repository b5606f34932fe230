package graphsim

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in   string
		want Limit
		err  bool
	}{
		{"", Limit{}, false},
		{"3000/150s", Limit{3000, 150 * time.Second}, false},
		{"150/5s", Limit{150, 5 * time.Second}, false},
		{" 20/s ", Limit{20, time.Second}, false},
		{"10/2m30s", Limit{10, 150 * time.Second}, false},
		{"3000", Limit{}, true},
		{"0/5s", Limit{}, true},
		{"-1/5s", Limit{}, true},
		{"x/5s", Limit{}, true},
		{"5/0s", Limit{}, true},
		{"5/fortnight", Limit{}, true},
	}
	for _, tt := range tests {
		got, err := ParseLimit(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil {
			if back, _ := ParseLimit(got.String()); back != got {
				t.Errorf("%q does not round-trip through String: %q", tt.in, got.String())
			}
		}
	}
}

func TestWriteBudget(t *testing.T) {
	e := start(t, Options{WriteLimit: Limit{N: 3, Per: time.Minute}})
	id := invitedID(e.invite("ana@fabrikam.com")) // write 1
	patch := func(loc string) result {
		return e.graph("PATCH", "/users/"+id, map[string]any{"usageLocation": loc})
	}
	if r := patch("PT"); r.status != 204 { // write 2
		t.Fatalf("%d %s", r.status, r.raw)
	}
	e.s.advance(10 * time.Second)
	if r := patch("ES"); r.status != 204 { // write 3
		t.Fatalf("%d %s", r.status, r.raw)
	}
	r := patch("FR")
	if r.status != 429 || r.errCode() != "TooManyRequests" {
		t.Fatalf("4th write: %d %s", r.status, r.raw)
	}
	// The oldest write (t=0) leaves the window at t=60s; it is now t=10s.
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra != 50 {
		t.Errorf("Retry-After %q, want 50", r.header.Get("Retry-After"))
	}
	if u := e.findUser(id); u.UsageLocation != "ES" {
		t.Errorf("throttled PATCH had an effect: usageLocation %q", u.UsageLocation)
	}
	// Reads and mail are not identity writes.
	if r := e.graph("GET", "/users/"+id, nil); r.status != 200 {
		t.Errorf("read throttled: %d", r.status)
	}
	e.s.advance(50 * time.Second)
	if r := patch("FR"); r.status != 204 {
		t.Errorf("after Retry-After: %d %s", r.status, r.raw)
	}
	st := e.s.Stats()
	if st.Throttled != 1 || st.Writes != 4 || st.Invitations != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestInviteBudget(t *testing.T) {
	e := start(t, Options{InviteLimit: Limit{N: 1, Per: 5 * time.Second}})
	e.invite("a@x.example")
	r := e.graph("POST", "/invitations", map[string]any{"invitedUserEmailAddress": "b@x.example", "inviteRedirectUrl": "https://x.example"})
	if r.status != 429 || r.header.Get("Retry-After") != "5" {
		t.Fatalf("2nd invitation: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.raw)
	}
	if n := len(e.s.Users()); n != 3 {
		t.Errorf("throttled invitation created a user: %d users", n)
	}
	// Other writes only spend the write budget, which is unlimited here.
	if r := e.graph("PATCH", "/users/"+MeganUserID, map[string]any{"usageLocation": "GB"}); r.status != 204 {
		t.Errorf("PATCH while invitations are throttled: %d", r.status)
	}
}

func TestFaultRateOne(t *testing.T) {
	e := start(t, Options{FaultRate: 1})
	seen := map[int]bool{}
	for i := 0; i < 40; i++ {
		r := e.graph("POST", "/invitations", map[string]any{"invitedUserEmailAddress": fmt.Sprintf("u%d@x.example", i), "inviteRedirectUrl": "https://x.example"})
		seen[r.status] = true
		switch r.status {
		case 429:
			if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 || ra > 3 {
				t.Errorf("fault 429 Retry-After %q", r.header.Get("Retry-After"))
			}
		case 500, 503, 504:
		default:
			t.Fatalf("status %d under fault rate 1", r.status)
		}
		if r.errCode() == "" || r.header.Get("request-id") == "" {
			t.Errorf("fault body %s", r.raw)
		}
		d := e.dv("sales", "GET", "/WhoAmI", nil)
		if d.status < 429 || len(d.errCode()) < 3 || d.errCode()[:2] != "0x" {
			t.Errorf("dataverse fault %d %s", d.status, d.raw)
		}
	}
	if len(seen) < 3 {
		t.Errorf("only statuses %v in 40 faults", seen)
	}
	if n := len(e.s.Users()); n != 2 {
		t.Errorf("faulted invitations created %d users", n-2)
	}
	st := e.s.Stats()
	if st.Faults != 80 || st.Requests != 80 || st.Invitations != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestLatencyRespectsCancellation(t *testing.T) {
	e := start(t, Options{Latency: time.Second})
	tok := e.token("")
	begin := time.Now()
	if r := e.do("GET", "/v1.0/subscribedSkus", tok, nil); r.status != 200 || time.Since(begin) < time.Second {
		t.Errorf("%d after %s, want 200 after the 1s latency", r.status, time.Since(begin))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.s.URL()+"/v1.0/subscribedSkus", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	begin = time.Now()
	if resp, err := e.hc.Do(req); err == nil {
		t.Errorf("request outlived its context: %d after %s", resp.StatusCode, time.Since(begin))
	}
}

// TestConcurrentLicensing races many workers for few seats: exactly the
// number of seats must succeed and the rest fail "no available licenses".
func TestConcurrentLicensing(t *testing.T) {
	e := start(t, Options{Seats: 5})
	tok := e.token("")
	const n = 20
	var ids []string
	for i := 0; i < n; i++ {
		id := invitedID(e.invite(fmt.Sprintf("user%d@x.example", i)))
		e.graph("PATCH", "/users/"+id, map[string]any{"usageLocation": "PT"})
		ids = append(ids, id)
	}
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do("POST", "/v1.0/users/"+id+"/assignLicense", tok, map[string]any{
				"addLicenses": []any{map[string]any{"skuId": SkuSales}}, "removeLicenses": []string{},
			})
			statuses[i] = r.status
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		if s == 200 {
			ok++
		}
	}
	if ok != 5 {
		t.Errorf("%d assignments succeeded for 5 seats: %v", ok, statuses)
	}
	for _, k := range e.s.SKUs() {
		if k.SkuID == SkuSales && k.Consumed != 5 {
			t.Errorf("consumed %d", k.Consumed)
		}
	}
}

func TestDropRateDropsConnections(t *testing.T) {
	e := start(t, Options{DropRate: 1})
	req, _ := http.NewRequest(http.MethodGet, e.s.URL()+"/v1.0/subscribedSkus", nil)
	req.Header.Set("Authorization", "Bearer "+e.token(""))
	resp, err := e.hc.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a dropped connection answered %s", resp.Status)
	}
	// net/http retries an idempotent request once on a reused connection
	// that died, so the drop may be counted twice.
	if st := e.s.Stats(); st.Faults < 1 || st.Requests != 0 {
		t.Errorf("faults %d, requests %d: want the drop counted as a fault, not as an answered call", st.Faults, st.Requests)
	}
}

func TestDataverseRequestLimit(t *testing.T) {
	e := start(t, Options{DataverseLimit: Limit{N: 2, Per: 5 * time.Minute}})
	whoAmI := func(instance string) result { return e.dv(instance, "GET", "/businessunits?$select=name", nil) }
	for i := range 2 {
		if r := whoAmI("sales"); r.status != 200 {
			t.Fatalf("request %d: %d %s", i+1, r.status, r.raw)
		}
	}
	e.s.advance(time.Minute)
	r := whoAmI("sales")
	if r.status != 429 || r.errCode() != "0x80072322" ||
		r.errMessage() != "Number of requests exceeded the limit of 2 over time window of 300 seconds." {
		t.Fatalf("3rd request: %d %s", r.status, r.raw)
	}
	// The first request leaves the five-minute window four minutes from now.
	if ra := r.header.Get("Retry-After"); ra != "240" {
		t.Errorf("Retry-After %q, want 240", ra)
	}
	if r := whoAmI("service"); r.status != 200 {
		t.Errorf("another instance shares the limit: %d", r.status)
	}
	if r := e.graph("GET", "/users/"+MeganUserID, nil); r.status != 200 {
		t.Errorf("Graph shares Dataverse's limit: %d", r.status)
	}
	e.s.advance(4 * time.Minute)
	if r := whoAmI("sales"); r.status != 200 {
		t.Errorf("after Retry-After: %d %s", r.status, r.raw)
	}
	if st := e.s.Stats(); st.Throttled != 1 {
		t.Errorf("throttled %d, want 1", st.Throttled)
	}
}

func TestDataverseConcurrencyLimit(t *testing.T) {
	e := start(t, Options{DataverseConcurrency: 1, Latency: 300 * time.Millisecond})
	tok := e.token("sales") // fetched first, so both requests start together
	results := make(chan result, 2)
	for range 2 {
		go func() { results <- e.do("GET", "/instances/sales/api/data/v9.2/businessunits?$select=name", tok, nil) }()
	}
	statuses := map[int]int{}
	for range 2 {
		r := <-results
		statuses[r.status]++
		if r.status == 429 && (r.errCode() != "0x80072326" || r.errMessage() != "Number of concurrent requests exceeded the limit of 1." || r.header.Get("Retry-After") == "") {
			t.Errorf("refused request: %d %v %s", r.status, r.header, r.raw)
		}
	}
	if statuses[200] != 1 || statuses[429] != 1 {
		t.Errorf("statuses %v, want one 200 and one 429", statuses)
	}
	// Both slots are free again: a request after them goes through.
	if r := e.dv("sales", "GET", "/businessunits?$select=name", nil); r.status != 200 {
		t.Errorf("after the others ended: %d %s", r.status, r.raw)
	}
}
