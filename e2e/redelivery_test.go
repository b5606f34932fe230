package e2e

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// crashAfterSideEffects lets the step do all its work once and then fails
// as a worker would that died before publishing and acking: the input is
// redelivered and the step runs again on a world it already changed.
func crashAfterSideEffects(crashed *atomic.Bool) worker.Middleware {
	return func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
			out, err := next.Handle(ctx, in)
			if err == nil && crashed.CompareAndSwap(false, true) {
				return nil, errors.New("simulated crash after the side effects, before the ack")
			}
			return out, err
		})
	}
}

// sideEffects are the counts the emulator keeps of what must happen once.
type sideEffects struct {
	invitations, groupAdds, licenses, roles, mails, emailFixes int
}

func (s *system) sideEffects() sideEffects {
	return sideEffects{
		invitations: s.sim.Stats().Invitations,
		groupAdds:   s.calls("POST /v1.0/groups/{id}/members/$ref", 204),
		licenses:    s.calls("POST /v1.0/users/{id}/assignLicense", 200),
		roles:       s.calls("POST /instances/{instance}/api/data/v9.2/systemusers({id})/systemuserroles_association/$ref", 204),
		mails:       len(s.sim.Mails()),
		emailFixes:  s.calls("PATCH /instances/{instance}/api/data/v9.2/systemusers({id})", 204),
	}
}

// once is what one onboarding into sales and one into legacy cause.
var once = sideEffects{invitations: 2, groupAdds: 1, licenses: 2, roles: 2, mails: 2, emailFixes: 1}

func TestCrashAfterSideEffectsRepeatsNone(t *testing.T) {
	for _, step := range []string{"invite", "license", "role", "notify"} {
		t.Run(step, func(t *testing.T) {
			var crashed atomic.Bool
			s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond}, func(su *setup) {
				su.wrap[step] = crashAfterSideEffects(&crashed)
			})
			s.publishJoined("crash-sales", sales("ana@fabrikam.com"))
			legacy := sales("kenji@adatum.example")
			legacy.Instance = "legacy"
			s.publishJoined("crash-legacy", legacy)
			s.await("crash-sales", "crash-legacy")
			s.settle()
			if !crashed.Load() {
				t.Fatal("the crash was never simulated")
			}
			if got := s.sideEffects(); got != once {
				t.Errorf("side effects %+v, want %+v", got, once)
			}
			if n := s.count(worker.Stream, events.SubjectOnboarded); n != 2 {
				t.Errorf("%d onboarded events, want 2", n)
			}
		})
	}
}

// TestRedeliveredInputsRepeatNothing stores every event of two finished
// onboardings a second time under a new message id, so each step receives
// its input again, and checks that nothing happens twice.
func TestRedeliveredInputsRepeatNothing(t *testing.T) {
	s := start(t, graphsim.Options{SyncDelay: 100 * time.Millisecond})
	s.publishJoined("again-sales", sales("ana@fabrikam.com"))
	legacy := sales("kenji@adatum.example")
	legacy.Instance = "legacy"
	s.publishJoined("again-legacy", legacy)
	s.await("again-sales", "again-legacy")
	s.settle()
	before := s.sideEffects()
	if before != once {
		t.Fatalf("side effects of the first run %+v, want %+v", before, once)
	}

	ctx := context.Background()
	stream, err := s.js.Stream(ctx, worker.Stream)
	if err != nil {
		t.Fatal(err)
	}
	last := stream.CachedInfo().State.LastSeq
	for seq := uint64(1); seq <= last; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == events.SubjectOnboarded {
			continue
		}
		h := nats.Header{}
		for k, v := range m.Header {
			if k != nats.MsgIdHdr {
				h[k] = v
			}
		}
		// A new message id, so that the broker stores it and the step
		// really gets it again, as after a lost ack or a replay.
		if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Header: h, Data: m.Data},
			jetstream.WithMsgID("again:"+m.Header.Get(nats.MsgIdHdr))); err != nil {
			t.Fatal(err)
		}
	}
	s.settle()
	if got := s.sideEffects(); got != once {
		t.Errorf("side effects after redelivering every input %+v, want %+v", got, once)
	}
	if n := s.count(worker.Stream, events.SubjectOnboarded); n != 2 {
		t.Errorf("%d onboarded events after redelivery, want 2 (the output ids are deterministic)", n)
	}
}
