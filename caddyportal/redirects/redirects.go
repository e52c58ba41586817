// Package redirects decides which URLs the portal may send a browser to
// (index_url, redirect_url) and builds notification redirects. Only exact
// origins from an allow list, or plain same-origin paths, pass: anything
// that a browser might read as another host is refused, so the portal is
// never an open redirect.
package redirects

import (
	"errors"
	"net/url"
	"strings"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

// ErrNotAllowed is returned for a target outside the allowed origins.
var ErrNotAllowed = errors.New("redirect target is not an allowed origin")

// ErrMalformed is returned for a target that is not a clean URL.
var ErrMalformed = errors.New("redirect target is not a valid URL")

// Policy is a set of allowed origins.
type Policy struct {
	origins map[string]bool
}

// NewPolicy returns a policy allowing the origins of the given URLs.
// Entries that are not absolute http(s) URLs are reported as an error.
func NewPolicy(urls ...string) (*Policy, error) {
	p := &Policy{origins: map[string]bool{}}
	for _, u := range urls {
		if u == "" {
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
			return ErrNotAllowed
		}
		u, err := url.Parse(target)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
			return ErrMalformed
		}
		return nil
	}
	o, err := config.Origin(target)
	if err != nil {
		return ErrMalformed
	}
	if p != nil && p.origins[o] {
		return nil
	}
	if self != "" {
		if so, err := config.Origin(self); err == nil && so == o {
			return nil
		}
	}
	return ErrNotAllowed
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
