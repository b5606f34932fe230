package worker

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff returns the redelivery delay before attempt+1 when the service
// named none: exponential from initial with ±50 % jitter, capped at max, so
// that replicas that failed together do not come back together.
func Backoff(initial, max time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		b := backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(initial),
			backoff.WithMaxInterval(max),
			backoff.WithMultiplier(2),
			backoff.WithRandomizationFactor(0.5),
			backoff.WithMaxElapsedTime(0),
		)
		d := b.NextBackOff()
		for i := 1; i < attempt; i++ {
			d = b.NextBackOff()
		}
		return d
	}
}
