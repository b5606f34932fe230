package ops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSConnected passes while nc is connected. A connection that is
// reconnecting fails it, and passes it again once reconnected: nats.go
// keeps trying for as long as the process runs (see app.Connect).
func NATSConnected(nc *nats.Conn) Check {
	return Check{Name: "nats", Run: func(context.Context) error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("NATS connection is %s", st)
		}
		return nil
	}}
}

// consumerCacheTTL is how long a consumer found stays found without
// asking the server again: probes come every few seconds from every
// replica, and a consumer deleted meanwhile is noticed by the worker
// itself, which creates it again.
const consumerCacheTTL = 5 * time.Second

// ConsumerBound passes while the durable consumer exists on stream: the
// step's worker has created or found it, or is creating it again after it
// was deleted. It asks the server at most once per five seconds when the
// answer was yes, and does not ask while the connection is down (the
// nats check says so then).
func ConsumerBound(js jetstream.JetStream, stream, consumer string) Check {
	var mu sync.Mutex
	var found time.Time
	return Check{Name: "consumer " + consumer, Run: func(ctx context.Context) error {
		if st := js.Conn().Status(); st != nats.CONNECTED {
			return fmt.Errorf("not known: NATS connection is %s", st)
		}
		mu.Lock()
		fresh := !found.IsZero() && time.Since(found) < consumerCacheTTL
		mu.Unlock()
		if fresh {
			return nil
		}
		_, err := js.Consumer(ctx, stream, consumer)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
			return fmt.Errorf("no consumer %s on stream %s yet: the worker has not created it", consumer, stream)
		case err != nil:
			return fmt.Errorf("looking up consumer %s on stream %s: %w", consumer, stream, err)
		}
		mu.Lock()
		found = time.Now()
		mu.Unlock()
		return nil
	}}
}
