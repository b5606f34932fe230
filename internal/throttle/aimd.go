package throttle

import (
	"math"
	"time"
)

// The adaptive pacer is additive-increase, multiplicative-decrease (AIMD)
// over the shared GCRA: each scope's rate lives in its bucket key beside
// the theoretical arrival time, and every worker's answers move it.
//
// Graph's budgets are sliding windows of unknown size and length, shared
// with other apps of the tenant, so the rate cannot be configured; it has
// to be found, and found again when a neighbour starts or stops spending.
// Microsoft says how full a window is: x-ms-throttle-limit-percentage, on
// every identity answer once more than 0.8 of a limit is used. A pacer that
// holds the rate where that signal reads "full" (1.0) and not beyond runs
// the window at its limit without 429s; one that waits for 429s loses a
// Retry-After (whole seconds) each time, for everyone.
//
// So, once per Interval for the whole tenant (the open interval's
// aggregate is in the key, and whoever closes it decides for all), the
// controller looks at the highest percentage anyone saw in it and whether
// callers waited for slots (demand reached the rate: a rate nobody is held
// back by is not raised, or it would grow without bound while another
// scope binds and burst when that one frees). It never raises the rate
// past twice what was booked in the interval, so that callers queued in a
// burst do not make a rate the average demand is far below.
//
//   - slow start (from the first rate until the first signal or 429): the
//     rate doubles. A signal of 0.9 or more ends it at once, without
//     waiting for the interval to close: the rate goes back to half, and
//     the slots booked at the old one are given up.
//   - no signal: far from the limit. The rate grows by FarStep, up to just
//     below the rate of the last 429 while that is remembered. It is
//     forgotten when the rate reaches it with no signal: the budget has
//     room again (a neighbour stopped). But after a 429's pause, the rate
//     does not grow past where it is until a signal has come again (or
//     RefillFor has passed): the pause emptied the window, which reads
//     low because guestflow paused, not because the budget grew, until it
//     has filled again.
//   - a signal under 0.9: approaching. Grow by NearStep (again up to just
//     below the last 429's rate while that is remembered, and never past
//     it: the window refilling after the 429's pause reads low).
//   - full (FullAt), in a window whose percentages come in steps finer
//     than 0.05: at the limit, to within a few steps (a window of more
//     than 20 calls reads full only within a few percent of its limit).
//     Come down by ProbeStep, to keep off the edge where a call that
//     arrives late is a 429: the one decrease a signal alone makes.
//   - 0.9 or more otherwise: near, or full in a coarse window (a window of
//     10 reads full anywhere above 90 %). Grow by NearStep back up to
//     RecoverTo of the last 429's rate, and hold there. With no 429
//     remembered, grow by ProbeStep only, to find where the window ends.
//   - a 429, at once and at most once per Interval: multiply the rate by
//     Backoff (SlowBackoff in slow start, where the overshoot may be
//     twofold; RepeatBackoff when the last 429 was recent, as when a
//     neighbour takes a share of the budget), remember the rate it came at,
//     and pause the scope for everyone for its Retry-After.
//
// The decreases are multiplicative so that the tenant's clients converge
// on fair shares. A full coarse window does not decrease the rate: Graph
// rounds the percentage to two decimals and a window of 10 calls reads 1.0
// anywhere between 90 % and 100 % of its rate, so backing off on 1.0 would
// settle at 90 %.
//
// What it does not do well: a window much longer than the Interval (the
// invitation manager's 5 s, Microsoft's 150 s for writes) shows a change
// of rate only as it fills, so the rate is found from above, by a 429 a
// window, and converges slowly; the window's own capacity keeps the
// throughput at its limit meanwhile.

// Controller is the AIMD policy of one scope. It is pure: it changes a
// pacing state as the clock and the observations say, so it is tested on
// a fake clock.
type Controller struct {
	// Start is the first rate (units per second) of a scope with no state.
	Start float64
	// Min and Ceiling bound the rate; Ceiling 0 is none.
	Min, Ceiling float64
	// Interval is how often the rate may rise, and fall, tenant-wide.
	Interval time.Duration
	// Static fixes the rate at Start: today's pacer, for comparison.
	Static bool
	// Lazy scopes are paced only while they show signs of filling (see
	// Gate.pacing): the state goes Idle after IdleAfter without one.
	Lazy bool
}

// Controller tuning. The steps are per Interval.
const (
	// NearAt and FullAt are the percentages that mean near and full.
	// Only a fine window is taken as full, from FullAt: a window of 50
	// to 150 calls holds its limit's last few percent for calls that
	// arrive late (the sender's scheduling, the network), which are 429s
	// otherwise, and a 429 costs its whole-second Retry-After for
	// everyone, far more than the few percent.
	NearAt = 0.9
	FullAt = 0.97

	FarStep   = 0.15
	NearStep  = 0.03
	ProbeStep = 0.005
	// RecoverTo is how close below the last 429's rate a full window
	// still grows by NearStep.
	RecoverTo = 0.98

	Backoff       = 0.9
	RepeatBackoff = 0.75
	SlowBackoff   = 0.5
	// RepeatWithin is how recent a decrease makes the next one a repeat,
	// in Intervals: 429s that come back within it were not cured.
	RepeatWithin = 6
	// RefillFor is how long after a 429's pause, in Intervals, the rate
	// waits for a signal before it grows far from the limit again: the
	// window the pause emptied has to fill before it says anything.
	RefillFor = 10
	// IdleAfter is how long, in Intervals, a lazy scope goes without a
	// sign of filling (a limit percentage, a 429, callers waiting for its
	// slots) before it is left unpaced: three of the resource units' 10 s
	// windows, which in that time never read more than 0.8.
	IdleAfter = 60
)

