// Package health probes workshop dashboards (pooled upstreams and the
// addresses of template sessions) so that a dashboard that refuses
// connections is not handed to a learner, who would only get a 502.
//
// Each target is probed when it first appears and then every interval of
// its own: by a TCP connect by default, or by an HTTP GET of a path, where
// any answer below 400 counts as healthy. An address never probed yet
// counts as healthy: start-up and new template sessions are not held up
// waiting for a first round, which on a loaded machine could take long.
//
// A Checker started with Paused probes nothing until Resume: Caddy
// provisions the portal before it starts any listener, so dashboards served
// by the same Caddy would all fail a round run then, and every slot of the
// portal would be retired at start. The Caddy glue resumes on the first
// request, when the servers listen.
//
// A target turns unhealthy only after Failures probes in a row fail, and a
// failed probe is repeated at the next tick rather than after the interval:
// one lost connection does not take a slot out of service, and a dead
// dashboard is still found within seconds.
//
// The package does not import Caddy.
package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults for zero Probe fields.
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 5 * time.Second
)

// DefaultParallel is how many probes a round runs at once by default.
// Rounds used to probe every due target at once: with 5,000 template
// sessions that was 5,000 dials (and as many DNS lookups) together, about
// 20,000 goroutines and 500 MB of stacks and garbage at portal start-up.
const DefaultParallel = 32

// Failures is how many probes in a row must fail before a target counts
// as unhealthy.
const Failures = 2

// Probe says how and how often one target is checked.
type Probe struct {
	// Path, when set, makes the probe an HTTP GET of this path; otherwise
	// the probe is a TCP connect.
	Path string
	// Interval between probes. Default 10s.
	Interval time.Duration
	// Timeout bounds one probe. Default 5s.
	Timeout time.Duration
}

// Target is one dashboard address to probe.
type Target struct {
	Environment string
	// Addr is the upstream address as configured (host:port, or a URL).
	Addr  string
	Probe Probe
}

// Status is the last known state of one target.
type Status struct {
	Environment string
	Addr        string
	Healthy     bool
	// Checked is when the last probe finished; zero before the first.
	Checked time.Time
	// Error says why the last probe failed; empty when it succeeded.
	Error string
	// fails counts the failed probes since the last success.
	fails int
}

// Options configure a Checker.
type Options struct {
	// Targets returns what to probe; it is called before every round, so
	// targets may come and go (template sessions).
	Targets func() []Target
	// OnResult is told every probe's outcome (for metrics). It must not
	// block.
	OnResult func(t Target, healthy bool)
	// Logger receives changes of state; default no-op.
	Logger *zap.Logger
	// Tick is the longest wait between rounds, which bounds how late a new
	// target is first probed. Default 1s.
	Tick time.Duration
	// Paused holds the first round until Resume.
	Paused bool
	// Parallel bounds the probes in flight; a round with more due targets
	// takes longer. Default DefaultParallel.
	Parallel int
}

// Checker probes targets in the background. Create it with Start and stop
// it with Close. A nil *Checker reports every address healthy.
type Checker struct {
	opts   Options
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{} // Refresh: run a round now
	resume chan struct{} // closed by Resume
	once   sync.Once

	mu     sync.RWMutex
	status map[string]*Status // by Addr
	due    map[string]time.Time
}

// Start begins probing.
func Start(opts Options) *Checker {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	c := &Checker{opts: opts, status: map[string]*Status{}, due: map[string]time.Time{}, done: make(chan struct{}),
		kick: make(chan struct{}, 1), resume: make(chan struct{}),
		client: &http.Client{
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
			// A redirect is an answer: the dashboard is up.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if !opts.Paused {
		close(c.resume)
	}
	go c.run()
	return c
}

// Resume starts probing a Checker started Paused. It is cheap after the
// first call, so it can be called on every request.
func (c *Checker) Resume() {
	if c == nil {
		return
	}
	c.once.Do(func() {
		select {
		case <-c.resume:
		default:
			close(c.resume)
		}
	})
}

// Close stops probing and waits for the probes in flight.
func (c *Checker) Close() {
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
}

// Refresh makes the next round start now rather than at the next tick:
// for a caller whose targets just appeared.
func (c *Checker) Refresh() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Healthy reports whether addr may be handed out: true unless its last
// probe failed.
func (c *Checker) Healthy(addr string) bool {
	if c == nil {
		return true
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.status[addr]
	return !ok || s.Healthy
}

// Statuses returns the known state of every target probed at least once,
// by environment and address.
func (c *Checker) Statuses() []Status {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	out := make([]Status, 0, len(c.status))
	for _, s := range c.status {
		out = append(out, *s)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Environment != out[j].Environment {
			return out[i].Environment < out[j].Environment
		}
		return out[i].Addr < out[j].Addr
	})
	return out
}

func (c *Checker) run() {
	defer close(c.done)
	select {
	case <-c.ctx.Done():
		return
	case <-c.resume:
	}
	for {
		c.round()
		t := time.NewTimer(c.opts.Tick)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.kick:
			t.Stop()
		}
	}
}

