package throttle

import (
	"net/http"
	"strings"

	"github.com/guestflow/guestflow/internal/metrics"
)

// Scope is one of the tenant's Graph budgets the Gate paces.
//
// Graph's identity and access service budgets writes per app and tenant
// and, separately, per tenant for all apps; every guestflow write spends
// both, so one pacer (Writes) finds whichever of the two is tighter — the
// 429's x-ms-throttle-scope says which, and the answer is the same: fewer
// writes.
type Scope int

// The scopes. ScopeUnknown is a 429 that names no budget guestflow knows.
const (
	ScopeUnknown Scope = iota
	// ScopeWrites: identity writes (invitations, user updates, license
	// assignments, group member adds), Microsoft's 3,000 per 150 s per
	// app and tenant and 18,000 per 5 minutes per tenant.
	ScopeWrites
	// ScopeInvitations: the invitation manager's 150 per 5 s per tenant.
	ScopeInvitations
	// ScopeResourceUnits: identity and access resource units, reads
	// included, 3,500 to 8,000 per 10 s per app and tenant by the
	// tenant's size; a call's cost is its x-ms-resource-unit.
	ScopeResourceUnits
	// ScopeMail: Outlook's sendMail, 10,000 per 10 minutes per app and
	// mailbox, and at most 4 at once.
	ScopeMail
	numScopes
)

// scopeInfo is how a scope is named: its bucket keys, its label in
// guestflow_throttle_wait_seconds_total, its name in messages, and
// Microsoft's published rate (per second), from which the adaptive pacer
// starts.
type scopeInfo struct {
	key, pause, metric, what string
	published                float64
}

var scopeInfos = [numScopes]scopeInfo{
	ScopeWrites: {keyWrites, keyPause, metrics.ScopeWrite, "identity write", 3000.0 / 150},
	ScopeInvitations: {keyInvites, keyPause + ".invitations", metrics.ScopeInvitation, "invitation",
		150.0 / 5},
	ScopeResourceUnits: {keyResourceUnits, keyPause + ".ru", metrics.ScopeResourceUnit, "resource unit",
		3500.0 / 10},
	ScopeMail: {keyMail, keyPause + ".mail", metrics.ScopeMail, "mail", 10000.0 / 600},
}

// String is the scope's name in messages.
func (s Scope) String() string {
	if s <= ScopeUnknown || s >= numScopes {
		return "unknown"
	}
	return scopeInfos[s].what
}

// Kind is what a Graph request costs.
type Kind int

// Request kinds.
const (
	// Free spends no Graph budget guestflow paces (a call outside
	// Graph's identity and Outlook services).
	Free Kind = iota
	// Write is an identity write: resource units and a write.
	Write
	// Invitation is a write that also counts against the invitation
	// budget.
	Invitation
	// Read is any other identity and access call: resource units only.
	Read
	// SendMail is an Outlook sendMail: the mail budget, and one of the
	// four calls a mailbox takes at once.
	SendMail
	numKinds
)

// charges lists the scopes a request of kind k spends, the most general
// first: a 429 without a scope of its own is blamed on the last (see
// blame).
var charges = [numKinds][]Scope{
	Read:       {ScopeResourceUnits},
	Write:      {ScopeResourceUnits, ScopeWrites},
	Invitation: {ScopeResourceUnits, ScopeWrites, ScopeInvitations},
	SendMail:   {ScopeMail},
}

// KindOf says what a Graph request costs: the identity writes guestflow
// makes (invitations, user updates, license assignments, group member
// adds), sendMail (Outlook's budget), any other call below /v1.0/ (an
// identity read: guestflow calls nothing else there), or nothing.
func KindOf(method, path string) Kind {
	i := strings.Index(path, "/v1.0/")
	if i < 0 {
		return Free
	}
	segs := strings.Split(path[i+len("/v1.0/"):], "/")
	// route says whether the path is parts, "" standing for an id (any
	// segment but an empty one): "users", "", "assignLicense" is
	// /users/{id}/assignLicense. (Not regular expressions: every Graph
	// call is asked.)
	route := func(parts ...string) bool {
		if len(segs) != len(parts) {
			return false
		}
		for j, p := range parts {
			if p == "" && segs[j] == "" || p != "" && segs[j] != p {
				return false
			}
		}
		return true
	}
	switch {
	case method == http.MethodPost && route("invitations"):
		return Invitation
	case method == http.MethodPatch && route("users", ""),
		method == http.MethodPost && (route("users", "", "assignLicense") || route("groups", "", "members", "$ref")):
		return Write
	case method == http.MethodPost && route("users", "", "sendMail"):
		return SendMail
	}
	return Read
}

// scopeOfKey is the scope whose pacing state is kept under key.
func scopeOfKey(key string) (Scope, bool) {
	for s := ScopeWrites; s < numScopes; s++ {
		if scopeInfos[s].key == key {
			return s, true
		}
	}
	return ScopeUnknown, false
}
