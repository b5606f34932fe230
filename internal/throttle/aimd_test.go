package throttle

import (
	"math"
	"testing"
	"time"
)

// The controller on a fake clock: every step is an Interval, and what the
// interval saw is set by hand.

const iv = int64(DefaultInterval)

func ctl() Controller {
	return Controller{Start: 10, Min: 0.1, Interval: DefaultInterval}
}

// step closes the interval that started at s.Since with what it saw,
// having booked used units, and returns the clock after it.
func step(c Controller, s *paceState, pct float64, limited bool, used float64) int64 {
	now := s.Since + iv
	s.Used = used
	c.observe(s, pct, limited)
	c.tick(s, now)
	return now
}

func fresh(c Controller) *paceState {
	s := &paceState{}
	c.init(s, 1)
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*max(1, math.Abs(b)) }

func TestSlowStartDoublesWhileCallersWait(t *testing.T) {
	c := ctl()
	s := fresh(c)
	for i, want := range []float64{20, 40, 80} {
		step(c, s, 0, true, s.Rate*0.5) // used the whole rate: Rate units/s for half a second
		if !near(s.Rate, want) || s.Steady {
			t.Fatalf("interval %d: rate %v (steady %v), want %v in slow start", i+1, s.Rate, s.Steady, want)
		}
	}
	// Nobody waited: the rate is not what holds anyone back.
	step(c, s, 0, false, s.Rate*0.5)
	if s.Rate != 80 {
		t.Errorf("rate rose to %v without callers waiting", s.Rate)
	}
	// Callers waited in a burst, but used a tenth of the rate: at most
	// twice the use.
	step(c, s, 0, true, 4) // 8 units/s
	if s.Rate != 80 {
		t.Errorf("rate %v after a burst that used 8/s, want it held at 80 (twice the use is less)", s.Rate)
	}
	step(c, s, 0, true, 30) // 60/s: twice is 120, doubling 160
	if s.Rate != 120 {
		t.Errorf("rate %v after using 60/s, want 120 (twice the use)", s.Rate)
	}
}

func TestCeilingAndStatic(t *testing.T) {
	c := ctl()
	c.Ceiling = 15
	s := fresh(c)
	step(c, s, 0, true, 100)
	if s.Rate != 15 {
		t.Errorf("rate %v, want the ceiling 15", s.Rate)
	}
	st := Controller{Static: true, Start: 7, Interval: DefaultInterval}
	s = fresh(st)
	step(st, s, 0, true, 100)
	st.throttled(s, s.Since+iv, s.Since+3*iv)
	if s.Rate != 7 {
		t.Errorf("the static pacer moved to %v", s.Rate)
	}
}

func TestSignalInSlowStartHalvesAndGivesUpTheQueue(t *testing.T) {
	c := ctl()
	s := fresh(c)
	step(c, s, 0, true, 5)
	step(c, s, 0, true, 10) // 40
	now := s.Since + iv/3
	s.TAT = now + int64(time.Second) // a queue booked at 40/s
	if c.signalled(s, 0.85, now) {
		t.Fatal("0.85 ended slow start: it is under NearAt")
	}
	if !c.signalled(s, 0.92, now) {
		t.Fatal("0.92 in slow start did not end it")
	}
	if s.Rate != 20 || !s.Steady || s.TAT != now {
		t.Errorf("after the signal: rate %v steady %v TAT %+d ns from now, want 20, true, 0", s.Rate, s.Steady, s.TAT-now)
	}
	if c.signalled(s, 0.99, now+1) {
		t.Error("a second signal halved again: only slow start ends that way")
	}
}

func TestThrottled(t *testing.T) {
	c := ctl()
	s := fresh(c)
	step(c, s, 0, true, 10) // 20, slow start

	// A 429 in slow start halves, and the next slot waits for the pause.
	now := s.Since + iv/2
	until := now + int64(time.Second)
	if !c.throttled(s, now, until) || s.Rate != 10 || s.Max != 20 || s.TAT != until || !s.Steady {
		t.Fatalf("429 in slow start: rate %v max %v TAT-until %d steady %v, want 10, 20, 0, true", s.Rate, s.Max, s.TAT-until, s.Steady)
	}
	// The same overload seen again within the interval: no second
	// decrease, but a longer pause still holds the queue.
	if c.throttled(s, now+iv/2, until+int64(time.Second)) || s.Rate != 10 || s.TAT != until+int64(time.Second) {
		t.Errorf("second 429 in the interval: rate %v, TAT %d past the first pause", s.Rate, s.TAT-until)
	}
	// Another soon after: a repeat, cut harder.
	now += 3 * iv
	c.throttled(s, now, now+int64(time.Second))
	if !near(s.Rate, 10*RepeatBackoff) {
		t.Errorf("repeated 429: rate %v, want %v", s.Rate, 10*RepeatBackoff)
	}
	// One long after: the ordinary backoff.
	now += 20 * iv
	r := s.Rate
	c.throttled(s, now, now+int64(time.Second))
	if !near(s.Rate, r*Backoff) {
		t.Errorf("isolated 429: rate %v, want %v", s.Rate, r*Backoff)
	}
}