// paceState is a scope's shared pacing state, the value of its key.
type paceState struct {
	// TAT is the theoretical arrival time of the next slot, Unix ns.
	TAT int64 `json:"tat"`
	// Rate is units per second; 0 until the first reservation sets it to
	// the controller's Start.
	Rate float64 `json:"rate"`
	// Steady is false in slow start.
	Steady bool `json:"steady,omitempty"`
	// Max is the rate of the last 429, 0 when none is remembered.
	Max float64 `json:"max,omitempty"`
	// Dec is when the rate last fell, and Hit when a 429 last made it,
	// Unix ns.
	Dec int64 `json:"dec,omitempty"`
	Hit int64 `json:"hit,omitempty"`
	// Resume is when the last 429's pause ended; Refill says no signal
	// has been seen since (see tick).
	Resume int64 `json:"resume,omitempty"`
	Refill bool  `json:"refill,omitempty"`

	// The open interval, from Since: the highest percentage reported in
	// it, and whether a caller waited for a slot.
	Since   int64   `json:"since,omitempty"`
	Pct     float64 `json:"pct,omitempty"`
	Limited bool    `json:"limited,omitempty"`
	// Used is the units booked in the open interval.
	Used float64 `json:"used,omitempty"`
	// Fine says the scope's percentages have come in steps finer than
	// 0.05: a window of more than 20 calls, which reads full only within
	// a few percent of its limit.
	Fine bool `json:"fine,omitempty"`

	// Idle says a lazy scope is not paced: it showed no sign of filling
	// for IdleAfter, until Sign, the last time it did (Unix ns).
	Idle bool  `json:"idle,omitempty"`
	Sign int64 `json:"sign,omitempty"`
}

// start is when the next slot starts for a reservation at now.
func (s *paceState) start(now int64) int64 { return max(s.TAT, now) }

// rescale moves the slots booked ahead of now to the new rate: those
// already handed out keep their times, and the next one comes as soon as
// the new rate allows, so that an increase counts at once rather than
// after the queue booked at the old rate (up to MaxWait of it).
func (s *paceState) rescale(now int64, old float64) {
	if s.TAT > now && s.Rate > 0 {
		s.TAT = now + int64(float64(s.TAT-now)*old/s.Rate)
	}
}

// init gives a fresh state its first rate, and a static one its fixed
// rate.
func (c Controller) init(s *paceState, now int64) {
	if c.Static {
		s.Rate, s.Steady = c.Start, true
		return
	}
	if s.Rate <= 0 {
		s.Rate = c.clamp(c.Start)
		s.Since = now
	}
	if s.Since == 0 {
		s.Since = now
	}
	s.Rate = c.clamp(s.Rate) // the ceiling may have changed since
}

// wake paces a lazy scope again (or for the first time), in slow start
// from Start: the rate it went idle at is as old as the quiet, and the
// budget may have changed since. When the last 429 came stays known, for
// the next one's decrease.
func (c Controller) wake(s *paceState, now int64) {
	*s = paceState{Dec: s.Dec, Hit: s.Hit, Sign: now}
	c.init(s, now)
}

func (c Controller) clamp(r float64) float64 {
	if c.Ceiling > 0 && r > c.Ceiling {
		r = c.Ceiling
	}
	return max(r, c.Min)
}

// observe folds a worker's observations into the open interval.
func (c Controller) observe(s *paceState, pct float64, limited bool) {
	s.Pct = max(s.Pct, pct)
	s.Limited = s.Limited || limited
	if pct > 0 && !s.Fine {
		hundredths := math.Round(pct * 100)
		s.Fine = math.Mod(hundredths, 5) != 0
	}
}

