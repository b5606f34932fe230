package intake

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The intake's metrics, on the default registry: whatever serves
// /metrics in the process exposes them.
var (
	requestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "guestflow_intake_requests_total",
		Help: "HTTP requests the intake answered, by route and status code.",
	}, []string{"route", "status"})
	requestDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "guestflow_intake_request_duration_seconds",
		Help:    "Time from a request's arrival to its answer, by route; for POST /v1/events it includes the wait for the broker's PubAck.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	eventsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "guestflow_intake_events_total",
		Help: "Joined events the intake answered for, by outcome: accepted (stored), duplicate (the stream already held the id), " +
			"invalid (refused with 400 or 413), unavailable (not stored: 503).",
	}, []string{"outcome"})
)

// Route labels: the patterns, so that onboarding ids do not become label
// values.
const (
	routeEvents      = "/v1/events"
	routeOnboardings = "/v1/onboardings/{id}"
	routeOther       = "other"
)
