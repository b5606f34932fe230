package dlq

import (
	"testing"
	"time"
)

// TuneScan sets scan's batch, idle wait and per-letter hook for one test
// (zero values keep the defaults), and puts them back when it ends.
func TuneScan(t testing.TB, batch int, idle time.Duration, after func(seq uint64)) {
	oldBatch, oldIdle, oldAfter := listBatch, listIdle, afterRead
	t.Cleanup(func() { listBatch, listIdle, afterRead = oldBatch, oldIdle, oldAfter })
	if batch > 0 {
		listBatch = batch
	}
	if idle > 0 {
		listIdle = idle
	}
	afterRead = after
}
