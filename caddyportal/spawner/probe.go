package spawner

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ProbeTimeout bounds one readiness probe: a dashboard that accepts the
// connection but never answers must not hold a start longer than this per try.
const ProbeTimeout = 2 * time.Second

// Probe sends one GET for path to the dashboard at addr (host:port) and
// returns nil when it answers 2xx or 3xx. path "" means "/". The probe takes
// at most ProbeTimeout (less when ctx ends sooner).
//
// It speaks HTTP/1.1 on a connection of its own instead of going through an
// http.Client: a class start probes hundreds of dashboards every few
// milliseconds, most of them not listening yet, and the client's machinery
// (a dial goroutine, a connection pool it must not use, redirect handling
// it must turn off) cost several times the connect itself. A 3xx is an
// answer (following it could lead anywhere, the portal's own login
// included), the connection is closed after each probe (no idle sockets
// to dashboards that have since stopped), and no HTTP_PROXY applies.
func Probe(ctx context.Context, addr, path string) error {
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	fail := func(err error) error { return fmt.Errorf("readiness probe GET %s: %w", path, err) }
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fail(err)
	}
	req.Header.Set("User-Agent", "caddyportal-readiness-probe")
	req.Close = true
	// The deadline bounds a dashboard that accepts but never answers; a
	// cancelled ctx (the start given up) ends the probe at once.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := req.Write(conn); err != nil {
		return fail(ctxErr(ctx, err))
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, req)
	// An interim answer (100 Continue, 103 Early Hints) comes before the
	// real one.
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		return fail(ctxErr(ctx, err))
	}
	// Drain a little so the server sees a clean exchange; the body is not
	// needed and may be large.
	_, _ = io.CopyN(io.Discard, resp.Body, 4096)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fail(fmt.Errorf("HTTP %d", resp.StatusCode))
	}
	return nil
}

// ctxErr says why a probe's read or write failed when its context ended
// (the deadline set on the connection gives only "i/o timeout").
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}
