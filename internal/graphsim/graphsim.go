// Package graphsim is guestflow's dev emulator (docs/emulator.md): a real HTTPS
// server that issues Entra ID tokens and answers the Microsoft Graph v1.0 and
// Dataverse Web API calls guestflow makes, with state, Microsoft's status
// codes, error bodies and preconditions, budgets that answer 429 with
// Retry-After, and injected faults.
//
// It exists so that the real azidentity, msgraph-sdk-go and Dataverse client
// code paths run without a Microsoft tenant. It is not a mock: it validates
// every request as Microsoft would instead of trusting the client, so a
// client bug fails here first and not in production.
package graphsim

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the one tenant and app the emulator accepts (docs/emulator.md).
const (
	DefaultTenantID     = "6a1b2c3d-0000-4000-8000-00000000d365"
	DefaultClientID     = "guestflow-dev"
	DefaultClientSecret = "guestflow-dev-secret"
	DefaultSyncDelay    = 2 * time.Second
	DefaultSeats        = 1000
)

// Options configure a Sim. The zero value is a working emulator.
type Options struct {
	// TenantID, ClientID and ClientSecret are the one tenant and app whose
	// client-credentials token requests succeed.
	TenantID, ClientID, ClientSecret string

	// WriteLimit budgets Graph identity writes (invitations, user updates,
	// license assignments, group member adds) per app and tenant
	// (Microsoft's: MicrosoftWriteLimit); TenantWriteLimit the same writes
	// per tenant across all apps, the neighbour's included
	// (MicrosoftTenantWriteLimit); InviteLimit invitations per tenant
	// (MicrosoftInviteLimit). An invitation counts against all three. Zero
	// is unlimited.
	WriteLimit, TenantWriteLimit, InviteLimit Limit

	// ResourceUnitLimit budgets the resource units of every identity and
	// access call per app and tenant, at Microsoft's cost per call
	// (Microsoft's: MicrosoftResourceUnitLimitS, M or L by tenant size).
	// Zero is unlimited.
	ResourceUnitLimit Limit

	// MailLimit budgets Outlook calls (sendMail) per app and mailbox
	// (Microsoft's: MicrosoftMailLimit); when set, each mailbox also takes
	// at most MicrosoftMailConcurrency requests at once. Zero is unlimited.
	MailLimit Limit

	// Neighbour is another app of the tenant spending tenant-wide writes
	// on this schedule while the server runs (Start to Close). Empty is no
	// neighbour.
	Neighbour Schedule

	// DataverseLimit and DataverseConcurrency are Dataverse's service
	// protection limits per instance: requests per sliding window, and
	// requests at once (MicrosoftDataverseLimit and
	// MicrosoftDataverseConcurrency are Microsoft's). Zero is unlimited.
	DataverseLimit       Limit
	DataverseConcurrency int

	// FaultRate is the share (0–1) of Graph and Dataverse API requests
	// answered 429, 500, 503 or 504 before anything else happens.
	FaultRate float64

	// DropRate is the share (0–1) of Graph and Dataverse API requests whose
	// connection is dropped without an answer, before anything else
	// happens. Counted as faults.
	DropRate float64

	// Latency is added to every Graph and Dataverse API call.
	Latency time.Duration

	// SyncDelay is how long Dataverse takes to create a systemuser once the
	// Entra user qualifies. Zero means DefaultSyncDelay; a negative value
	// means no delay at all (so `--sync-delay 0` maps to -1).
	SyncDelay time.Duration

	// Seats is the number of enabled units of every SKU. Zero means
	// DefaultSeats; a negative value means no seats at all.
	Seats int

	// ReplicationLag makes a user created less than this long ago invisible
	// to group member adds (400) and to PATCH and assignLicense (404), as
	// Entra's directory replication does. Zero disables it.
	ReplicationLag time.Duration

	// Deny lists routes, spelled as /_sim/stats spells them ("POST
	// /v1.0/users/{id}/sendMail"), that the app is not allowed to call:
	// they answer 403 as each service does for a missing permission
	// (Graph's Authorization_RequestDenied, Dataverse's missing privilege,
	// the admin API's AuthorizationFailed), after authentication.
	Deny []string

	// Logf, when set, receives one line per request.
	Logf func(format string, args ...any)
}

// Sim is one emulated tenant. Its methods are safe for concurrent use.
type Sim struct {
	opts      Options
	syncDelay time.Duration
	seats     int

	caPEM   []byte
	pool    *x509.CertPool
	tlsCert tls.Certificate
	key     []byte // signs tokens; random per process, so tokens cannot be forged or outlive the emulator

	instances  map[string]*instance // immutable after New
	handler    http.Handler
	budgets    *budgets
	protection *protection
	neighbour  *neighbour // nil without a schedule
	stats      stats
	issued     issuedTokens
	skew       atomic.Int64 // added to the wall clock; lets tests move time forward

	mu sync.Mutex // guards st
	st *state

	srvMu sync.Mutex
	srv   *http.Server
	url   string
}

