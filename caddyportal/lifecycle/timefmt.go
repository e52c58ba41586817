package lifecycle

import (
	"encoding/json"
	"fmt"
	"time"
)

// Format renders t the way the Educates portal's Django JSON encoder does
// (reference §2.1): UTC, a "Z" suffix, and milliseconds, for example
// "2026-04-12T08:03:12.123Z". Django drops the fraction when the microsecond
// field is zero ("…:12Z") and otherwise truncates microseconds to
// milliseconds, so 12.0005 s renders as "…:12.000Z". Time is truncated to
// microseconds first (Python has no nanoseconds), never rounded, so a value
// is never shown later than it is. Format returns "" for the zero time.
func Format(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000Z")
}

// FormatTime returns the JSON value for t: its Format string, or nil (JSON
// null) for the zero time. It suits map-built responses where the key is
// always present.
func FormatTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return Format(t)
}

// Time is a time.Time that marshals to JSON in the portal's wire format, and
// to null when zero. Use it in response structs.
type Time time.Time

// MarshalJSON writes the Format string, or null for the zero time.
func (t Time) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(Format(tt))
}

// UnmarshalJSON reads null (as the zero time) or an RFC 3339 timestamp, so
// the same type works in clients and tests that read responses back.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time must be a string or null: %w", err)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time %q is not RFC 3339: %w", s, err)
	}
	*t = Time(v.UTC())
	return nil
}

// Time returns the value as a time.Time.
func (t Time) Time() time.Time { return time.Time(t) }
