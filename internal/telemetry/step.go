package telemetry

import (
	"context"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/guestflow/guestflow/internal/failure"
	"github.com/guestflow/guestflow/internal/worker"
	"github.com/guestflow/guestflow/pkg/events"
)

// Span attributes of a step's span (docs/health-and-traces.md).
const (
	AttrStep         = attribute.Key("guestflow.step")
	AttrOnboardingID = attribute.Key("guestflow.onboarding_id")
	AttrOutcome      = attribute.Key("guestflow.outcome")
	AttrReason       = attribute.Key("guestflow.failure.reason")
	AttrRetryable    = attribute.Key("guestflow.failure.retryable")
	AttrEventID      = attribute.Key("cloudevents.event_id")
	AttrEventType    = attribute.Key("cloudevents.event_type")
	AttrNextEventID  = attribute.Key("guestflow.next.event_id")
	AttrNextType     = attribute.Key("guestflow.next.event_type")
)

// maxAttr bounds the attributes whose length the event's publisher chose.
const maxAttr = 256

// StepSpanName is the name of step's span, e.g. "guestflow.invite".
func StepSpanName(step string) string { return "guestflow." + step }

// Step returns a middleware that traces each call of the step named step,
// which consumes subject: a consumer span named StepSpanName(step), the child
// of the trace context in the input's traceparent extension (when it has
// none, of events.DerivedTraceparent: the trace the logs name), carried in the step's context so that the calls it
// makes are its children. The event the step emits gets the span's trace
// context as its traceparent, so the next step's span is this one's
// child and a whole onboarding is one trace. tp nil means the global
// provider; with OpenTelemetry's no-op provider the event keeps the
// traceparent events.Next gave it.
//
// The span ends when the step returns, before the runtime publishes and
// acks: it times the step, not the broker.
func Step(tp trace.TracerProvider, step, subject string) worker.Middleware {
	tracer := provider(tp).Tracer(scope)
	name := StepSpanName(step)
	return func(h worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, in event.Event) (*event.Event, error) {
			pctx := parent(ctx, in)
			psc := trace.SpanContextFromContext(pctx)
			ctx, span := tracer.Start(pctx, name, trace.WithSpanKind(trace.SpanKindConsumer))
			if span.IsRecording() {
				span.SetAttributes(
					AttrStep.String(step),
					AttrOnboardingID.String(clip(events.OnboardingID(in))),
					AttrEventID.String(clip(in.ID())),
					AttrEventType.String(in.Type()),
					attribute.String("messaging.system", "nats"),
					attribute.String("messaging.destination.name", subject),
					attribute.String("messaging.operation.type", "process"),
				)
			}
			returned := false
			defer func() {
				if !returned {
					// The runtime recovers the panic and counts a failed
					// attempt; the span says so too.
					span.SetAttributes(AttrOutcome.String("failed"))
					span.SetStatus(codes.Error, "step panicked")
					span.End()
				}
			}()
			next, err := h.Handle(ctx, in)
			returned = true
			end(span, next, err)
			if next != nil {
				carry(ctx, span, psc, next)
			}
			return next, err
		})
	}
}

// parent is ctx with the remote span context of in's traceparent and
// tracestate extensions, when they hold a valid one.
func parent(ctx context.Context, in event.Event) context.Context {
	c := propagation.MapCarrier{}
	for _, k := range []string{events.ExtTraceparent, events.ExtTracestate} {
		if s, err := types.ToString(in.Extensions()[k]); err == nil && s != "" {
			c[k] = s
		}
	}
	// Always W3C: the CloudEvents tracing extension is W3C trace
	// context, whatever the process's propagator for HTTP.
	w3c := propagation.TraceContext{}
	if len(c) > 0 {
		if pctx := w3c.Extract(ctx, c); trace.SpanContextFromContext(pctx).IsValid() {
			return pctx
		}
	}
	// No usable traceparent: the trace the logs already name (derived
	// from the onboarding id), so that retries of this step join it too.
	return w3c.Extract(ctx, propagation.MapCarrier{events.ExtTraceparent: events.DerivedTraceparent(in)})
}

// end records the step's outcome and ends span.
func end(span trace.Span, next *event.Event, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	if err != nil {
		v := failure.Classify(err)
		span.SetAttributes(AttrOutcome.String("failed"), AttrReason.String(v.Reason), AttrRetryable.Bool(v.Retryable))
		span.RecordError(err)
		span.SetStatus(codes.Error, v.Reason)
		return
	}
	span.SetAttributes(AttrOutcome.String("ok"))
	if next != nil {
		span.SetAttributes(AttrNextEventID.String(next.ID()), AttrNextType.String(next.Type()))
	}
}

// carry gives next the trace context of span, unless span is not a span
// of its own: OpenTelemetry's no-op provider hands the parent's context
// back (or none), and then next keeps what events.Next derived.
func carry(ctx context.Context, span trace.Span, psc trace.SpanContext, next *event.Event) {
	sc := span.SpanContext()
	if !sc.IsValid() || sc.SpanID() == psc.SpanID() {
		return
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	next.SetExtension(events.ExtTraceparent, c[events.ExtTraceparent])
	if ts := c[events.ExtTracestate]; ts != "" {
		next.SetExtension(events.ExtTracestate, ts)
	} else {
		next.SetExtension(events.ExtTracestate, nil)
	}
}

// clip bounds s to maxAttr bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= maxAttr {
		return s
	}
	s = s[:maxAttr]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