func TestClimbsBackBelowTheLast429AndHolds(t *testing.T) {
	c := ctl()
	s := fresh(c)
	s.Steady, s.Rate = true, 50
	now := s.Since + iv
	c.throttled(s, now, now+int64(time.Second)) // 45, max 50, paused 2 intervals
	below := RecoverTo * 50
	// Right after the pause the window reads low (guestflow paused), yet
	// the rate climbs only back to just below 50.
	for i := 0; i < 5; i++ {
		step(c, s, 0, true, s.Rate*0.5)
		if s.Rate > below+1e-9 {
			t.Fatalf("interval %d after the 429: rate %v past %v", i+1, s.Rate, below)
		}
	}
	// While the window reads full or near, it holds there.
	for i := 0; i < 20; i++ {
		step(c, s, 1, true, s.Rate*0.5)
	}
	if !near(s.Rate, below) {
		t.Fatalf("after 20 full intervals: rate %v, want %v", s.Rate, below)
	}
	// No signal, with the window refilled since the pause (it said
	// full), at the remembered rate: the budget grew, the memory goes.
	step(c, s, 0, true, s.Rate*0.5)
	if s.Max != 0 || s.Rate <= 50 {
		t.Errorf("far from full long after the 429: rate %v, max %v; want past 50 and forgotten", s.Rate, s.Max)
	}
}

// TestNoGrowthUntilTheWindowRefills: after a 429's pause the window reads
// low because guestflow paused; the rate holds until a signal says the
// window is filling, or RefillFor has passed.
func TestNoGrowthUntilTheWindowRefills(t *testing.T) {
	c := ctl()
	s := fresh(c)
	s.Steady, s.Rate = true, 18
	now := s.Since + iv/2
	s.Dec = now // the 429 came with the end of slow start: no decrease, but a pause
	c.throttled(s, now, now+int64(time.Second))
	for i := 0; i < RefillFor-1; i++ {
		step(c, s, 0, true, s.Rate*0.5)
		if s.Rate != 18 {
			t.Fatalf("interval %d after the pause, no signal yet: rate %v, want 18 held", i+1, s.Rate)
		}
	}
	step(c, s, 0.85, true, s.Rate*0.5) // the window fills again
	step(c, s, 0, true, s.Rate*0.5)
	if s.Rate <= 18 {
		t.Errorf("far from full after the window refilled: rate %v, want it growing", s.Rate)
	}
}

func TestFullWindowComesDownWhenThePercentageIsFine(t *testing.T) {
	c := ctl()
	coarse := fresh(c)
	coarse.Steady, coarse.Rate = true, 9.5
	c.observe(coarse, 0.9, false) // a window of 10: steps of 0.1
	fine := fresh(c)
	fine.Steady, fine.Rate = true, 49
	c.observe(fine, 0.98, false) // a window of 50: steps of 0.02
	if coarse.Fine || !fine.Fine {
		t.Fatalf("fine: coarse %v, fine %v", coarse.Fine, fine.Fine)
	}
	step(c, coarse, 1, true, coarse.Rate*0.5)
	step(c, fine, 1, true, fine.Rate*0.5)
	if !near(coarse.Rate, 9.5*(1+ProbeStep)) {
		t.Errorf("coarse full window: rate %v, want a probe to %v (full says little in steps of 0.1)", coarse.Rate, 9.5*(1+ProbeStep))
	}
	if !near(fine.Rate, 49*(1-ProbeStep)) {
		t.Errorf("fine full window: rate %v, want it down to %v (full in steps of 0.02 is the edge)", fine.Rate, 49*(1-ProbeStep))
	}
	// A 429 just after still decreases the rate.
	now := fine.Since + iv/2
	if !c.throttled(fine, now, now+int64(time.Second)) {
		t.Error("a 429 right after a fine full window's decrease did not decrease the rate")
	}
}

func TestApproachAndFarSteps(t *testing.T) {
	c := ctl()
	for _, tc := range []struct {
		pct  float64
		want float64
	}{
		{0, 1 + FarStep},
		{0.85, 1 + NearStep},
		{0.93, 1 + ProbeStep},
	} {
		s := fresh(c)
		s.Steady, s.Rate = true, 20
		step(c, s, tc.pct, true, 10)
		if !near(s.Rate, 20*tc.want) {
			t.Errorf("percentage %v: rate %v, want %v", tc.pct, s.Rate, 20*tc.want)
		}
	}
}

