// Package metrics defines the Prometheus metrics guestflow exports. They are
// registered on the default registry, which the ops server's /metrics serves
// beside the Go and process collectors, so any package may count without
// being handed a registry.
//
// Every metric is created here, through the helpers below, so that one list
// (Defs) names them all: docs/operations.md documents exactly that list, and
// the tests of deploy/ check that the Grafana dashboard and the alert rules
// ask only for metrics in it. A metric that reads its value from elsewhere
// (the worker's Stats) is made with CounterFunc by the package that owns the
// value, and joins the list when that package is linked in.
//
// Labels never carry ids, addresses or query strings: they would make a
// series per onboarding (cardinality) and put personal data in the
// monitoring system.
package metrics

import (
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results of a delivery, the result label of StepResults.
const (
	// ResultDone: the step's next event is stored and the input acked.
	ResultDone = "done"
	// ResultRetry: a failed attempt; the input comes back after a backoff.
	ResultRetry = "retry"
	// ResultThrottled: the tenant's budget said to wait; the input comes
	// back after the wait, and it is not a failed attempt.
	ResultThrottled = "throttled"
	// ResultDeadLetter: the input is in GUESTFLOW_DLQ and terminated.
	ResultDeadLetter = "dead_letter"
)

// Results lists the result label's values.
var Results = []string{ResultDone, ResultRetry, ResultThrottled, ResultDeadLetter}

// Scopes of ThrottleWait: which shared budget made a caller wait.
const (
	// ScopeWrite is the tenant's Graph identity-write budget, and the
	// pause after Graph answered a write with 429.
	ScopeWrite = "write"
	// ScopeInvitation is the tenant's invitation budget.
	ScopeInvitation = "invitation"
	// ScopeResourceUnit is the tenant's identity and access resource
	// units, which reads spend too.
	ScopeResourceUnit = "resource_unit"
	// ScopeMail is Outlook's sendMail budget and its four calls at once.
	ScopeMail = "mail"
	// ScopeDataverse is a Dataverse instance's pause after a 429.
	ScopeDataverse = "dataverse"
)

// Services of the remote-request metrics, derived from the request path
// (see httpclient.Route).
const (
	ServiceToken         = "token"
	ServiceGraph         = "graph"
	ServiceDataverse     = "dataverse"
	ServicePowerPlatform = "powerplatform"
	// ServiceOther is any other request made through the shared client;
	// its operation is "other" too.
	ServiceOther = "other"
)

// Bucket boundaries, in seconds.
var (
	// stepBuckets span a step that answers from memory in milliseconds to
	// one that runs into --step-timeout (2 minutes by default) and beyond.
	stepBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// remoteBuckets span one HTTP call: Microsoft answers in tens to
	// hundreds of milliseconds, a slow one in seconds, and the shared
	// client gives up after 60 s.
	remoteBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	// onboardingBuckets span a whole onboarding: seconds when nothing
	// waits, minutes for the Dataverse sync, up to the 15-minute sync and
	// throttle deadlines, and hours behind a backlog or a replay.
	onboardingBuckets = []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400}
)

// The metrics. Their help texts are the one-line meaning; docs/operations.md
// says more.
var (
	StepResults = counterVec("guestflow_step_results_total",
		"Deliveries of an input to a step, by how they ended: done, retry (a failed attempt), throttled (told to wait for the shared budget), dead_letter.",
		"step", "result")
	StepDuration = histogramVec("guestflow_step_duration_seconds",
		"How long the worker took over a delivery, from receiving it to its ack, nak or dead letter, whatever the result.",
		stepBuckets, "step")
	DeadLetters = counterVec("guestflow_dead_letters_total",
		"Inputs stored in the dead-letter stream GUESTFLOW_DLQ, by step and Guestflow-Reason.",
		"step", "reason")
	RemoteRequests = counterVec("guestflow_remote_requests_total",
		"HTTP requests to Microsoft (token, graph, dataverse, powerplatform) by route template and status code, or status \"error\" when no answer came.",
		"service", "operation", "status")
	RemoteDuration = histogramVec("guestflow_remote_request_duration_seconds",
		"How long HTTP requests to Microsoft took until their response headers or their error.",
		remoteBuckets, "service", "operation")
	ThrottleWait = counterVec("guestflow_throttle_wait_seconds_total",
		"Seconds the tenant's shared budget made callers wait: pacing slept in place, plus the Retry-After handed back with each throttled call.",
		"scope")
	OnboardingDuration = histogram("guestflow_onboarding_duration_seconds",
		"Time from an onboarding's joined event (its time attribute) to the onboarded event, observed when the notify step stores the onboarded event.",
		onboardingBuckets)
	ConsumerPending = gaugeVec("guestflow_consumer_pending",
		"Inputs a step's durable consumer has yet to finish: not yet delivered (NumPending) plus delivered and not yet acked, termed or dead-lettered (NumAckPending). Refreshed by each running worker.",
		"step")
	DLQBytes = gauge("guestflow_dlq_bytes",
		"Bytes stored in the dead-letter stream GUESTFLOW_DLQ, as last read by this worker (refreshed with guestflow_consumer_pending). Every worker reports the same stream: aggregate with max.")
	DLQMaxBytes = gauge("guestflow_dlq_max_bytes",
		"GUESTFLOW_DLQ's byte limit (nats.dlqMaxBytes), beyond which it refuses new dead letters; -1 when it has none.")
)

func init() {
	// Known label values start at zero, so that rate() and increase()
	// see the first event rather than a series that appears with it.
	for _, s := range []string{ScopeWrite, ScopeInvitation, ScopeResourceUnit, ScopeMail, ScopeDataverse} {
		ThrottleWait.WithLabelValues(s)
	}
}

// InitStep creates step's series with known labels at zero, the
// dead-letter reasons among them; the worker calls it when it starts. An
// alert on increase() then sees a step's first dead letter with a given
// reason, which a series born with it at 1 would hide.
func InitStep(step string, reasons []string) {
	for _, r := range Results {
		StepResults.WithLabelValues(step, r)
	}
	for _, r := range reasons {
		DeadLetters.WithLabelValues(step, r)
	}
	StepDuration.WithLabelValues(step)
}

// Def describes one metric: what docs/operations.md lists and the deploy
// tests check names against.
type Def struct {
	Name   string
	Type   string // counter, gauge or histogram
	Help   string
	Labels []string
}

var (
	mu   sync.Mutex
	defs []Def
)

// Defs returns every metric made through this package, sorted by name.
func Defs() []Def {
	mu.Lock()
	defer mu.Unlock()
	out := slices.Clone(defs)
	slices.SortFunc(out, func(a, b Def) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func define(name, typ, help string, labels []string) {
	mu.Lock()
	defer mu.Unlock()
	defs = append(defs, Def{Name: name, Type: typ, Help: help, Labels: labels})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	define(name, "counter", help, labels)
	return promauto.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	define(name, "gauge", help, labels)
	return promauto.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func gauge(name, help string) prometheus.Gauge {
	define(name, "gauge", help, nil)
	return promauto.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	define(name, "histogram", help, labels)
	return promauto.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}

func histogram(name, help string, buckets []float64) prometheus.Histogram {
	define(name, "histogram", help, nil)
	return promauto.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}

// CounterFunc registers a counter whose value f reads at scrape time, for a
// count kept elsewhere (worker.Stats). f must only grow.
func CounterFunc(name, help string, f func() float64) prometheus.CounterFunc {
	define(name, "counter", help, nil)
	return promauto.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
}
