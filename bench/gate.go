package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// gateRounds is how many alternating rounds each variant of the gate
// scenario runs; the table reports the median round, so one round hit by a
// burst of other work on the machine does not decide the result.
const gateRounds = 3

// Goals of issue 13 for the gate, as ratios of median rounds.
const (
	goalGatedPlainRate = 0.95 // gated / plain throughput, at least
	goalGatedPlainP99  = 1.1  // gated / plain p99, at most
	goalGatedFARate    = 1.5  // gated / forward_auth throughput, at least
)

// gateVariant is one way to reach the same dashboard page.
type gateVariant struct {
	key    string // count key: gate.<key>
	title  string // row title
	url    string
	cookie string
	client *http.Client
	rounds []hammerResult
	// portalCPU and harnessCPU are the CPU time the portal process and
	// the harness (load generator, dashboard, auth service) used in the
	// timed rounds: divided by the requests, where each request's cost
	// goes.
	portalCPU, harnessCPU time.Duration
}

// roundStats is one round's figures.
type roundStats struct {
	rate     float64 // requests per second
	p50, p99 time.Duration
}

// stats returns the per-round figures and their medians.
func (v *gateVariant) stats() (rounds []roundStats, med roundStats) {
	var rates []float64
	var p50s, p99s []time.Duration
	for _, r := range v.rounds {
		s := roundStats{p50: pct(r.lat, 0.5), p99: pct(r.lat, 0.99)}
		if r.elapsed > 0 {
			s.rate = float64(r.n) / r.elapsed.Seconds()
		}
		rounds = append(rounds, s)
		rates, p50s, p99s = append(rates, s.rate), append(p50s, s.p50), append(p99s, s.p99)
	}
	return rounds, roundStats{rate: median(rates), p50: median(p50s), p99: median(p99s)}
}

