// Package worker is the runtime every guestflow step shares: it creates the
// streams and the step's durable consumer, pull-consumes, decodes
// CloudEvents, calls the step, publishes what the step produced, and then
// acks, naks with a server-side delay, or dead-letters. Steps know nothing
// about NATS; this package knows nothing about Graph.
package worker

import (
	"context"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Handler is one step. Handle receives a decoded, envelope-valid input event
// and returns the event to emit next (nil to emit nothing). It never acks:
// the runtime publishes next, waits for the PubAck and only then acks the
// input, so a crash at any point leads to a redelivery, never a loss.
//
// A returned error is retryable unless marked with failure.Permanent; see
// package failure.
type Handler interface {
	Handle(ctx context.Context, in event.Event) (next *event.Event, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, in event.Event) (*event.Event, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, in event.Event) (*event.Event, error) {
	return f(ctx, in)
}

// Middleware wraps a Handler, as net/http middleware wraps an http.Handler.
type Middleware func(Handler) Handler

// Step is a handler and the subject it consumes. Its name is the durable
// consumer's name, the dead-letter subject's last token and the
// Guestflow-Step header.
type Step struct {
	Name    string
	Subject string
	Handler Handler
}
