package timeline

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/dlq"
	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// Onboarding is everything known about one onboarding id.
type Onboarding struct {
	ID          string       `json:"onboardingId"`
	Email       string       `json:"email,omitempty"`
	Instance    string       `json:"instance,omitempty"`
	Steps       []Entry      `json:"steps"`
	DeadLetters []DeadLetter `json:"deadLetters"`
	State       State        `json:"state"`
	// Invitation is the guest's acceptance state from Graph; when it is
	// not known, InvitationNote says why.
	Invitation     *Invitation `json:"invitation,omitempty"`
	InvitationNote string      `json:"invitationNote,omitempty"`

	// userID is the Entra object id the invite step found, if it ran.
	userID string
}

// Entry is one event of the onboarding.
type Entry struct {
	// Step is joined, invite, license, role or notify: the step that
	// emitted the event. A dead letter put back by `guestflow dlq replay`
	// is "replay".
	Step string    `json:"step"`
	Type string    `json:"type,omitempty"`
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Attempts is how many deliveries of its input the step needed
	// (Guestflow-Attempts); 0 when unknown, as for joined.
	Attempts int    `json:"attempts,omitempty"`
	Outcome  string `json:"outcome"`
}

// DeadLetter is a dead letter of the onboarding still in GUESTFLOW_DLQ.
// Attempts is Guestflow-Attempts: the input's deliveries to the step.
type DeadLetter struct {
	Seq        uint64    `json:"seq"`
	Step       string    `json:"step"`
	Reason     string    `json:"reason"`
	Error      string    `json:"error"`
	FailedAt   time.Time `json:"failedAt"`
	Attempts   int       `json:"attempts"`
	HTTPStatus int       `json:"httpStatus,omitempty"`
	RequestID  string    `json:"requestId,omitempty"`
}

// State is where an onboarding stands.
type State struct {
	// Status is onboarded, waiting or dead-lettered.
	Status string `json:"status"`
	// Step is the step it waits at or was dead-lettered at.
	Step string `json:"step,omitempty"`
	// DeadLetters are the sequences to replay.
	DeadLetters []uint64 `json:"deadLetters,omitempty"`
	// Summary is the status line for people.
	Summary string `json:"summary"`
}

// Statuses of State.
const (
	Onboarded    = "onboarded"
	Waiting      = "waiting"
	DeadLettered = "dead-lettered"
)

// flow is the order of the steps; "joined" stands for the HR system.
var flow = []string{"joined", "invite", "license", "role", "notify"}

var stepOfType = map[string]string{
	events.TypeJoined: "joined", events.TypeInvited: "invite", events.TypeLicensed: "license",
	events.TypeRoleAssigned: "role", events.TypeOnboarded: "notify",
}

var stepOfSubject = map[string]string{
	events.SubjectJoined: "joined", events.SubjectInvited: "invite", events.SubjectLicensed: "license",
	events.SubjectRoleAssigned: "role", events.SubjectOnboarded: "notify",
}

// consumer is the step that consumes the events of a flow step.
func consumer(step string) string {
	if i := slices.Index(flow, step); i >= 0 && i+1 < len(flow) {
		return flow[i+1]
	}
	return ""
}

// Build groups records and dead letters by onboarding id and tells where
// each onboarding stands. Onboardings come in the order their first record
// (else dead letter) appears; records and dead letters in stream order.
func Build(recs []Record, letters []dlq.Letter) []Onboarding {
	var order []string
	byID := map[string]*Onboarding{}
	get := func(id string) *Onboarding {
		if o, ok := byID[id]; ok {
			return o
		}
		o := &Onboarding{ID: id, Steps: []Entry{}, DeadLetters: []DeadLetter{}}
		byID[id] = o
		order = append(order, id)
		return o
	}
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b Record) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, r := range recs {
		o := get(r.OnboardingID)
		o.Steps = append(o.Steps, entry(r))
		o.learn(identity{event: r.Event, err: r.DecodeErr, onboardingID: r.OnboardingID, email: r.Email})
	}
	letters = slices.Clone(letters)
	slices.SortFunc(letters, func(a, b dlq.Letter) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, l := range letters {
		id := letterIdentity(l)
		o := get(id.onboardingID)
		o.learn(id)
		o.DeadLetters = append(o.DeadLetters, DeadLetter{
			Seq: l.Seq, Step: l.Step, Reason: l.Reason, Error: l.Error, FailedAt: l.FailedAt.UTC(),
			Attempts: l.Attempts, HTTPStatus: l.HTTPStatus, RequestID: l.RequestID,
		})
	}
	out := make([]Onboarding, 0, len(order))
	for _, id := range order {
		o := byID[id]
		o.State = state(o)
		out = append(out, *o)
	}
	return out
}

// learn keeps what a message says about the person, unless an earlier
// one said it already (userID: the latest wins).
func (o *Onboarding) learn(id identity) {
	if o.Email == "" {
		o.Email = id.email
	}
	if id.err != nil {
		return
	}
	var d events.Onboarded
	if json.Unmarshal(id.event.Data(), &d) != nil {
		return
	}
	if o.Instance == "" {
		o.Instance = d.Instance
	}
	if d.UserID != "" {
		o.userID = d.UserID
	}
}

