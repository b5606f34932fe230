package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/guestflow/guestflow/internal/telemetry"
)

func TestRouteReplacesIDs(t *testing.T) {
	for path, want := range map[string]string{
		"/v1.0/users/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9":               "/v1.0/users/{id}",
		"/v1.0/users/noreply@contoso.example/sendMail":                   "/v1.0/users/{id}/sendMail",
		"/v1.0/groups/0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9/members/$ref": "/v1.0/groups/{id}/members/$ref",
		"/v1.0/invitations": "/v1.0/invitations",
		"/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/oauth2/v2.0/token":                                                           "/{id}/oauth2/v2.0/token",
		"/instances/sales/api/data/v9.2/systemusers(0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9)/systemuserroles_association/$ref": "/instances/sales/api/data/v9.2/systemusers({id})/systemuserroles_association/$ref",
		"/api/data/v9.2/WhoAmI()": "/api/data/v9.2/WhoAmI()",
		"/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/12345/x": "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{id}/x",
		"/v1.0/subscribedSkus/deadbeefdeadbeefdeadbeef":                              "/v1.0/subscribedSkus/{id}",
		"/v1.0/users/face": "/v1.0/users/face",
	} {
		if got := telemetry.Route(path); got != want {
			t.Errorf("Route(%s) = %s, want %s", path, got, want)
		}
	}
}

// TestTransportMakesAChildClientSpanWithoutIDsOrQuery: each call is a
// client span under the caller's span, named without ids, recorded without
// its query (which names guests), and the request carries its context.
func TestTransportMakesAChildClientSpanWithoutIDsOrQuery(t *testing.T) {
	restoreGlobals(t)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
		_, _ = io.WriteString(w, `{"value":[]}`)
	}))
	defer srv.Close()

	rec, tp := recorder(t)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "guestflow.invite")
	hc := &http.Client{Transport: telemetry.Transport(tp, http.DefaultTransport)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
		srv.URL+"/v1.0/users/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9?$filter=mail%20eq%20'ana.silva@fabrikam.example'", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	parent.End()

	var client sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			client = s
		}
	}
	if client == nil {
		t.Fatalf("no client span among %d", len(rec.Ended()))
	}
	if client.Name() != "GET /v1.0/users/{id}" {
		t.Errorf("span name %q", client.Name())
	}
	if client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Error("the client span is not the caller's span's child")
	}
	a := attrs(client)
	if u := a["url.full"].AsString(); strings.Contains(u, "?") || strings.Contains(u, "fabrikam") || !strings.HasSuffix(u, "/v1.0/users/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9") {
		t.Errorf("url.full %q, want the URL without its query", u)
	}
	if a["url.template"].AsString() != "/v1.0/users/{id}" {
		t.Errorf("url.template %q", a["url.template"].AsString())
	}
	if a["http.response.status_code"].AsInt64() != 200 {
		t.Errorf("status attribute %v", a["http.response.status_code"])
	}
	if tp := <-got; !strings.Contains(tp, client.SpanContext().SpanID().String()) {
		t.Errorf("request traceparent %q does not name the client span", tp)
	}
}

// TestSDKSpansAreDropped: kiota's tracers make no spans, and what is called
// beneath them stays the caller's child.
func TestSDKSpansAreDropped(t *testing.T) {
	rec, tp := recorder(t)
	global := telemetry.WithoutSDKSpans(tp)
	ctx, step := global.Tracer("guestflow").Start(context.Background(), "guestflow.invite")
	ctx, sdk := global.Tracer("github.com/microsoft/kiota-http-go").Start(ctx, "getHttpResponseMessage")
	_, call := global.Tracer("otelhttp").Start(ctx, "GET /v1.0/users/{id}")
	call.End()
	sdk.End()
	step.End()
	if n := len(rec.Ended()); n != 2 {
		t.Fatalf("%d spans, want the step's and the call's", n)
	}
	if rec.Ended()[0].Parent().SpanID() != step.SpanContext().SpanID() {
		t.Error("the call beneath the SDK's span is not the step's child")
	}
}

// TestTransportWithoutTracingAddsNoHeader: off means nothing leaves the
// process, not even a traceparent.
func TestTransportWithoutTracingAddsNoHeader(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer srv.Close()
	// A step's context with tracing off: the input's span context, passed
	// on by the no-op provider.
	tid, _ := trace.TraceIDFromHex(inputTraceID)
	sid, _ := trace.SpanIDFromHex(inputSpanID)
	ctx := trace.ContextWithRemoteSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true}))
	ctx, _ = noop.NewTracerProvider().Tracer("").Start(ctx, "guestflow.invite")
	hc := &http.Client{Transport: telemetry.Transport(noop.NewTracerProvider(), nil)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := <-got; h.Get("traceparent") != "" {
		t.Errorf("traceparent %q sent with tracing off", h.Get("traceparent"))
	}
}