// New builds an emulator with its seeded tenant and a fresh ECDSA CA and
// leaf certificate for 127.0.0.1, ::1 and localhost. It does not listen;
// call Start, or mount Handler yourself.
func New(opts Options) (*Sim, error) {
	if opts.TenantID == "" {
		opts.TenantID = DefaultTenantID
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	var errs []error
	if opts.DropRate < 0 || opts.DropRate > 1 {
		errs = append(errs, fmt.Errorf("graphsim: drop rate %v is outside 0–1", opts.DropRate))
	}
	if opts.FaultRate < 0 || opts.FaultRate > 1 {
		errs = append(errs, fmt.Errorf("graphsim: fault rate %v is outside 0–1", opts.FaultRate))
	}
	if opts.Latency < 0 {
		errs = append(errs, fmt.Errorf("graphsim: latency %v is negative", opts.Latency))
	}
	if opts.ReplicationLag < 0 {
		errs = append(errs, fmt.Errorf("graphsim: replication lag %v is negative", opts.ReplicationLag))
	}
	for name, l := range map[string]Limit{
		"write limit": opts.WriteLimit, "tenant write limit": opts.TenantWriteLimit, "invite limit": opts.InviteLimit,
		"resource unit limit": opts.ResourceUnitLimit, "mail limit": opts.MailLimit,
	} {
		if l.N < 0 || l.Per < 0 {
			errs = append(errs, fmt.Errorf("graphsim: %s %v is negative", name, l))
		}
	}
	for i, st := range opts.Neighbour {
		if st.PerSecond < 0 || st.At < 0 || i == 0 && st.At != 0 || i > 0 && st.At <= opts.Neighbour[i-1].At {
			errs = append(errs, fmt.Errorf("graphsim: neighbour schedule %v: rates must not be negative and offsets must start at 0 and increase", opts.Neighbour))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	s := &Sim{opts: opts, syncDelay: opts.SyncDelay, seats: opts.Seats}
	switch {
	case s.syncDelay == 0:
		s.syncDelay = DefaultSyncDelay
	case s.syncDelay < 0:
		s.syncDelay = 0
	}
	switch {
	case s.seats == 0:
		s.seats = DefaultSeats
	case s.seats < 0:
		s.seats = 0
	}
	var err error
	if s.caPEM, s.pool, s.tlsCert, err = newCertificates(); err != nil {
		return nil, fmt.Errorf("graphsim: certificates: %w", err)
	}
	s.key = make([]byte, 32)
	if _, err := rand.Read(s.key); err != nil {
		return nil, fmt.Errorf("graphsim: token key: %w", err)
	}
	s.instances = seedInstances()
	s.st = s.seedState()
	var limits [numScopes]Limit
	limits[scopeRU], limits[scopeWrite], limits[scopeTenantWrite] = opts.ResourceUnitLimit, opts.WriteLimit, opts.TenantWriteLimit
	limits[scopeInvite], limits[scopeMail] = opts.InviteLimit, opts.MailLimit
	mailConcurrency := 0
	if !opts.MailLimit.Unlimited() {
		mailConcurrency = MicrosoftMailConcurrency
	}
	s.budgets = newBudgets(limits, mailConcurrency)
	if len(opts.Neighbour) > 0 {
		s.neighbour = &neighbour{sched: opts.Neighbour}
	}
	s.protection = newProtection(opts.DataverseLimit, opts.DataverseConcurrency)
	s.stats.reset()
	s.handler = s.routes()
	return s, nil
}

// Handler serves everything: tokens, Graph, Dataverse and /_sim. Mounted
// outside Start, the emulator names itself after the request's Host.
func (s *Sim) Handler() http.Handler { return s.handler }

// CAPEM returns the CA certificate that signed the server certificate.
func (s *Sim) CAPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CertPool returns a pool holding only the emulator's CA.
func (s *Sim) CertPool() *x509.CertPool { return s.pool.Clone() }

// now is the emulator's clock: the wall clock plus whatever a test skipped.
func (s *Sim) now() time.Time {
	return time.Now().UTC().Add(time.Duration(s.skew.Load()))
}

// advance moves the emulator's clock forward, so tests of sync delays,
// windows and token expiry need not sleep.
func (s *Sim) advance(d time.Duration) { s.skew.Add(int64(d)) }
