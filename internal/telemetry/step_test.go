package telemetry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/telemetry"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

const (
	inputTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	inputSpanID  = "00f067aa0ba902b7"
	inputTrace   = "00-" + inputTraceID + "-" + inputSpanID + "-01"
)

func recorder(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, tp
}

func joined(t *testing.T, id string, ext map[string]any) event.Event {
	t.Helper()
	ev, err := events.NewJoined(id, "hr/test", events.Joined{
		Email: "ana.silva@fabrikam.example", GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales",
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ext {
		ev.SetExtension(k, v)
	}
	return ev
}

// emit is a step that emits the next event as every step does, through
// events.Next, and remembers the span its context carried.
func emit(step, typ string, seen *trace.SpanContext) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
		*seen = trace.SpanContextFromContext(ctx)
		out, err := events.Next(in, step, typ, map[string]any{"email": "ana.silva@fabrikam.example", "userId": "u-1"}, time.Now())
		return &out, err
	})
}

func traceparent(ev *event.Event) string {
	s, _ := ev.Extensions()[events.ExtTraceparent].(string)
	return s
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, a := range s.Attributes() {
		m[a.Key] = a.Value
	}
	return m
}

// TestStepSpanContinuesTheInputsTrace: the step's span is the child of the
// input's traceparent, the step's context carries it, and the emitted event
// names it as its parent, so the next step's span is its child.
func TestStepSpanContinuesTheInputsTrace(t *testing.T) {
	rec, tp := recorder(t)
	var inviteCtx, licenseCtx trace.SpanContext
	invite := telemetry.Step(tp, "invite", events.SubjectJoined)(emit("invite", events.TypeInvited, &inviteCtx))
	license := telemetry.Step(tp, "license", events.SubjectInvited)(emit("license", events.TypeLicensed, &licenseCtx))

	in := joined(t, "onb-1", map[string]any{events.ExtTraceparent: inputTrace, events.ExtTracestate: "vendor=1"})
	invited, err := invite.Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	licensed, err := license.Handle(context.Background(), *invited)
	if err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	is, ls := spans[0], spans[1]
	if is.Name() != "guestflow.invite" || ls.Name() != "guestflow.license" {
		t.Fatalf("span names %q, %q", is.Name(), ls.Name())
	}
	for _, s := range spans {
		if got := s.SpanContext().TraceID().String(); got != inputTraceID {
			t.Errorf("%s: trace id %s, want the input's %s", s.Name(), got, inputTraceID)
		}
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("%s: kind %v, want consumer", s.Name(), s.SpanKind())
		}
	}
	if got := is.Parent().SpanID().String(); got != inputSpanID || !is.Parent().IsRemote() {
		t.Errorf("invite's parent %s (remote %v), want the input's span %s", got, is.Parent().IsRemote(), inputSpanID)
	}
	if ls.Parent().SpanID() != is.SpanContext().SpanID() {
		t.Errorf("license's parent %s, want invite's span %s", ls.Parent().SpanID(), is.SpanContext().SpanID())
	}
	if inviteCtx.SpanID() != is.SpanContext().SpanID() || licenseCtx.SpanID() != ls.SpanContext().SpanID() {
		t.Error("the step's context does not carry its span")
	}
	if want := "00-" + inputTraceID + "-" + is.SpanContext().SpanID().String() + "-01"; traceparent(invited) != want {
		t.Errorf("invited traceparent %s, want invite's span %s", traceparent(invited), want)
	}
	if want := "00-" + inputTraceID + "-" + ls.SpanContext().SpanID().String() + "-01"; traceparent(licensed) != want {
		t.Errorf("licensed traceparent %s, want license's span %s", traceparent(licensed), want)
	}
	if ts := licensed.Extensions()[events.ExtTracestate]; ts != "vendor=1" {
		t.Errorf("tracestate %v not carried", ts)
	}
	a := attrs(is)
	for k, want := range map[attribute.Key]string{
		telemetry.AttrStep: "invite", telemetry.AttrOnboardingID: "onb-1", telemetry.AttrEventID: "onb-1",
		telemetry.AttrEventType: events.TypeJoined, telemetry.AttrOutcome: "ok",
		telemetry.AttrNextEventID: invited.ID(), telemetry.AttrNextType: events.TypeInvited,
		"messaging.destination.name": events.SubjectJoined,
	} {
		if got := a[k].Emit(); got != want {
			t.Errorf("invite span %s = %q, want %q", k, got, want)
		}
	}
	if got := attrs(ls)[telemetry.AttrOnboardingID].AsString(); got != "onb-1" {
		t.Errorf("license span onboarding id %q, want onb-1", got)
	}
}

