package gate

import (
	"context"
	"errors"
	"net/http"
)

// Proxy forwards an admitted request to a session's dashboard. The Caddy
// glue implements it over Caddy's own reverse_proxy; tests use
// httputil.ReverseProxy. The gate has checked, rewritten and wrapped the
// request and writer before Forward is called.
type Proxy interface {
	// Forward proxies r to the dashboard listening at the dial address
	// upstream (host:port). An error that stands for an HTTP status is a
	// *ProxyError.
	Forward(w http.ResponseWriter, r *http.Request, upstream string) error
}

// Warmer is a Proxy that can open its connection to a dashboard before
// any learner needs it: Warm sends one GET of path to the dashboard at
// upstream and discards the answer, leaving the connection open in the
// proxy's pool for the next request.
type Warmer interface {
	Warm(ctx context.Context, upstream, path string) error
}

// ProxyError is a Proxy's failure with the HTTP status it stands for:
// 502 or 504 when the dashboard failed, 499 when the browser went away.
type ProxyError struct {
	Status int
	Err    error
}

func (e *ProxyError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *ProxyError) Unwrap() error { return e.Err }

// errorStatus is the status a Proxy's error stands for: its own, or 500.
func errorStatus(err error) int {
	var pe *ProxyError
	if errors.As(err, &pe) && pe.Status != 0 {
		return pe.Status
	}
	return http.StatusInternalServerError
}
