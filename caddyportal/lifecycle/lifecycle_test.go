package lifecycle

import (
	"encoding/json"
	"testing"
	"time"
)

// t0 is an arbitrary activation instant with a sub-second part, so tests
// also catch any accidental rounding.
var t0 = time.Date(2026, 4, 12, 8, 0, 0, 250_000_000, time.UTC)

func TestStateHelpers(t *testing.T) {
	tests := []struct {
		s            State
		live, ending bool
		valid        bool
	}{
		{Starting, true, false, true},
		{Waiting, true, false, true},
		{Running, true, false, true},
		{Stopping, true, true, true},
		{Stopped, false, true, true},
		{State("BOGUS"), true, false, false},
	}
	for _, tt := range tests {
		if got := tt.s.Live(); got != tt.live {
			t.Errorf("%s.Live() = %v, want %v", tt.s, got, tt.live)
		}
		if got := tt.s.Ending(); got != tt.ending {
			t.Errorf("%s.Ending() = %v, want %v", tt.s, got, tt.ending)
		}
		if got := tt.s.Valid(); got != tt.valid {
			t.Errorf("%s.Valid() = %v, want %v", tt.s, got, tt.valid)
		}
	}
}

func TestParseState(t *testing.T) {
	tests := []struct {
		in   string
		want State
		ok   bool
	}{
		{"RUNNING", Running, true},
		{"running", Running, true},
		{"Stopping", Stopping, true},
		{"sTaRtInG", Starting, true},
		{"waiting", Waiting, true},
		{"stopped", Stopped, true},
		{"", "", false},
		{"run", "", false},
		{"RUNNING ", "", false},
	}
	for _, tt := range tests {
		got, ok := ParseState(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseState(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestThresholdAndStep(t *testing.T) {
	tests := []struct {
		name      string
		p         Policy
		threshold time.Duration
		step      time.Duration
	}{
		{"60m no overtime", Policy{Expires: 60 * time.Minute}, 15 * time.Minute, 15 * time.Minute},
		{"8h caps at 4h/4", Policy{Expires: 8 * time.Hour}, time.Hour, time.Hour},
		{"4h exactly", Policy{Expires: 4 * time.Hour}, time.Hour, time.Hour},
		{"short expiry floors at 5m", Policy{Expires: 10 * time.Minute}, 5 * time.Minute, 5 * time.Minute},
		{"unlimited", Policy{}, 5 * time.Minute, 5 * time.Minute},
		{"overtime below 5m raised", Policy{Expires: 60 * time.Minute, Overtime: 2 * time.Minute}, 15 * time.Minute, 5 * time.Minute},
		{"overtime 20m", Policy{Expires: 60 * time.Minute, Overtime: 20 * time.Minute}, 15 * time.Minute, 20 * time.Minute},
		{"negative overtime means unset", Policy{Expires: 60 * time.Minute, Overtime: -time.Minute}, 15 * time.Minute, 15 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Threshold(); got != tt.threshold {
				t.Errorf("Threshold() = %v, want %v", got, tt.threshold)
			}
			if got := tt.p.Step(); got != tt.step {
				t.Errorf("Step() = %v, want %v", got, tt.step)
			}
		})
	}
}

// TestWorkedExample follows reference §4.4: E=60m, D=120m, no overtime.
func TestWorkedExample(t *testing.T) {
	p := Policy{Expires: 60 * time.Minute, Deadline: 120 * time.Minute}
	exp := p.ExpiresAtActivation(t0)
	if want := t0.Add(60 * time.Minute); !exp.Equal(want) {
		t.Fatalf("ExpiresAtActivation = %v, want %v", exp, want)
	}
	s := Times{State: Running, Started: t0, Expires: exp}

	// 50 minutes remaining: neither expiring nor extendable.
	now := t0.Add(10 * time.Minute)
	if got := p.Schedule(now, s); got != (Schedule{HasExpiry: true, Countdown: 3000}) {
		t.Errorf("at 50m remaining: %+v", got)
	}
	if e, ok := p.Extend(now, s); ok || !e.Equal(exp) {
		t.Errorf("Extend at 50m remaining = %v, %v; want unchanged, false", e, ok)
	}

	// Exactly 15 minutes remaining: remaining < X is false, so not yet.
	now = exp.Add(-15 * time.Minute)
	if got := p.Schedule(now, s); got.Extendable || got.Expiring || got.Countdown != 900 {
		t.Errorf("at exactly 15m remaining: %+v", got)
	}
	// One nanosecond later it is both expiring and extendable.
	now = now.Add(time.Nanosecond)
	if got := p.Schedule(now, s); !got.Extendable || !got.Expiring || got.Countdown != 899 {
		t.Errorf("just inside last 15m: %+v", got)
	}

	// Extend repeatedly near each expiry: +15m each time until the cap.
	wants := []time.Duration{75 * time.Minute, 90 * time.Minute, 105 * time.Minute, 120 * time.Minute}
	for i, w := range wants {
		now = s.Expires.Add(-time.Minute)
		e, ok := p.Extend(now, s)
		if !ok || !e.Equal(t0.Add(w)) {
			t.Fatalf("extension %d = %v, %v; want %v, true", i+1, e.Sub(t0), ok, w)
		}
		s.Expires = e
	}

	// At the deadline: never extendable again, even in the last second.
	now = s.Expires.Add(-time.Second)
	if got := p.Schedule(now, s); got.Extendable || !got.Expiring || got.Countdown != 1 {
		t.Errorf("after cap: %+v", got)
	}
	if e, ok := p.Extend(now, s); ok || !e.Equal(s.Expires) {
		t.Errorf("Extend after cap = %v, %v; want unchanged, false", e, ok)
	}
}

func TestExtendCapsPartialStep(t *testing.T) {
	// D=70m with a 15m step: the first extension only gets 10 minutes.
	p := Policy{Expires: 60 * time.Minute, Deadline: 70 * time.Minute}
	s := Times{State: Running, Started: t0, Expires: t0.Add(60 * time.Minute)}
	e, ok := p.Extend(t0.Add(55*time.Minute), s)
	if !ok || !e.Equal(t0.Add(70*time.Minute)) {
		t.Fatalf("Extend = %v, %v; want started+70m, true", e.Sub(t0), ok)
	}
}

func TestOvertimeStep(t *testing.T) {
	tests := []struct {
		name     string
		overtime time.Duration
		step     time.Duration
	}{
		{"2m raised to 5m", 2 * time.Minute, 5 * time.Minute},
		{"20m", 20 * time.Minute, 20 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy{Expires: 60 * time.Minute, Overtime: tt.overtime, Deadline: 3 * time.Hour}
			s := Times{State: Running, Started: t0, Expires: t0.Add(60 * time.Minute)}
			// Just outside the step window: not extendable.
			if p.Schedule(s.Expires.Add(-tt.step), s).Extendable {
				t.Errorf("extendable with exactly X remaining")
			}
			now := s.Expires.Add(-tt.step + time.Second)
			if !p.Schedule(now, s).Extendable {
				t.Fatalf("not extendable with X-1s remaining")
			}
			e, ok := p.Extend(now, s)
			if !ok || e.Sub(s.Expires) != tt.step {
				t.Errorf("Extend added %v (ok=%v), want %v", e.Sub(s.Expires), ok, tt.step)
			}
		})
	}
}

func TestNoDeadlineNeverExtendable(t *testing.T) {
	// Deadline unset or shorter than E behaves as D=E: never extendable.
	for _, d := range []time.Duration{0, 30 * time.Minute, 60 * time.Minute} {
		p := Policy{Expires: 60 * time.Minute, Deadline: d}
		s := Times{State: Running, Started: t0, Expires: t0.Add(60 * time.Minute)}
		now := s.Expires.Add(-time.Second)
		if got := p.Schedule(now, s); got.Extendable || !got.Expiring {
			t.Errorf("D=%v: %+v, want expiring and not extendable", d, got)
		}
		if _, ok := p.Extend(now, s); ok {
			t.Errorf("D=%v: Extend succeeded", d)
		}
	}
	// D below E is treated as D=E, also for a record whose expiry is
	// earlier than started+E (say, written under an older config).
	p := Policy{Expires: 60 * time.Minute, Deadline: 30 * time.Minute}
	s := Times{State: Running, Started: t0, Expires: t0.Add(20 * time.Minute)}
	if e, ok := p.Extend(t0.Add(19*time.Minute), s); !ok || !e.Equal(t0.Add(35*time.Minute)) {
		t.Errorf("D<E Extend = %v, %v; want started+35m, true", e.Sub(t0), ok)
	}
}

func TestUnlimited(t *testing.T) {
	p := Policy{Deadline: 2 * time.Hour}
	if e := p.ExpiresAtActivation(t0); !e.IsZero() {
		t.Fatalf("ExpiresAtActivation with E=0 = %v, want zero", e)
	}
	s := Times{State: Running, Started: t0}
	for _, now := range []time.Time{t0, t0.Add(10 * time.Hour)} {
		if got := p.Schedule(now, s); got != (Schedule{}) {
			t.Errorf("Schedule unlimited = %+v, want zero", got)
		}
		if e, ok := p.Extend(now, s); ok || !e.IsZero() {
			t.Errorf("Extend unlimited = %v, %v", e, ok)
		}
	}
}

func TestNonRunningNeverExtendable(t *testing.T) {
	p := Policy{Expires: 60 * time.Minute, Deadline: 120 * time.Minute}
	for _, st := range []State{Starting, Waiting, Stopping, Stopped, State("")} {
		s := Times{State: st, Started: t0, Expires: t0.Add(60 * time.Minute)}
		now := s.Expires.Add(-time.Minute)
		got := p.Schedule(now, s)
		if got.Extendable || !got.HasExpiry || !got.Expiring || got.Countdown != 60 {
			t.Errorf("%q: %+v", st, got)
		}
		if _, ok := p.Extend(now, s); ok {
			t.Errorf("%q: Extend succeeded", st)
		}
	}
	// A pending session (no started time) shows its activation countdown.
	s := Times{State: Waiting, Expires: t0.Add(60 * time.Second)}
	if got := p.Schedule(t0, s); got != (Schedule{HasExpiry: true, Countdown: 60, Expiring: true}) {
		t.Errorf("pending: %+v", got)
	}
	// RUNNING without a start time is a corrupt record: not extendable.
	s = Times{State: Running, Expires: t0.Add(time.Minute)}
	if got := p.Schedule(t0, s); got.Extendable {
		t.Errorf("running without started: %+v", got)
	}
}

func TestCountdown(t *testing.T) {
	p := Policy{Expires: 60 * time.Minute, Deadline: 120 * time.Minute}
	exp := t0.Add(time.Hour)
	s := Times{State: Running, Started: t0, Expires: exp}
	tests := []struct {
		now  time.Time
		want int
	}{
		{exp.Add(-90*time.Second - 999*time.Millisecond), 90},
		{exp.Add(-90 * time.Second), 90},
		{exp.Add(-time.Nanosecond), 0},
		{exp, 0},
		{exp.Add(time.Hour), 0},
	}
	for _, tt := range tests {
		got := p.Schedule(tt.now, s)
		if got.Countdown != tt.want {
			t.Errorf("remaining %v: countdown %d, want %d", exp.Sub(tt.now), got.Countdown, tt.want)
		}
		if !got.Expiring {
			t.Errorf("remaining %v: not expiring", exp.Sub(tt.now))
		}
	}
	// At and past expiry the session is over: it cannot be revived by an
	// extension even though it is still under the deadline.
	for _, now := range []time.Time{exp, exp.Add(time.Second)} {
		if p.Schedule(now, s).Extendable {
			t.Errorf("%v past expiry: extendable", now.Sub(exp))
		}
		if _, ok := p.Extend(now, s); ok {
			t.Errorf("%v past expiry: Extend succeeded", now.Sub(exp))
		}
	}
	if !p.Schedule(exp.Add(-time.Nanosecond), s).Extendable {
		t.Errorf("1ns before expiry: not extendable")
	}
}

func TestExpiringThreshold(t *testing.T) {
	p := Policy{Expires: 8 * time.Hour} // T = 1h
	exp := t0.Add(8 * time.Hour)
	s := Times{State: Running, Started: t0, Expires: exp}
	if p.Schedule(exp.Add(-time.Hour), s).Expiring {
		t.Errorf("expiring with exactly T remaining")
	}
	if !p.Schedule(exp.Add(-time.Hour+time.Nanosecond), s).Expiring {
		t.Errorf("not expiring just under T")
	}
}

func TestFormat(t *testing.T) {
	cet := time.FixedZone("CET", 2*60*60)
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"millis", time.Date(2026, 4, 12, 8, 3, 12, 123_000_000, time.UTC), "2026-04-12T08:03:12.123Z"},
		{"zero fraction", time.Date(2026, 4, 12, 8, 3, 12, 0, time.UTC), "2026-04-12T08:03:12Z"},
		{"non-UTC converted", time.Date(2026, 4, 12, 10, 3, 12, 5_000_000, cet), "2026-04-12T08:03:12.005Z"},
		{"truncated not rounded", time.Date(2026, 4, 12, 8, 3, 12, 999_999_999, time.UTC), "2026-04-12T08:03:12.999Z"},
		{"micros keep .000 like Django", time.Date(2026, 4, 12, 8, 3, 12, 500_000, time.UTC), "2026-04-12T08:03:12.000Z"},
		{"sub-microsecond is zero", time.Date(2026, 4, 12, 8, 3, 12, 999, time.UTC), "2026-04-12T08:03:12Z"},
		{"zero", time.Time{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Format(tt.in); got != tt.want {
				t.Errorf("Format = %q, want %q", got, tt.want)
			}
			want := any(tt.want)
			if tt.want == "" {
				want = nil
			}
			if got := FormatTime(tt.in); got != want {
				t.Errorf("FormatTime = %#v, want %#v", got, want)
			}
		})
	}
}

func TestTimeJSON(t *testing.T) {
	type resp struct {
		Started Time `json:"started"`
		Expires Time `json:"expires"`
	}
	cet := time.FixedZone("CET", 2*60*60)
	in := resp{Started: Time(time.Date(2026, 4, 12, 10, 3, 12, 123_456_789, cet))}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"started":"2026-04-12T08:03:12.123Z","expires":null}`; string(b) != want {
		t.Fatalf("Marshal = %s, want %s", b, want)
	}
	var out resp
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 4, 12, 8, 3, 12, 123_000_000, time.UTC); !out.Started.Time().Equal(want) {
		t.Errorf("round trip started = %v, want %v", out.Started.Time(), want)
	}
	if !out.Expires.Time().IsZero() {
		t.Errorf("round trip expires = %v, want zero", out.Expires.Time())
	}
	for _, bad := range []string{`{"started":3}`, `{"started":"yesterday"}`} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}
