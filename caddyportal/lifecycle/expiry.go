package lifecycle

import "time"

// minStep is the floor for both the "expiring" threshold and the extension
// step: Educates never warns or extends in slices shorter than 5 minutes.
const minStep = 5 * time.Minute

// thresholdCap bounds the expiry used to compute the threshold, so very long
// sessions still warn at most an hour before they end.
const thresholdCap = 4 * time.Hour

// Policy is a workshop's time limits (reference §4.4): Expires (E) is the
// session duration from activation (0 means unlimited), Overtime (O) the
// extension step (0 means "use the threshold"), and Deadline (D) the latest
// an extended session may run, counted from activation.
type Policy struct {
	Expires, Overtime, Deadline time.Duration
}

// Threshold returns T = max(5m, min(E, 4h)/4): a session is "expiring" once
// less than T remains.
func (p Policy) Threshold() time.Duration {
	return max(minStep, min(p.Expires, thresholdCap)/4)
}

// Step returns X, the time one extension adds: max(5m, O) when an overtime
// is configured, otherwise the threshold T.
func (p Policy) Step() time.Duration {
	if p.Overtime > 0 {
		return max(minStep, p.Overtime)
	}
	return p.Threshold()
}

// deadline returns D, never less than E. Configuration already guarantees
// this; repeating it here keeps the maths right for any Policy value.
func (p Policy) deadline() time.Duration { return max(p.Deadline, p.Expires) }

// ExpiresAtActivation returns when a session activated at now expires, or
// the zero time when the workshop has no time limit (E == 0).
func (p Policy) ExpiresAtActivation(now time.Time) time.Time {
	if p.Expires <= 0 {
		return time.Time{}
	}
	return now.Add(p.Expires)
}

// Times is the part of a session record the expiry maths reads. A zero
// time.Time means the value is unset.
type Times struct {
	State   State
	Started time.Time
	Expires time.Time
}

// Schedule is the computed expiry view of a session at one instant, the
// fields of the schedule and extend responses (reference §2.7, §2.8).
type Schedule struct {
	// HasExpiry reports whether Expires is set; Countdown and Extendable
	// are only sent on the wire when it is.
	HasExpiry bool
	// Countdown is the whole seconds remaining, truncated and floored at 0.
	Countdown int
	// Expiring reports that less than the threshold T remains.
	Expiring bool
	// Extendable reports that an extend request now would add time.
	Extendable bool
}

// Schedule computes the expiry view of t at now.
func (p Policy) Schedule(now time.Time, t Times) Schedule {
	if t.Expires.IsZero() {
		return Schedule{}
	}
	remaining := t.Expires.Sub(now)
	return Schedule{
		HasExpiry:  true,
		Countdown:  countdown(remaining),
		Expiring:   remaining < p.Threshold(),
		Extendable: p.extendable(remaining, t),
	}
}

// Extend applies one extension to t at now: when the session is extendable,
// the new expiry is expires+X capped at started+D and extended is true;
// otherwise it returns t.Expires unchanged and false. Refusing is not an
// error, as in Educates (reference §2.8).
func (p Policy) Extend(now time.Time, t Times) (newExpires time.Time, extended bool) {
	if t.Expires.IsZero() || !p.extendable(t.Expires.Sub(now), t) {
		return t.Expires, false
	}
	limit := t.Started.Add(p.deadline())
	next := t.Expires.Add(p.Step())
	if next.After(limit) {
		next = limit
	}
	return next, true
}

// extendable implements the four conditions of reference §4.4. The caller
// has already checked that Expires is set. One condition is added: time must
// remain. Educates would extend a RUNNING session whose expiry has passed
// but which its 15-second sweeper has not reached yet; caddyportal enforces
// expiry at its instant, so an expired session cannot be revived.
func (p Policy) extendable(remaining time.Duration, t Times) bool {
	if t.State != Running || t.Started.IsZero() || remaining <= 0 {
		return false
	}
	return t.Expires.Before(t.Started.Add(p.deadline())) && remaining < p.Step()
}

// countdown converts a remaining duration to whole seconds, dropping any
// partial second and never going below zero.
func countdown(remaining time.Duration) int {
	if remaining <= 0 {
		return 0
	}
	return int(remaining / time.Second)
}
