package config

import (
	"strings"
	"testing"
	"time"
)

// TestParseDuration: the one duration parser, for JSON and the Caddyfile,
// accepts what Caddy's own does (days anywhere) and refuses negatives.
func TestParseDurationCaddyForms(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"90s":       90 * time.Second,
		"60m":       time.Hour,
		"1d":        24 * time.Hour,
		"1.5d":      36 * time.Hour,
		"1d12h":     36 * time.Hour,
		"12h1d":     36 * time.Hour,
		"1h30m":     90 * time.Minute,
		"2d1h30m5s": 49*time.Hour + 30*time.Minute + 5*time.Second,
		"500ms":     500 * time.Millisecond,
		"0":         0,
	} {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for s, msg := range map[string]string{
		"-1h":                   `duration "-1h" must not be negative`,
		"-1d":                   `duration "-1d" must not be negative`,
		"soon":                  `invalid duration "soon" (use forms like 90s, 60m, 2h, 1d)`,
		"d":                     `invalid duration "d"`,
		"1x":                    `invalid duration "1x"`,
		"1..5d":                 `invalid duration "1..5d"`,
		"1h1":                   `invalid duration "1h1"`,
		strings.Repeat("1", 65): "is too long",
	} {
		if _, err := ParseDuration(s); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseDuration(%q) error %v, want %q", s, err, msg)
		}
	}
}