// TestStepStartsATraceWhenTheInputHasNone: a joined event without a
// traceparent (or with an invalid one) is traced under the trace its
// onboarding id derives, the one the log lines name, so that every retry
// of the invite step lands in it too; the events after it carry that
// trace, with the invite span as parent.
func TestStepStartsATraceWhenTheInputHasNone(t *testing.T) {
	for name, ext := range map[string]map[string]any{
		"none":    nil,
		"invalid": {events.ExtTraceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01", events.ExtTracestate: "vendor=1"},
	} {
		t.Run(name, func(t *testing.T) {
			rec, tp := recorder(t)
			var seen trace.SpanContext
			in := joined(t, "onb-2", ext)
			invite := telemetry.Step(tp, "invite", events.SubjectJoined)(emit("invite", events.TypeInvited, &seen))
			invited, err := invite.Handle(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			s := rec.Ended()[0]
			if got, want := s.SpanContext().TraceID().String(), events.TraceID(in); got != want {
				t.Errorf("span in trace %s, want the onboarding's derived trace %s", got, want)
			}
			if !s.Parent().IsRemote() || s.Parent().TraceID() != s.SpanContext().TraceID() {
				t.Errorf("span parent %v, want the derived remote parent", s.Parent())
			}
			again, err := invite.Handle(context.Background(), in)
			if err != nil || again == nil {
				t.Fatal(err)
			}
			if r := rec.Ended()[1]; r.SpanContext().TraceID() != s.SpanContext().TraceID() {
				t.Errorf("a retry is traced in %s, the first attempt in %s", r.SpanContext().TraceID(), s.SpanContext().TraceID())
			}
			want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
			if traceparent(invited) != want {
				t.Errorf("invited traceparent %s, want the new trace's %s", traceparent(invited), want)
			}
			if _, ok := invited.Extensions()[events.ExtTracestate]; ok {
				t.Error("the tracestate of an invalid traceparent was carried into a new trace")
			}
		})
	}
}

// TestStepWithoutTracingKeepsTheDerivedTraceparent: with OpenTelemetry's
// no-op provider (tracing off) the emitted event keeps what events.Next
// gave it, a child of the input's trace.
func TestStepWithoutTracingKeepsTheDerivedTraceparent(t *testing.T) {
	var seen trace.SpanContext
	in := joined(t, "onb-3", map[string]any{events.ExtTraceparent: inputTrace})
	bare, err := emit("invite", events.TypeInvited, &seen).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	traced, err := telemetry.Step(noop.NewTracerProvider(), "invite", events.SubjectJoined)(emit("invite", events.TypeInvited, &seen)).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if traceparent(traced) != traceparent(bare) || traceparent(traced) == inputTrace {
		t.Errorf("traceparent %s, want events.Next's %s", traceparent(traced), traceparent(bare))
	}
}

// TestStepSpanRecordsTheFailure: a failed step's span has an error status
// naming the reason the runtime will act on.
func TestStepSpanRecordsTheFailure(t *testing.T) {
	rec, tp := recorder(t)
	h := telemetry.Step(tp, "license", events.SubjectInvited)(worker.HandlerFunc(func(context.Context, event.Event) (*event.Event, error) {
		return nil, failure.Permanent(failure.UnknownSKU, errors.New("no such SKU"))
	}))
	if _, err := h.Handle(context.Background(), joined(t, "onb-4", nil)); err == nil {
		t.Fatal("the error was swallowed")
	}
	s := rec.Ended()[0]
	if s.Status().Code != codes.Error || s.Status().Description != failure.UnknownSKU {
		t.Errorf("status %v, want error %s", s.Status(), failure.UnknownSKU)
	}
	a := attrs(s)
	if a[telemetry.AttrOutcome].AsString() != "failed" || a[telemetry.AttrReason].AsString() != failure.UnknownSKU || a[telemetry.AttrRetryable].AsBool() {
		t.Errorf("attributes %v", a)
	}
	if len(s.Events()) != 1 || s.Events()[0].Name != "exception" {
		t.Errorf("events %v, want the error recorded", s.Events())
	}
}

// TestStepSpanEndsWhenTheStepPanics: the runtime recovers a panic; the span
// must end anyway, as a failure.
func TestStepSpanEndsWhenTheStepPanics(t *testing.T) {
	rec, tp := recorder(t)
	h := telemetry.Step(tp, "role", events.SubjectLicensed)(worker.HandlerFunc(func(context.Context, event.Event) (*event.Event, error) {
		panic("boom")
	}))
	func() {
		defer func() { _ = recover() }()
		_, _ = h.Handle(context.Background(), joined(t, "onb-5", nil))
	}()
	if n := len(rec.Ended()); n != 1 {
		t.Fatalf("%d spans ended, want 1", n)
	}
	if s := rec.Ended()[0]; s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, "panic") {
		t.Errorf("status %v", s.Status())
	}
}
