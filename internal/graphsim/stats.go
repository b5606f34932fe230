package graphsim

import (
	"strconv"
	"sync"
)

// Stats is GET /_sim/stats (docs/emulator.md).
type Stats struct {
	// Requests counts Graph and Dataverse API calls, not token or /_sim calls.
	Requests int            `json:"requests"`
	ByStatus map[string]int `json:"byStatus"`
	// Writes counts successful Graph identity writes, the ones WriteLimit
	// budgets; Invitations successful (201) invitation calls.
	Writes      int `json:"writes"`
	Invitations int `json:"invitations"`
	// Throttled counts 429s from budgets, Faults injected failures.
	Throttled int `json:"throttled"`
	Faults    int `json:"faults"`
	// Calls maps "<METHOD> <route>" to status to count.
	Calls map[string]map[string]int `json:"calls"`

	// Scopes are Graph's throttling scopes by key: ru, write, tenantWrite,
	// invite, mail, mailConcurrency (docs/emulator.md). Every scope is
	// listed, limited or not.
	Scopes map[string]ScopeStats `json:"scopes"`
	// ResourceUnits counts the resource units admitted identity and access
	// calls spent (what x-ms-resource-unit said).
	ResourceUnits int `json:"resourceUnits"`
	// NeighbourWrites counts the neighbour's tenant-wide writes that fitted
	// the tenant's budget, NeighbourThrottled those that did not.
	NeighbourWrites    int `json:"neighbourWrites"`
	NeighbourThrottled int `json:"neighbourThrottled"`
}

// ScopeStats counts one throttling scope's decisions on API calls (the
// neighbour's writes are counted apart). Admitted counts calls the scope
// charged, which is every call that spends it once all its scopes had room;
// Spent their units (resource units for ru, requests otherwise);
// Throttled the 429s this scope caused. Limit is the scope's N/DURATION,
// "" when unlimited; mailConcurrency's is the number at once.
type ScopeStats struct {
	Limit     string `json:"limit"`
	Admitted  int    `json:"admitted"`
	Spent     int    `json:"spent"`
	Throttled int    `json:"throttled"`
}

// scopeCount is one scope's counters.
type scopeCount struct{ admitted, spent, throttled int }

// stats is the emulator's counters behind their own lock, so counting never
// waits for the state lock.
type stats struct {
	mu                            sync.Mutex
	requests, writes, invitations int
	throttled, faults             int
	byStatus                      map[int]int
	calls                         map[string]map[int]int

	scopes                              [numScopes]scopeCount
	neighbourWrites, neighbourThrottled int
}

func (st *stats) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.requests, st.writes, st.invitations, st.throttled, st.faults = 0, 0, 0, 0, 0
	st.byStatus = map[int]int{}
	st.calls = map[string]map[int]int{}
	st.scopes = [numScopes]scopeCount{}
	st.neighbourWrites, st.neighbourThrottled = 0, 0
}

func (st *stats) count(f func(*stats)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f(st)
}

// record counts one finished API call under its route key.
func (st *stats) record(key string, status int, rt *route, methodOK bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.requests++
	st.byStatus[status]++
	if st.calls[key] == nil {
		st.calls[key] = map[int]int{}
	}
	st.calls[key][status]++
	if rt == nil || !methodOK || status < 200 || status > 299 {
		return
	}
	if rt.budget != noBudget {
		st.writes++
	}
	if rt.budget == inviteBudget && status == 201 {
		st.invitations++
	}
}

func (st *stats) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := Stats{
		Requests: st.requests, Writes: st.writes, Invitations: st.invitations,
		Throttled: st.throttled, Faults: st.faults,
		ByStatus: map[string]int{}, Calls: map[string]map[string]int{},
		Scopes:          map[string]ScopeStats{},
		ResourceUnits:   st.scopes[scopeRU].spent,
		NeighbourWrites: st.neighbourWrites, NeighbourThrottled: st.neighbourThrottled,
	}
	for id, c := range st.scopes {
		out.Scopes[scopes[id].key] = ScopeStats{Admitted: c.admitted, Spent: c.spent, Throttled: c.throttled}
	}
	for code, n := range st.byStatus {
		out.ByStatus[strconv.Itoa(code)] = n
	}
	for key, m := range st.calls {
		out.Calls[key] = map[string]int{}
		for code, n := range m {
			out.Calls[key][strconv.Itoa(code)] = n
		}
	}
	return out
}
