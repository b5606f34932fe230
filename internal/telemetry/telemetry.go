// Package telemetry traces guestflow with OpenTelemetry: one span per step
// call, a child of the trace its input event carries, with the step's
// Graph and Dataverse calls as client spans beneath it. Tracing is on only
// when the standard OTEL_* variables name an OTLP endpoint; otherwise the
// global provider stays OpenTelemetry's no-op one, and the middleware and
// transport cost next to nothing.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// scope is the instrumentation scope of guestflow's own spans.
const scope = "github.com/guestflow/guestflow/internal/telemetry"

// Options say how to set tracing up.
type Options struct {
	// ServiceName is service.name unless OTEL_SERVICE_NAME (or
	// service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise, e.g.
	// "guestflow-invite".
	ServiceName string
	// Version is service.version.
	Version string
	// Getenv reads the variables that decide whether tracing is on; main
	// passes os.Getenv. The OTLP exporter reads the rest of its settings
	// (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _CERTIFICATE…) from the
	// process environment itself, as every OpenTelemetry SDK does.
	Getenv func(string) string
	// Logger receives export errors; nil means slog.Default().
	Logger *slog.Logger
}

// Shutdown flushes the spans not exported yet and stops the exporter.
type Shutdown func(context.Context) error

// Start sets the global tracer provider and the W3C trace-context
// propagator when the environment asks for traces, and reports whether it
// did. Without OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, with OTEL_SDK_DISABLED=true or with
// OTEL_TRACES_EXPORTER=none it changes nothing and returns a Shutdown
// that does nothing. The protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (the default) or grpc.
// Sampling follows OTEL_TRACES_SAMPLER (default parentbased_always_on),
// batching OTEL_BSP_*.
func Start(ctx context.Context, o Options) (Shutdown, bool, error) {
	get := o.Getenv
	if get == nil {
		get = func(string) string { return "" }
	}
	off := func(context.Context) error { return nil }
	if strings.EqualFold(strings.TrimSpace(get("OTEL_SDK_DISABLED")), "true") {
		return off, false, nil
	}
	switch e := strings.TrimSpace(get("OTEL_TRACES_EXPORTER")); e {
	case "", "otlp":
	case "none":
		return off, false, nil
	default:
		return nil, false, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: guestflow exports traces with otlp only (or none)", e)
	}
	if get("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return off, false, nil
	}
	protocol := get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = get("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, false, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: guestflow speaks http/protobuf and grpc", protocol)
	}
	if err != nil {
		return nil, false, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := Resource(ctx, o.ServiceName, o.Version)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, false, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing", "err", err)
	}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Install(tp)
	return func(ctx context.Context) error {
		// The exporter's own timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s)
		// bounds each export; ctx bounds the whole flush.
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
		}
		if err := tp.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("flushing traces: %w", err)
		}
		return nil
	}, true, nil
}

// Resource describes the process: service.name and service.version, then
// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, which win.
func Resource(ctx context.Context, service, version string) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", service)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return res, nil
}

// Install makes tp the global tracer provider, without the spans of the
// Microsoft Graph SDK's HTTP layer, and W3C trace context the global
// propagator. Start calls it; tests call it with an in-memory provider.
func Install(tp trace.TracerProvider) {
	installed.Store(true)
	otel.SetTracerProvider(WithoutSDKSpans(tp))
	otel.SetTextMapPropagator(propagation.TraceContext{})
}

// WithoutSDKSpans is tp without the spans kiota (msgraph-sdk-go's HTTP
// layer) makes through the global provider: about ten per Graph call,
// one for each of its middlewares and deserializers, which bury the one
// client span per call that the transport makes (see Transport). Their
// tracers are no-op ones, which pass the caller's span on, so the calls
// made beneath them stay children of the step's span.
func WithoutSDKSpans(tp trace.TracerProvider) trace.TracerProvider {
	return filtered{tp: tp}
}

type filtered struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

// sdkScopes are the instrumentation scopes dropped: kiota-http-go,
// kiota-abstractions-go and kiota-authentication-azure-go.
const sdkScopes = "github.com/microsoft/kiota-"

func (f filtered) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	if strings.HasPrefix(name, sdkScopes) {
		return noop.NewTracerProvider().Tracer(name)
	}
	return f.tp.Tracer(name, opts...)
}

// provider is tp, or the global provider when tp is nil.
// installed says Install has set a global provider: until then the
// global one is OpenTelemetry's no-op, and Transport need not wrap.
var installed atomic.Bool

func provider(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return otel.GetTracerProvider()
	}
	return tp
}
