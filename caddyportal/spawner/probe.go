package spawner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ProbeTimeout bounds one readiness probe: a dashboard that accepts the
// connection but never answers must not hold a start longer than this per try.
const ProbeTimeout = 2 * time.Second

// probeClient follows no redirects (a 3xx is an answer: the dashboard runs,
// and following it could lead anywhere, the portal's own login included) and
// keeps no idle connections, so probing hundreds of environments leaves no
// sockets to dashboards that have since stopped.
var probeClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil, // a probe goes to addr itself, never through HTTP_PROXY
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Probe sends one GET for path to the dashboard at addr (host:port) and
// returns nil when it answers 2xx or 3xx. path "" means "/". The probe takes
// at most ProbeTimeout (less when ctx ends sooner).
func Probe(ctx context.Context, addr, path string) error {
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("readiness probe: %w", err)
	}
	req.Header.Set("User-Agent", "caddyportal-readiness-probe")
	resp, err := probeClient.Do(req)
	if err != nil {
		return fmt.Errorf("readiness probe GET %s: %w", path, err)
	}
	// Drain a little so the server sees a clean exchange; the body is not
	// needed and may be large.
	_, _ = io.CopyN(io.Discard, resp.Body, 4096)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("readiness probe GET %s: HTTP %d", path, resp.StatusCode)
	}
	return nil
}
