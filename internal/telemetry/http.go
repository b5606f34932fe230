package telemetry

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// Transport wraps base so that every request is a client span, a child of
// the span in the request's context, named by HTTPSpanName, and carries
// that span's trace context (the global propagator's headers). tp nil
// means the global provider.
//
// url.full is recorded without its query: Graph's and Dataverse's
// $filter values name the guests (their email addresses), and a trace
// backend is no place for them. url.template holds the route with its ids
// replaced.
//
// With tp nil and no provider installed (tracing off) it returns base
// itself: a span nobody records costs a few percent of a worker's CPU
// per call (otelhttp's request clone, attributes and metrics), and
// without a propagator there is no trace context to carry either.
func Transport(tp trace.TracerProvider, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if tp == nil && !installed.Load() {
		return base
	}
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(redacting{tp: provider(tp)}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return HTTPSpanName(r) }),
	)
}

// HTTPSpanName is the method and the route template of r's path, e.g.
// "GET /v1.0/users/{id}": span names must not hold ids, or every call
// would be a name of its own.
func HTTPSpanName(r *http.Request) string {
	if r.URL == nil {
		return r.Method
	}
	return r.Method + " " + Route(r.URL.Path)
}

// Route is path with the segments that are ids replaced by {id}: GUIDs,
// numbers, long hex strings, addresses (anything with an @) and the keys
// of OData entity paths, systemusers(…) → systemusers({id}).
func Route(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if open := strings.IndexByte(s, '('); open > 0 && strings.HasSuffix(s, ")") {
			if open+2 < len(s) {
				segs[i] = s[:open] + "({id})"
			}
			continue
		}
		if isID(s) {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

func isID(s string) bool {
	if s == "" {
		return false
	}
	if strings.ContainsRune(s, '@') {
		return true
	}
	digits, hex := true, true
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			digits = false
		case c == '-':
			digits = false
		default:
			return false
		}
		if c == '-' {
			hex = hex && len(s) == 36 // a GUID's dashes, not a word's
		}
	}
	return digits || hex && len(s) >= 16
}

// redacting is a provider whose spans record url.full without its query
// and add url.template, for the spans otelhttp starts. otelhttp sets
// url.full on the span after starting it, so it is the span that redacts.
type redacting struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (r redacting) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return redactingTracer{t: r.tp.Tracer(name, opts...)}
}

type redactingTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (r redactingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, span := r.t.Start(ctx, name, opts...)
	return ctx, redactedSpan{span}
}

type redactedSpan struct{ trace.Span }

const attrURLFull = attribute.Key("url.full")

func (s redactedSpan) SetAttributes(kv ...attribute.KeyValue) {
	for i, a := range kv {
		if a.Key == attrURLFull {
			out := make([]attribute.KeyValue, 0, len(kv)+1)
			out = append(out, kv[:i]...)
			out = append(out, redactURL(a.Value.AsString())...)
			kv = append(out, kv[i+1:]...)
			break
		}
	}
	s.Span.SetAttributes(kv...)
}

// redactURL is url.full without query and fragment, and url.template.
func redactURL(full string) []attribute.KeyValue {
	u, err := url.Parse(full)
	if err != nil {
		return nil
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return []attribute.KeyValue{attrURLFull.String(u.String()), attribute.String("url.template", Route(u.Path))}
}
