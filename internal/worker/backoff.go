package worker

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff returns the redelivery delay after an input's failures-th failed
// attempt when the service named none: exponential from initial with ±50 %
// jitter, capped at max, so that replicas that failed together do not come
// back together.
func Backoff(initial, max time.Duration) func(failures int) time.Duration {
	return func(failures int) time.Duration {
		b := backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(initial),
			backoff.WithMaxInterval(max),
			backoff.WithMultiplier(2),
			backoff.WithRandomizationFactor(0.5),
			backoff.WithMaxElapsedTime(0),
		)
		d := b.NextBackOff()
		for i := 1; i < failures; i++ {
			d = b.NextBackOff()
		}
		return d
	}
}
