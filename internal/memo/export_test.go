package memo

import "time"

// SetOpTimeout sets the bound of one bucket call until restore is called.
func SetOpTimeout(d time.Duration) (restore func()) {
	old := opTimeout
	opTimeout = d
	return func() { opTimeout = old }
}