// round probes every target that is due, at most Parallel at once, and
// forgets the targets that are gone.
func (c *Checker) round() {
	targets := c.opts.Targets()
	now := time.Now()
	live := map[string]bool{}
	var toProbe []Target
	for _, t := range targets {
		if live[t.Addr] {
			continue
		}
		live[t.Addr] = true
		c.mu.Lock()
		due, seen := c.due[t.Addr]
		if seen && now.Before(due) {
			c.mu.Unlock()
			continue
		}
		interval := t.Probe.Interval
		if interval <= 0 {
			interval = DefaultInterval
		}
		c.due[t.Addr] = now.Add(interval)
		c.mu.Unlock()
		toProbe = append(toProbe, t)
	}
	next := make(chan Target)
	var wg sync.WaitGroup
	for range min(c.opts.Parallel, len(toProbe)) {
		wg.Go(func() {
			for t := range next {
				c.record(t, c.probe(t))
			}
		})
	}
	for _, t := range toProbe {
		next <- t
	}
	close(next)
	wg.Wait()
	c.mu.Lock()
	for addr := range c.due {
		if !live[addr] {
			delete(c.due, addr)
			delete(c.status, addr)
		}
	}
	c.mu.Unlock()
}

func (c *Checker) record(t Target, err error) {
	if c.ctx.Err() != nil {
		return // closing: a cancelled probe says nothing about the target
	}
	c.mu.Lock()
	prev, known := c.status[t.Addr]
	s := &Status{Environment: t.Environment, Addr: t.Addr, Healthy: true, Checked: time.Now()}
	if err != nil {
		s.Error = err.Error()
		s.fails = 1
		if known {
			s.fails = prev.fails + 1
		}
		s.Healthy = s.fails < Failures
		// Probe again at the next tick, not after the interval.
		c.due[t.Addr] = s.Checked
	}
	healthy := s.Healthy
	c.status[t.Addr] = s
	c.mu.Unlock()
	if (!known && !healthy) || (known && prev.Healthy != healthy) {
		if healthy {
			c.opts.Logger.Info("dashboard upstream is healthy", zap.String("environment", t.Environment), zap.String("upstream", t.Addr))
		} else {
			c.opts.Logger.Warn("dashboard upstream is unhealthy: not handing it out", zap.String("environment", t.Environment),
				zap.String("upstream", t.Addr), zap.Error(err))
		}
	}
	if c.opts.OnResult != nil {
		c.opts.OnResult(t, healthy)
	}
}

// probe checks one target once.
func (c *Checker) probe(t Target) error {
	timeout := t.Probe.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	host, scheme := hostPort(t.Addr)
	if t.Probe.Path == "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+t.Probe.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "caddyportal-health")
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if ok := asURLError(err, &ue); ok {
			return ue.Err
		}
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s answered %s", t.Probe.Path, resp.Status)
	}
	return nil
}

func asURLError(err error, target **url.Error) bool {
	ue, ok := err.(*url.Error)
	if ok {
		*target = ue
	}
	return ok
}

// hostPort turns an upstream address (host:port, or a URL as Caddy's
// reverse proxy also accepts) into host:port and the scheme to probe with.
func hostPort(addr string) (hostport, scheme string) {
	if i := strings.Index(addr, "://"); i >= 0 {
		if u, err := url.Parse(addr); err == nil && u.Host != "" {
			port := u.Port()
			if port == "" {
				port = "80"
				if u.Scheme == "https" {
					port = "443"
				}
			}
			scheme = "http"
			if u.Scheme == "https" {
				scheme = "https"
			}
			return net.JoinHostPort(u.Hostname(), port), scheme
		}
	}
	return addr, "http"
}