// median of xs (the mean of the middle two for an even count, 0 for none).
func median[T float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runGate compares the gated dashboard proxy with two peers in the same
// Caddy process, all proxying to the same upstream: Caddy's plain
// reverse_proxy (no access control: the floor) and forward_auth to an HMAC
// cookie check (what an operator would build without caddyportal). The
// variants take turns for gateRounds rounds so drifting machine load hits
// all of them alike.
func runGate(ctx context.Context, o Options, bin, work string, rep *Report, logf func(string, ...any)) error {
	const sc = "gate"
	dash, err := echo.New("bench")
	if err != nil {
		return err
	}
	defer dash.Close()
	const faSession, faUser = "fa-session", "fa-user"
	auth, err := startAuthService(map[string]string{faSession: faUser})
	if err != nil {
		return err
	}
	defer auth.Close()
	plainPort, err := freePort()
	if err != nil {
		return err
	}
	faPort, err := freePort()
	if err != nil {
		return err
	}
	headersPort, err := freePort()
	if err != nil {
		return err
	}
	extra := fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n\treverse_proxy %s\n}\n", plainPort, dash.Addrs[0]) +
		headersSite(headersPort, dash.Addrs[0]) + forwardAuthSite(faPort, auth.Addr, dash.Addrs[0])
	spec := portalSpec{
		Data: filepath.Join(work, "badger"), Maximum: 1, Capacity: 1, Upstreams: dash.Addrs, Extra: extra, Env: o.PortalEnv,
	}
	if o.Profile > 0 {
		var err error
		if spec.Admin, err = adminAddr(); err != nil {
			return err
		}
	}
	p, err := startPortal(ctx, bin, work, spec)
	if err != nil {
		return err
	}
	defer p.Stop()
	setup := newClient(1)
	defer setup.CloseIdleConnections()
	r := &rest{base: p.Base, c: setup}
	if err := r.login(ctx); err != nil {
		return err
	}
	name, link, err := r.requestSession(ctx, "gate-user")
	if err != nil {
		return err
	}
	cookie, err := r.activate(ctx, name, link)
	if err != nil {
		return err
	}
	now := time.Now()
	gated := &gateVariant{key: "gated", title: "gated", url: p.Base + "/workshops/session/" + name + "/", cookie: cookie}
	plain := &gateVariant{key: "plain", title: "plain reverse_proxy", url: fmt.Sprintf("http://127.0.0.1:%d/", plainPort)}
	// Not a goal's peer: the cost of what the gate's contract adds to
	// every request (the learner's cookie, three identity headers) apart
	// from the gate's own work.
	headers := &gateVariant{key: "plain_headers", title: "plain reverse_proxy with the gate's cookie and headers",
		url: fmt.Sprintf("http://127.0.0.1:%d/", headersPort), cookie: cookie}
	fa := &gateVariant{key: "forward_auth", title: "forward_auth (HMAC cookie)", url: fmt.Sprintf("http://127.0.0.1:%d/", faPort),
		cookie: authCookie + "=" + auth.sign(faSession, now.Add(time.Hour))}
	variants := []*gateVariant{gated, plain, headers, fa}
	for _, v := range variants {
		// One client per variant: each keeps its own warm connections
		// instead of evicting the others' between rounds.
		v.client = newClient(o.GateConns)
		defer v.client.CloseIdleConnections()
	}

	// Every path must serve the page before it is timed, and the two that
	// check access must refuse a request without a cookie or with a forged
	// or expired one, so neither is timed while letting everything through.
	for _, v := range variants {
		if err := getPage(ctx, v.client, v.url, v.cookie); err != nil {
			return fmt.Errorf("%s: %w", v.title, err)
		}
	}
	if body, err := fetchPage(ctx, fa.client, fa.url, fa.cookie); err != nil || !strings.Contains(string(body), `<span id="u">`+faUser+`<`) {
		return fmt.Errorf("forward_auth did not pass the user header to the dashboard (%v): %.300s", err, body)
	}
	refusals := []struct {
		v            *gateVariant
		what, cookie string
	}{
		{gated, "without a cookie", ""},
		{gated, "with a forged cookie", tamper(cookie)},
		{fa, "without a cookie", ""},
		{fa, "with a forged cookie", tamper(fa.cookie)},
		{fa, "with an expired cookie", authCookie + "=" + auth.sign(faSession, now.Add(-time.Second))},
	}
	for _, c := range refusals {
		if err := getPage(ctx, c.v.client, c.v.url, c.cookie); err == nil {
			return fmt.Errorf("%s let a request %s through", c.v.title, c.what)
		}
	}

	per := o.Duration / gateRounds
	// One untimed round each first: the first load a Caddy process and a
	// client see grows heaps, goroutine stacks and connection pools, and
	// that cost belongs to no variant.
	for _, v := range variants {
		res := hammer(ctx, v.client, v.url, v.cookie, o.GateConns, per)
		rep.addErrors(sc, res.errors)
	}
	for i := range gateRounds {
		// The order rotates each round, so no variant always runs first
		// or right after the heaviest one (forward_auth leaves its
		// garbage and its auth service's work behind).
		for j := range variants {
			v := variants[(i+j)%len(variants)]
			var res hammerResult
			pcpu, hcpu, err := cpuUsed(p, func() { res = hammer(ctx, v.client, v.url, v.cookie, o.GateConns, per) })
			if err != nil {
				return err
			}
			v.portalCPU += pcpu
			v.harnessCPU += hcpu
			v.rounds = append(v.rounds, res)
			logf("gate: round %d/%d %s: %.0f req/s, p99 %s", i+1, gateRounds, v.key,
				float64(res.n)/res.elapsed.Seconds(), fmtDur(pct(res.lat, 0.99)))
		}
	}

	if o.Profile > 0 {
		// Profiled after the timed rounds, so profiling costs no measured
		// time: one extra round each for the gate and the plain proxy, whose
		// difference is where the gate's time goes.
		for _, v := range []*gateVariant{gated, plain} {
			file := filepath.Join(filepath.Dir(work), "cpu-gate-"+v.key+".pprof")
			done := cpuProfile(ctx, spec.Admin, o.Profile, file)
			res := hammer(ctx, v.client, v.url, v.cookie, o.GateConns, o.Profile+time.Second)
			if err := <-done; err != nil {
				logf("gate cpu profile (%s): %v", v.key, err)
			}
			// Errors here are failures all the same, though not timed.
			rep.addErrors(sc, res.errors)
			// A profile's samples over this count are its CPU per request.
			logf("gate cpu profile (%s): %d requests in %s", v.key, res.n, res.elapsed.Round(time.Millisecond))
		}
		rep.note("gate ran with -pprof: CPU profiles of an extra gated and plain round were taken after the timed rounds")
	}

	label := fmt.Sprintf("gate (%d clients, %d rounds of %s each)", o.GateConns, gateRounds, fmtDur(per))
	med := map[string]roundStats{}
	errs := 0
	for _, v := range variants {
		n := 0
		for _, res := range v.rounds {
			n += res.n
			errs += res.errors
			if res.firstErr != nil {
				rep.note("gate: %s: first error: %v", v.title, res.firstErr)
			}
		}
		rep.count("gate."+v.key, n)
		rounds, m := v.stats()
		med[v.key] = m
		var each []string
		for _, r := range rounds {
			each = append(each, fmt.Sprintf("%.0f", r.rate))
		}
		rep.metric(label, v.title+": throughput (rounds), p50 / p99",
			fmt.Sprintf("%.0f req/s (%s), %s / %s", m.rate, strings.Join(each, ", "), fmtDur(m.p50), fmtDur(m.p99)))
		if n > 0 {
			rep.metric(label, v.title+": CPU per request, portal / harness",
				fmt.Sprintf("%.1f µs / %.1f µs", float64(v.portalCPU.Microseconds())/float64(n),
					float64(v.harnessCPU.Microseconds())/float64(n)))
		}
	}
	rep.addErrors(sc, errs)
	g, pl, f := med["gated"], med["plain"], med["forward_auth"]
	if pl.rate > 0 && pl.p99 > 0 {
		rate := g.rate / pl.rate
		rep.goal(label, "gated / plain: throughput", fmtRatio(rate, goalGatedPlainRate),
			fmt.Sprintf("≥ %.2f×", goalGatedPlainRate), rate >= goalGatedPlainRate)
		p99 := float64(g.p99) / float64(pl.p99)
		rep.goal(label, "gated / plain: p99", fmtRatio(p99, goalGatedPlainP99),
			fmt.Sprintf("≤ %.1f×", goalGatedPlainP99), p99 <= goalGatedPlainP99)
	}
	if h := med["plain_headers"]; h.rate > 0 && pl.rate > 0 {
		rep.metric(label, "plain with the gate's cookie and headers / plain; gated / plain with them: throughput",
			fmt.Sprintf("%.2f×; %.2f×", h.rate/pl.rate, g.rate/h.rate))
	}
	if f.rate > 0 {
		rate := g.rate / f.rate
		rep.goal(label, "gated / forward_auth: throughput", fmtRatio(rate, goalGatedFARate),
			fmt.Sprintf("≥ %.1f×", goalGatedFARate), rate >= goalGatedFARate)
	}
	rep.goal(label, "errors", fmt.Sprint(errs), "0", errs == 0)
	logf("gate: median gated %.0f req/s, plain %.0f req/s, forward_auth %.0f req/s", g.rate, pl.rate, f.rate)
	return nil
}

// headersSite is a plain reverse_proxy site on port that sets the three
// headers the gate sets (values of the length the gate's would have).
func headersSite(port int, upstream string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	request_header X-Portal-Session bench-w01-s001
	request_header X-Portal-User gate-user
	request_header X-Forwarded-Prefix /workshops/session/bench-w01-s001
	reverse_proxy %s
}
`, port, upstream)
}

// tamper changes one character in the middle of a "name=value" cookie's
// value, where it is part of the signed payload or the signature (never
// the last character, whose low base64 bits may be ignored).
func tamper(cookie string) string {
	name, value, _ := strings.Cut(cookie, "=")
	b := []byte(value)
	if len(b) == 0 {
		return name + "=x"
	}
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return name + "=" + string(b)
}