// entry describes one record.
func entry(r Record) Entry {
	e := Entry{Seq: r.Seq, Time: r.Stored.UTC(), Step: stepOfSubject[r.Subject]}
	if n, err := strconv.Atoi(first(r.Header, worker.HeaderAttempts)); err == nil {
		e.Attempts = n
	}
	if strings.HasPrefix(first(r.Header, jetstream.MsgIDHeader), "replay:") {
		e.Step = "replay"
		e.Outcome = "dead letter replayed to the " + consumer(stepOfSubject[r.Subject]) + " step"
		return e
	}
	if r.DecodeErr != nil {
		e.Outcome = "does not decode: " + r.DecodeErr.Error()
		return e
	}
	ev := r.Event
	e.Type = ev.Type()
	e.Step = stepOfType[ev.Type()]
	if !ev.Time().IsZero() {
		e.Time = ev.Time().UTC()
	}
	e.Outcome = outcome(ev.Type(), ev.Data())
	return e
}

// outcome says in a few words what an event reports.
func outcome(typ string, data []byte) string {
	var d events.Onboarded
	if err := json.Unmarshal(data, &d); err != nil {
		return "data does not decode: " + err.Error()
	}
	switch typ {
	case events.TypeJoined:
		return fmt.Sprintf("%s joined instance %s", strings.ToLower(strings.TrimSpace(d.Email)), d.Instance)
	case events.TypeInvited:
		s := "invited as " + d.UserPrincipalName
		switch {
		case d.UserType == "Member":
			s = "member of the tenant " + d.UserPrincipalName + ", not invited"
		case d.ExistingUser:
			s = "existing user " + d.UserPrincipalName + ", invited again"
		}
		if d.GroupID != "" {
			s += ", added to group " + d.GroupID
		}
		return s
	case events.TypeLicensed:
		return fmt.Sprintf("licensed %s (usage location %s)", d.SkuPartNumber, d.UsageLocation)
	case events.TypeRoleAssigned:
		names := make([]string, 0, len(d.AssignedRoles))
		for _, r := range d.AssignedRoles {
			names = append(names, r.Name)
		}
		s := "roles " + strings.Join(names, ", ") + " as systemuser " + d.SystemUserID
		if d.EmailUpdated {
			s += ", email address fixed"
		}
		return s
	case events.TypeOnboarded:
		if d.NotifiedAt == "" {
			return "onboarded without a mail (sendEmail false)"
		}
		return "notified at " + d.NotifiedAt
	}
	return typ
}

// state decides where an onboarding stands. It is onboarded once notify
// has emitted; otherwise it is dead-lettered at a step with a dead letter
// that has not emitted since (the step the flow has reached first), or
// waiting at the step after the last one that emitted.
func state(o *Onboarding) State {
	emitted := map[string]bool{}
	last := -1
	for _, e := range o.Steps {
		if i := slices.Index(flow, e.Step); i >= 0 {
			emitted[e.Step] = true
			last = max(last, i)
		}
	}
	if emitted["notify"] {
		s := State{Status: Onboarded, Summary: "onboarded"}
		if len(o.DeadLetters) > 0 {
			seqs := letterSeqs(o.DeadLetters)
			s.Summary += fmt.Sprintf("; dead letters left over from earlier attempts: remove them with guestflow dlq purge %s", join(seqs))
		}
		return s
	}
	next := ""
	if last >= 0 {
		next = consumer(flow[last])
	}
	var open []DeadLetter
	for _, d := range o.DeadLetters {
		if !emitted[d.Step] {
			open = append(open, d)
		}
	}
	if len(open) > 0 {
		at := open[len(open)-1].Step
		for _, d := range open {
			if d.Step == next {
				at = next
			}
		}
		var here []DeadLetter
		for _, d := range open {
			if d.Step == at {
				here = append(here, d)
			}
		}
		seqs := letterSeqs(here)
		s := State{Status: DeadLettered, Step: at, DeadLetters: seqs}
		if here[len(here)-1].Reason == failure.InvalidEvent {
			s.Summary = fmt.Sprintf("dead-lettered at %s: the event is invalid, so a replay fails again; publish a corrected one, then remove this with guestflow dlq purge %s", at, join(seqs))
		} else {
			s.Summary = fmt.Sprintf("dead-lettered at %s: replay with guestflow dlq replay %s", at, join(seqs))
		}
		return s
	}
	if next == "" {
		return State{Status: Waiting, Summary: "waiting: no event of this onboarding has been stored yet"}
	}
	return State{Status: Waiting, Step: next, Summary: "waiting at " + next}
}

func letterSeqs(ds []DeadLetter) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.Seq
	}
	return out
}

func join(seqs []uint64) string {
	s := make([]string, len(seqs))
	for i, n := range seqs {
		s[i] = strconv.FormatUint(n, 10)
	}
	return strings.Join(s, " ")
}

func first(h map[string][]string, name string) string {
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