// tick closes the open interval when it is Interval old, moving the rate
// as its aggregate says, and opens the next. It reports whether the rate
// changed.
func (c Controller) tick(s *paceState, now int64) bool {
	if c.Static || now-s.Since < int64(c.Interval) {
		return false
	}
	pct, limited := s.Pct, s.Limited
	used := s.Used / (float64(now-s.Since) / float64(time.Second))
	// A signal clears Refill only from an interval that began after the
	// pause: the calls answered just before it said full.
	refilled := pct > 0 && s.Since >= s.Resume
	s.Since, s.Pct, s.Limited, s.Used = now, 0, false, 0
	if pct > 0 {
		s.Steady = true // a signal ends slow start, whatever it says
	}
	if pct > 0 || limited {
		s.Sign = now
	}
	if c.Lazy && now-max(s.Sign, s.Hit) >= IdleAfter*int64(c.Interval) {
		// Far from every limit for long: pacing it costs a round trip to
		// the bucket a call for nothing. The next sign paces it again
		// (Gate.activate).
		s.Idle = true
		return false
	}
	if refilled || now-s.Resume >= RefillFor*int64(c.Interval) {
		s.Refill = false
	}
	if (!limited || now-s.Dec < int64(c.Interval)) && !(pct >= FullAt && s.Fine) {
		return false
	}
	old := s.Rate
	// below is the rate of the last 429 less a margin, which the rate
	// climbs back to and not past while the window is full; 0 when none
	// is remembered.
	below := RecoverTo * s.Max
	switch {
	case !s.Steady:
		s.Rate *= 2
	case pct >= FullAt && s.Fine:
		// Full, in steps of 2 % or less: at the limit, within a few.
		// Back off by a little, to keep off the edge where a late call
		// is a 429 and a Retry-After.
		// (Not a decrease that holds off a 429's: Dec stays.)
		s.Rate *= 1 - ProbeStep
		s.rescale(now, old)
		return true
	case pct >= NearAt && below > 0:
		// Near or full: back up to just below the last 429's rate,
		// and no further.
		if s.Rate < below {
			s.Rate = min(s.Rate*(1+NearStep), below)
		}
	case pct >= NearAt:
		s.Rate *= 1 + ProbeStep
	case pct > 0 && below > 0:
		// Approaching, with a 429 remembered: a reading under 0.9 at or
		// above the rate it came at is the window refilling after its
		// pause, not room (that shows as no signal at all).
		s.Rate = min(s.Rate*(1+NearStep), max(below, s.Rate))
	case pct > 0:
		// Shown, under 0.9: close enough that a far step would
		// overshoot before the window shows it.
		s.Rate *= 1 + NearStep
	case s.Rate < below || s.Refill:
		// Below the last 429's rate, or no signal yet since its pause:
		// a window reads low after a pause because guestflow paused,
		// not because the budget grew, until it has filled again.
		s.Rate = min(s.Rate*(1+FarStep), max(below, s.Rate))
	default:
		// Far from full at the rate of the last 429, or none: the
		// budget has room it did not have (a neighbour stopped).
		s.Rate *= 1 + FarStep
		s.Max = 0
	}
	// Never more than twice what was used: callers that waited in a
	// burst do not make a rate that the average demand is far below,
	// and which would not pace anything when the budget fills.
	s.Rate = c.clamp(max(old, min(s.Rate, 2*used)))
	s.rescale(now, old)
	return s.Rate != old
}

// signalled applies a percentage seen in slow start at once, without
// waiting for the interval to close: a window near full while the rate
// still doubles is full within a fraction of the interval. The rate goes
// back to half, the last one known to leave room (as TCP halves its
// window when slow start ends), and the slots booked at the old rate are
// given up (the caller tells the sleepers: Gate.invalidate). It reports
// whether it did so. A rate held at the ceiling only ends slow start.
func (c Controller) signalled(s *paceState, pct float64, now int64) bool {
	if c.Static || s.Steady || pct < NearAt {
		return false
	}
	s.Steady = true
	if c.Ceiling > 0 && s.Rate >= c.Ceiling {
		// Held at the ceiling, not doubled past what the window takes:
		// the rate it came near at is no overshoot to undo.
		return false
	}
	s.Rate = c.clamp(s.Rate / 2)
	s.Dec = now
	s.TAT = now
	s.Since, s.Pct, s.Limited, s.Used = now, 0, false, 0
	return true
}

// throttled applies a 429 at now whose Retry-After pauses the scope until
// until: a multiplicative decrease, at most one per Interval, and the
// slots booked at the old rate given up: the next starts when the pause
// ends (the callers holding them take new ones after it:
// Gate.acquire). It reports whether the rate changed. At most one 429 per
// Interval decreases the rate, and none within an Interval of the end of
// slow start: the others are the same overload, seen by calls already in
// flight.
//
// The pause is not caught up afterwards with a burst, although Graph
// rounds Retry-After up to whole seconds: a window no longer than the
// pause is empty when it ends, and a burst the size of the pause
// followed by the rate overruns it.
func (c Controller) throttled(s *paceState, now, until int64) bool {
	s.TAT = max(s.TAT, until)
	s.Resume, s.Refill = max(s.Resume, until), true
	if c.Static || now-s.Dec < int64(c.Interval) {
		return false // the same overload, seen again
	}
	f := Backoff
	switch {
	case !s.Steady:
		f = SlowBackoff
	case s.Hit > 0 && now-s.Hit < RepeatWithin*int64(c.Interval):
		f = RepeatBackoff
	}
	s.Max = s.Rate
	s.Rate = c.clamp(s.Rate * f)
	s.Steady = true
	s.Dec, s.Hit = now, now
	s.TAT = until
	// The interval that saw the 429 must not also raise the rate.
	s.Since, s.Pct, s.Limited, s.Used = now, 0, false, 0
	return true
}
