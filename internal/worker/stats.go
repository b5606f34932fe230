package worker

import "sync/atomic"

// Stats counts what the runtime did that an operator has to hear about
// even when nobody reads the logs. Every counter only grows and is safe to
// read at any time, so DefaultStats' are exported as counters as they are
// (guestflow_worker_…_total, metrics.go); they live here, in one place, so
// that nothing is left out.
type Stats struct {
	// Abandoned counts inputs terminated without a dead letter, because
	// GUESTFLOW_DLQ refused theirs DeadLetterTries times. Each is an
	// onboarding that stopped with nothing to replay: it is left only in
	// the worker's Error log and, by its sequence, in the GUESTFLOW stream.
	// Anything above zero needs a person.
	Abandoned atomic.Uint64
	// DLQFull counts dead letters GUESTFLOW_DLQ refused because it was at
	// its byte limit (nats.dlqMaxBytes, discard new). Each refusal is
	// retried like any other, and DeadLetterTries of them abandon the
	// input: replay or purge dead letters to make room.
	DLQFull atomic.Uint64
	// Truncated counts dead letters stored with a shortened body because
	// the whole input would not fit the broker's max payload beside the
	// dead-letter headers.
	Truncated atomic.Uint64
	// Recreated counts streams, buckets and consumers the runtime found
	// deleted under it and created again.
	Recreated atomic.Uint64
	// IndexFailures counts messages that could not be filed in
	// GUESTFLOW_INDEX. Their onboardings go on; `guestflow status` may
	// miss such a message unless run with --scan.
	IndexFailures atomic.Uint64
	// StepTimeouts counts steps abandoned because they had not returned
	// shortly after --step-timeout: steps that ignore their context. Each
	// may have left a goroutine running in the process, which only a
	// restart ends.
	StepTimeouts atomic.Uint64
}

// DefaultStats is where a worker counts unless Options.Stats names another
// Stats, so that a process exporting metrics has one place to read,
// whatever steps it runs.
var DefaultStats = new(Stats)
