package gate

import (
	"io"
	"net/http"
)

// The gate wraps the writer of a dashboard request to record its status and
// filter the dashboard's response header. Each wrapper unwraps to the next
// (Unwrap), so http.ResponseController still reaches the connection for the
// proxy's hijacks (WebSockets), flushes and deadlines.

// dashboardWriter is the writer of a proxied dashboard request. It
// records the status sent, for the gate metrics, and just before the
// response's header is sent (every 1xx, 101 and final header alike) it
// drops the dashboard's Set-Cookie lines that reach beyond its session
// (FilterSetCookies) and, in path mode, keeps its Referrer-Policy from
// hiding same-origin referrers.
type dashboardWriter struct {
	http.ResponseWriter
	cookiePrefix, host, pathPrefix string
	// status is the first final status (or 101) sent; 0 before.
	status int
}

// Unwrap serves http.ResponseController.
func (d *dashboardWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// WriteHeader filters the header about to be sent and records the first
// final status (or 101 Switching Protocols); other 1xx answers such as 103
// Early Hints come before it.
func (d *dashboardWriter) WriteHeader(code int) {
	if d.status == 0 {
		hdr := d.ResponseWriter.Header()
		FilterSetCookies(hdr, d.cookiePrefix, d.host, d.pathPrefix)
		if d.pathPrefix != "" {
			DashboardReferrerPolicy(hdr)
		}
		if code >= 200 || code == http.StatusSwitchingProtocols {
			d.status = code
		}
	}
	d.ResponseWriter.WriteHeader(code)
}

// Write filters and records the header of a body sent without
// WriteHeader.
func (d *dashboardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.WriteHeader(http.StatusOK)
	}
	return d.ResponseWriter.Write(b)
}

// Sent reports whether a final status was sent.
func (d *dashboardWriter) Sent() bool { return d.status != 0 }

// Status is the status sent, or, when nothing was written, the one err
// stands for (the implicit 200 for none).
func (d *dashboardWriter) Status(err error) int {
	switch {
	case d.status != 0:
		return d.status
	case err == nil:
		return http.StatusOK
	}
	return errorStatus(err)
}

// stripTrailers filters a request's trailers as its headers: the declared
// ones now, and at the end of the body the ones that arrived, before the
// proxy copies r.Trailer for the upstream (it does so when the body it
// reads reaches EOF, which passes through this reader first).
func stripTrailers(r *http.Request) {
	// A request without a body (Content-Length 0, not chunked) has no
	// trailers either.
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
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
