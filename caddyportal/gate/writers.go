package gate

import (
	"io"
	"net/http"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
)

// The gate wraps the writer of a dashboard request to record its status and
// filter the dashboard's response header. Each wrapper unwraps to the next
// (Unwrap), so http.ResponseController still reaches the connection for the
// proxy's hijacks (WebSockets), flushes and deadlines.

// statusRecorder notes the status a handler sends, for the gate metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func newStatusRecorder(w http.ResponseWriter) *statusRecorder {
	return &statusRecorder{ResponseWriter: w}
}

// Unwrap serves http.ResponseController.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// WriteHeader records the first final status (or 101 Switching
// Protocols); other 1xx answers such as 103 Early Hints come before it.
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records the implicit 200 of a body sent without a header.
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Sent reports whether a final status was sent.
func (s *statusRecorder) Sent() bool { return s.status != 0 }

// Status is the status sent, or, when nothing was written, the one err
// stands for (the implicit 200 for none).
func (s *statusRecorder) Status(err error) int {
	switch {
	case s.status != 0:
		return s.status
	case err == nil:
		return http.StatusOK
	}
	return errorStatus(err)
}

// responseFilter drops the dashboard's Set-Cookie lines that reach beyond
// its session (FilterSetCookies) and, in path mode, keeps its
// Referrer-Policy from hiding same-origin referrers, just before the
// response's header is sent (every 1xx, 101 and final header alike).
type responseFilter struct {
	http.ResponseWriter
	cookiePrefix, host, pathPrefix string
	sent                           bool
}

// filterResponse wraps w with a responseFilter for session's dashboard.
func (g *Gate) filterResponse(w http.ResponseWriter, r *http.Request, session string) http.ResponseWriter {
	f := &responseFilter{ResponseWriter: w, cookiePrefix: g.o.Cookies.Name(""), host: r.Host}
	if !g.HostMode() {
		f.pathPrefix = routes.SessionPrefix + session
	}
	return f
}

// Unwrap serves http.ResponseController.
func (f *responseFilter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

func (f *responseFilter) filter() {
	hdr := f.ResponseWriter.Header()
	FilterSetCookies(hdr, f.cookiePrefix, f.host, f.pathPrefix)
	if f.pathPrefix != "" {
		DashboardReferrerPolicy(hdr)
	}
}

// WriteHeader filters the header about to be sent.
func (f *responseFilter) WriteHeader(code int) {
	if !f.sent {
		f.filter()
		f.sent = code >= 200 || code == http.StatusSwitchingProtocols
	}
	f.ResponseWriter.WriteHeader(code)
}

// Write filters the header of a body sent without WriteHeader.
func (f *responseFilter) Write(b []byte) (int, error) {
	if !f.sent {
		f.WriteHeader(http.StatusOK)
	}
	return f.ResponseWriter.Write(b)
}

// stripTrailers filters a request's trailers as its headers: the declared
// ones now, and at the end of the body the ones that arrived, before the
// proxy copies r.Trailer for the upstream (it does so when the body it
// reads reaches EOF, which passes through this reader first).
func stripTrailers(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	if r.Trailer != nil {
		StripTrailers(r.Trailer)
	}
	r.Body = &trailerFilter{ReadCloser: r.Body, req: r}
}

// trailerFilter strips client claims from req's trailers once the body is
// read: net/http fills them in only then.
type trailerFilter struct {
	io.ReadCloser
	req *http.Request
}

func (t *trailerFilter) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF && t.req.Trailer != nil {
		StripTrailers(t.req.Trailer)
	}
	return n, err
}

// isStream reports whether r opens a long-lived stream (a WebSocket over
// HTTP/1.1 Upgrade or HTTP/2 extended CONNECT).
func isStream(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || r.Method == http.MethodConnect
}
