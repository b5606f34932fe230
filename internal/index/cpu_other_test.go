//go:build !unix

package index_test

import "time"

// cpuTime is 0 where the process's CPU time is not read: BenchmarkAdd
// then reports no cpu-ns/op.
func cpuTime() time.Duration { return 0 }
