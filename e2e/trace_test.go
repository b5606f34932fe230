package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/guestflow/guestflow/internal/app"
	"github.com/guestflow/guestflow/internal/graphsim"
	"github.com/guestflow/guestflow/internal/telemetry"
	"github.com/guestflow/guestflow/pkg/events"
)

// TestOneOnboardingIsOneTrace traces one onboarding through the whole
// system, as a worker with OTEL_EXPORTER_OTLP_ENDPOINT set does (the
// global provider, kiota's spans dropped): one trace, the joined event's;
// a span per step, each the child of the step before (invite: of the
// joined event's span); every Graph, Dataverse and token call a client
// span beneath a step's span, named without ids.
func TestOneOnboardingIsOneTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	telemetry.Install(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
		_ = tp.Shutdown(context.Background())
	})
	s := start(t, graphsim.Options{SyncDelay: 200 * time.Millisecond})

	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	const id = "hr-trace-1"
	s.publish(nats.Header{}, joinedBody(t, events.Joined{
		Email: "ana.silva@fabrikam.com", GivenName: "Ana", Surname: "Silva", UsageLocation: "PT", Instance: "sales",
	}, id, map[string]string{events.ExtTraceparent: "00-" + traceID + "-" + parentID + "-01"}))
	done := s.await(id)
	s.settle()

	spans := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	traces := map[string]int{}
	for _, sp := range spans {
		byID[sp.SpanContext().SpanID()] = sp
		traces[sp.SpanContext().TraceID().String()]++
	}
	if len(traces) != 1 || traces[traceID] == 0 {
		t.Fatalf("spans in traces %v, want all %d in the joined event's %s", traces, len(spans), traceID)
	}

	// The step spans that emitted the next event, in flow order: each the
	// parent of the next one.
	parent := parentID
	for _, step := range app.StepNames {
		var ok sdktrace.ReadOnlySpan
		for _, sp := range spans {
			if sp.Name() == telemetry.StepSpanName(step) && sp.Parent().SpanID().String() == parent && attr(sp, telemetry.AttrOutcome) == "ok" {
				ok = sp
			}
		}
		if ok == nil {
			t.Fatalf("no successful span %s with parent %s among:\n%s", telemetry.StepSpanName(step), parent, describe(spans))
		}
		if attr(ok, telemetry.AttrOnboardingID) != id || attr(ok, telemetry.AttrStep) != step || attr(ok, telemetry.AttrEventID) == "" {
			t.Errorf("%s attributes: %v", ok.Name(), ok.Attributes())
		}
		parent = ok.SpanContext().SpanID().String()
	}
	// The onboarded event names notify's span: a consumer of it would
	// continue the same trace.
	if tp, _ := done[id].Extensions()[events.ExtTraceparent].(string); tp != "00-"+traceID+"-"+parent+"-01" {
		t.Errorf("onboarded traceparent %s, want notify's span %s", tp, parent)
	}

	// Every other span is a client call beneath a step's span.
	ids := regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-|@|\([^{)]`)
	calls := map[string]int{}
	for _, sp := range spans {
		if strings.HasPrefix(sp.Name(), "guestflow.") {
			continue
		}
		p, ok := byID[sp.Parent().SpanID()]
		if sp.SpanKind() != trace.SpanKindClient || !ok || !strings.HasPrefix(p.Name(), "guestflow.") {
			t.Errorf("span %q (kind %v) is not a client call beneath a step", sp.Name(), sp.SpanKind())
			continue
		}
		if ids.MatchString(sp.Name()) {
			t.Errorf("span name %q holds an id", sp.Name())
		}
		if u := attr(sp, "url.full"); strings.Contains(u, "?") {
			t.Errorf("url.full %q keeps its query", u)
		}
		calls[attr(p, telemetry.AttrStep)]++
	}
	for _, step := range app.StepNames {
		if calls[step] == 0 {
			t.Errorf("no client span beneath %s; calls per step %v", step, calls)
		}
	}
	t.Logf("%d spans, client calls per step %v:\n%s", len(spans), calls, describe(spans))
}

func attr(sp sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, a := range sp.Attributes() {
		if a.Key == key {
			return a.Value.Emit()
		}
	}
	return ""
}

func describe(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for _, sp := range spans {
		b.WriteString(sp.Name() + " parent " + sp.Parent().SpanID().String() + " id " + sp.SpanContext().SpanID().String() + " outcome " + attr(sp, telemetry.AttrOutcome) + "\n")
	}
	return b.String()
}