func TestAtMostOneIncreasePerInterval(t *testing.T) {
	c := ctl()
	s := fresh(c)
	s.Used = 100
	c.observe(s, 0, true)
	if c.tick(s, s.Since+iv-1) {
		t.Error("the interval closed before it was an Interval old")
	}
	if !c.tick(s, s.Since+iv) {
		t.Error("the interval did not close")
	}
	if c.tick(s, s.Since+1) {
		t.Error("a second worker raised the rate in the same interval")
	}
}

func TestRescaleMovesTheQueueToTheNewRate(t *testing.T) {
	s := &paceState{Rate: 20, TAT: 1000 + int64(time.Second)}
	s.rescale(1000, 10) // was 10/s: a second booked is half a second at 20/s
	if s.TAT != 1000+int64(time.Second)/2 {
		t.Errorf("TAT %d ns ahead, want half a second", s.TAT-1000)
	}
}

// TestALowReadingAfterA429DoesNotPassIt: once the window refills after a
// 429's pause it reads under 0.9 for a while at the rate the 429 came at;
// that is the pause, not room, and the rate stays below the 429's.
func TestALowReadingAfterA429DoesNotPassIt(t *testing.T) {
	c := ctl()
	s := fresh(c)
	s.Steady, s.Rate = true, 50
	now := step(c, s, 0.9, true, s.Rate*0.5)
	c.throttled(s, now, now+int64(time.Second))
	below := RecoverTo * s.Max
	for i := range 10 {
		step(c, s, 0.86, true, s.Rate*0.5)
		if s.Rate > below+1e-9 {
			t.Fatalf("interval %d after the 429: rate %v, want at most %v (%v × the 429's %v)", i+1, s.Rate, below, RecoverTo, s.Max)
		}
	}
	if !near(s.Rate, below) {
		t.Errorf("after 10 intervals approaching: rate %v, want back at %v", s.Rate, below)
	}
}

// TestSlowStartAtTheCeilingEndsWithoutHalving: a rate held at its ceiling
// (the invitations' at Microsoft's) did not overshoot when the window
// comes near full, so it is not halved.
func TestSlowStartAtTheCeilingEndsWithoutHalving(t *testing.T) {
	c := ctl()
	c.Ceiling = 15
	s := fresh(c)
	step(c, s, 0, true, s.Rate*0.5) // 10 → 20, held at 15
	if !near(s.Rate, 15) || s.Steady {
		t.Fatalf("rate %v (steady %v), want 15 in slow start", s.Rate, s.Steady)
	}
	if c.signalled(s, 0.95, s.Since+iv/4) {
		t.Error("signalled gave the slots up at the ceiling")
	}
	if !s.Steady || !near(s.Rate, 15) {
		t.Errorf("after the signal: rate %v (steady %v), want 15, steady", s.Rate, s.Steady)
	}
}

// TestLazyScopeGoesIdleWhenQuiet: a lazy scope is left unpaced after
// IdleAfter intervals without a percentage, a 429 or callers waiting, and
// any of them restarts the count; a scope that is not lazy never is.
func TestLazyScopeGoesIdleWhenQuiet(t *testing.T) {
	c := ctl()
	c.Lazy = true
	s := fresh(c)
	c.wake(s, s.Since)
	quiet := func(n int) {
		for range n {
			step(c, s, 0, false, 1)
		}
	}
	quiet(IdleAfter - 2)
	step(c, s, 0.85, false, 1) // a percentage
	quiet(IdleAfter - 2)
	step(c, s, 0, true, 1) // callers waited
	quiet(IdleAfter - 1)
	if s.Idle {
		t.Fatalf("idle after %d quiet intervals, want %d", IdleAfter-1, IdleAfter)
	}
	c.throttled(s, s.Since+iv/2, s.Since+iv) // a 429
	quiet(IdleAfter - 1)
	if s.Idle {
		t.Fatal("idle within IdleAfter of a 429")
	}
	quiet(1)
	if !s.Idle {
		t.Fatalf("not idle after %d quiet intervals", IdleAfter)
	}
	hit := s.Hit
	c.wake(s, s.Since+iv)
	if s.Idle || s.Steady || s.Rate != c.Start || s.Hit != hit {
		t.Errorf("woken: %+v, want slow start from %v remembering the last 429", *s, c.Start)
	}

	eager := ctl()
	e := fresh(eager)
	for range 2 * IdleAfter {
		step(eager, e, 0, false, 1)
	}
	if e.Idle {
		t.Error("a scope that is not lazy went idle")
	}
}
