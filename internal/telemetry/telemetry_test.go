package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/guestflow/guestflow/internal/telemetry"
)

// restoreGlobals puts no-op OpenTelemetry globals back after a test that
// sets them. (The defaults cannot be restored: the first provider and
// propagator set stay their delegates.)
func restoreGlobals(t *testing.T) {
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestTracingIsOffUnlessAnEndpointIsSet: no endpoint, the SDK disabled or
// the exporter none leave the global provider alone.
func TestTracingIsOffUnlessAnEndpointIsSet(t *testing.T) {
	restoreGlobals(t)
	otel.SetTracerProvider(noop.NewTracerProvider())
	for name, vars := range map[string]map[string]string{
		"nothing set":   {"OTEL_SERVICE_NAME": "x"},
		"SDK disabled":  {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "TRUE"},
		"exporter none": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"},
	} {
		t.Run(name, func(t *testing.T) {
			shutdown, on, err := telemetry.Start(context.Background(), telemetry.Options{ServiceName: "guestflow-test", Getenv: env(vars)})
			if err != nil || on {
				t.Fatalf("Start: on %v, %v", on, err)
			}
			if _, ok := otel.GetTracerProvider().(noop.TracerProvider); !ok {
				t.Errorf("global provider replaced by %T", otel.GetTracerProvider())
			}
			if err := shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestTracingRefusesWhatItCannotExport(t *testing.T) {
	restoreGlobals(t)
	for _, vars := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "zipkin"},
	} {
		if _, _, err := telemetry.Start(context.Background(), telemetry.Options{Getenv: env(vars)}); err == nil {
			t.Errorf("%v accepted", vars)
		}
	}
}

// TestTracingExportsOverOTLPHTTP: with an endpoint set, spans reach it
// when the process shuts down, under the default service name unless
// OTEL_SERVICE_NAME names another, and W3C trace context is the
// propagator.
func TestTracingExportsOverOTLPHTTP(t *testing.T) {
	for _, tc := range []struct{ serviceEnv, want string }{{"", "guestflow-invite"}, {"onboarding-eu", "onboarding-eu"}} {
		t.Run(tc.want, func(t *testing.T) {
			restoreGlobals(t)
			got := make(chan *coltrace.ExportTraceServiceRequest, 10)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/traces" {
					http.NotFound(w, r)
					return
				}
				b, _ := io.ReadAll(r.Body)
				var req coltrace.ExportTraceServiceRequest
				if err := proto.Unmarshal(b, &req); err != nil {
					t.Errorf("export body: %v", err)
				}
				got <- &req
				w.Header().Set("Content-Type", "application/x-protobuf")
			}))
			defer srv.Close()
			// The exporter reads its endpoint from the process environment.
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
			t.Setenv("OTEL_SERVICE_NAME", tc.serviceEnv)
			shutdown, on, err := telemetry.Start(context.Background(), telemetry.Options{
				ServiceName: "guestflow-invite", Version: "v1.2.3", Getenv: os.Getenv,
			})
			if err != nil || !on {
				t.Fatalf("Start: on %v, %v", on, err)
			}
			_, span := otel.Tracer("test").Start(context.Background(), "guestflow.invite")
			span.End()
			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, ok := otel.GetTextMapPropagator().(propagation.TraceContext); !ok {
				t.Errorf("propagator %T, want W3C trace context", otel.GetTextMapPropagator())
			}
			select {
			case req := <-got:
				rs := req.GetResourceSpans()
				if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || rs[0].GetScopeSpans()[0].GetSpans()[0].GetName() != "guestflow.invite" {
					t.Fatalf("exported %v", req)
				}
				res := map[string]string{}
				for _, a := range rs[0].GetResource().GetAttributes() {
					res[a.GetKey()] = a.GetValue().GetStringValue()
				}
				if res["service.name"] != tc.want || res["service.version"] != "v1.2.3" {
					t.Errorf("resource %v, want service.name %s", res, tc.want)
				}
			default:
				t.Fatal("nothing exported by shutdown")
			}
		})
	}
}

// TestInstallDropsSDKSpansFromTheGlobalProvider: what kiota asks the
// global provider for makes no spans.
func TestInstallDropsSDKSpansFromTheGlobalProvider(t *testing.T) {
	restoreGlobals(t)
	rec, tp := recorder(t)
	telemetry.Install(tp)
	_, s := otel.Tracer("github.com/microsoft/kiota-abstractions-go").Start(context.Background(), "SetContentFromParsable")
	s.End()
	_, s = otel.Tracer("guestflow").Start(context.Background(), "guestflow.invite")
	s.End()
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
	}
	if strings.Join(names, ",") != "guestflow.invite" {
		t.Errorf("spans %v, want only guestflow's", names)
	}
}
