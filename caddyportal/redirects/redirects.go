// Package redirects decides which URLs the portal may send a browser to
// (index_url, redirect_url) and builds notification redirects. By default
// only exact origins from an allow list, or plain same-origin paths, pass:
// anything that a browser might read as another host is refused, so the
// portal is never an open redirect. The allow list may instead be Any,
// Educates' behaviour: every absolute http(s) URL passes, still without
// the forms browsers read differently from Go.
package redirects

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

// ErrNotAllowed is returned for a target outside the allowed origins.
var ErrNotAllowed = errors.New("redirect target is not an allowed origin")

// ErrMalformed is returned for a target that is not a clean URL.
var ErrMalformed = errors.New("redirect target is not a valid URL")

// NotAllowedError is ErrNotAllowed for a known origin: it says which
// origin was refused and which Caddyfile line admits it, so the operator
// reading a client's 400 knows what to change.
type NotAllowedError struct {
	// Origin is the refused target's origin, scheme://host[:port].
	Origin string
}

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("origin %s is not allowed (admit it with the Caddyfile line \"redirects %s\" in the portal block, or \"redirects %s\" for every http(s) origin)",
		e.Origin, e.Origin, Any)
}

// Is makes errors.Is(err, ErrNotAllowed) hold.
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

// Any, given to NewPolicy in place of a URL (the Caddyfile's `redirects
// any`), allows every absolute http(s) origin, as the Educates training
// portal does: an open redirect, so an explicit opt-in.
const Any = config.RedirectsAny

// Policy is a set of allowed origins, or any.
type Policy struct {
	origins map[string]bool
	any     bool
}

// NewPolicy returns a policy allowing the origins of the given URLs, or
// every http(s) origin if one of them is Any. Entries that are neither
// absolute http(s) URLs nor Any are reported as an error.
func NewPolicy(urls ...string) (*Policy, error) {
	p := &Policy{origins: map[string]bool{}}
	for _, u := range urls {
		if u == "" {
			continue
		}
		if u == Any {
			p.any = true
			continue
		}
		o, err := config.Origin(u)
		if err != nil {
			return nil, err
		}
		p.origins[o] = true
	}
	return p, nil
}

// Check returns nil if target may be redirected to. self is the origin the
// request arrived on (scheme://host), which is always allowed; it may be
// empty.
func (p *Policy) Check(target, self string) error {
	if target == "" || len(target) > 4096 {
		return ErrMalformed
	}
	for _, c := range target {
		// Backslashes and whitespace are read by browsers in ways url.Parse
		// does not (for example "/\evil" is "//evil" to a browser).
		if c <= ' ' || c == 0x7f || c == '\\' {
			return ErrMalformed
		}
	}
	if strings.HasPrefix(target, "/") {
		if strings.HasPrefix(target, "//") {
			// Scheme-relative: another host, whose scheme the browser
			// chooses; refused even under Any, which admits absolute URLs.
			return ErrNotAllowed
		}
		u, err := url.Parse(target)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
			return ErrMalformed
		}
		return nil
	}
	// Origin refuses what is not an absolute http(s) URL (javascript:,
	// data:, opaque forms), credentials (https://trusted@evil) and hosts
	// with escapes or non-ASCII characters, under any policy.
	o, err := config.Origin(target)
	if err != nil {
		return ErrMalformed
	}
	if p != nil && (p.any || p.origins[o]) {
		return nil
	}
	if self != "" {
		if so, err := config.Origin(self); err == nil && so == o {
			return nil
		}
	}
	return &NotAllowedError{Origin: o}
}

// WithNotification returns target with its `notification` query parameter
// set to value, keeping other parameters. A target that does not parse is
// returned unchanged (reference §3.1).
func WithNotification(target, value string) string {
	u, err := url.Parse(target)
	if err != nil {
		return target
	}
	q := u.Query()
	q.Set("notification", value)
	u.RawQuery = q.Encode()
	return u.String()
}
