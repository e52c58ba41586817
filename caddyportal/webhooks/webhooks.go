// Package webhooks delivers the portal's analytics events (Educates
// reference §5.5) to the global analytics webhook and to each session's own
// analytics_url.
//
// Delivery never holds up the caller: Send only queues the event, and a
// small fixed pool of workers posts it. Events of one session (or one user,
// or one environment) reach each target in the order they were sent; other
// sessions' events may be delivered concurrently, so one slow receiver only
// delays its own sessions. Each attempt is bounded by a timeout, failures
// are retried a bounded number of times with exponential backoff, and what
// cannot be delivered is logged and reported through OnResult. When the
// queue is full, new events are dropped (and reported through OnDrop)
// rather than growing memory or blocking.
//
// The package does not import Caddy.
package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout   = 5 * time.Second
	DefaultRetries   = 3
	DefaultBackoff   = 100 * time.Millisecond
	DefaultQueueSize = 1024
	DefaultWorkers   = 4
	// MaxBackoff caps the doubling wait between attempts.
	MaxBackoff = 2 * time.Second
)

// maxResponseBody is how much of a receiver's answer is read (and thrown
// away) so the connection can be reused.
const maxResponseBody = 64 << 10

// Portal identifies the portal in every payload ("portal" object of §5.5).
type Portal struct {
	Name string
	// UID is a stable unique id of the portal.
	UID string
	// Generation stands for the Kubernetes resource generation Educates
	// sends. Default (0): 1.
	Generation int64
	// URL is the portal's public base URL.
	URL string
}

// Options configure a Dispatcher. The zero value is usable and delivers
// nothing but the per-session URLs given to Send.
type Options struct {
	// URL is the global analytics webhook; empty for none.
	URL string
	// Portal fills the payload's portal object. SetPortal changes it.
	Portal Portal
	// Hold makes the workers wait, sending nothing, until SetPortal is
	// called: for a caller that learns the portal's uid only after the
	// service that emits events has started. Events are queued meanwhile.
	Hold bool
	// Client posts the events to the global URL (and to session URLs whose
	// origin the Guard allows outright). Default: a client of its own that
	// does not follow redirects (a receiver must answer, not send us
	// elsewhere).
	Client *http.Client
	// Guard decides which addresses a session's own analytics_url may
	// reach; those posts go through a client of its own whose dialer
	// checks every address it connects to. Default: a guard that allows
	// public addresses only.
	Guard *Guard
	// Timeout bounds each attempt, connection to response. Default 5s.
	Timeout time.Duration
	// Retries is how many times a failed delivery is tried again: 0 means
	// DefaultRetries, negative means none.
	Retries int
	// Backoff is the wait before the first retry; it doubles after each
	// further failure, up to MaxBackoff. Default 100ms.
	Backoff time.Duration
	// QueueSize bounds the deliveries waiting (one per event and target)
	// across the dispatcher. Default 1024.
	QueueSize int
	// Workers is how many deliveries run at once. Default 4.
	Workers int
	// Logger receives delivery failures and drops. Default: no-op.
	Logger *zap.Logger
	// OnResult is called once per event and target when it was delivered
	// (true) or given up after its retries (false). It must not block.
	OnResult func(ok bool)
	// OnDrop is called for each event and target dropped without an
	// attempt: the queue was full or the dispatcher closed. It must not
	// block.
	OnDrop func()
}

// Dispatcher queues events and delivers them in the background. Create it
// with New and stop it with Close.
type Dispatcher struct {
	opts    Options
	client  *http.Client
	guarded *http.Client // for session URLs: every dial checked by opts.Guard
	log     *zap.Logger

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc
	done   chan struct{} // closed when every worker has returned

	mu      sync.Mutex
	cond    *sync.Cond
	lanes   map[string]*lane // one per target and ordering key
	ready   []string         // lanes with jobs and no worker, FIFO
	queued  int              // jobs in lanes
	closing bool             // Close was called: no new jobs
	held    bool             // Options.Hold until SetPortal
	full    int              // events dropped for a full queue, for log sampling
	portal  Portal
	once    sync.Once
}

// lane holds the jobs of one target and ordering key. A lane is in the
// lanes map exactly while it has jobs or a worker is delivering from it,
// and at most one worker holds it, which keeps its jobs in order.
type lane struct{ jobs []job }

// job is one event for one target. The payload is built when it is sent,
// with the portal identity current then.
type job struct {
	target  string
	ev      sessions.Event
	guarded bool // a session URL: post through the guarded client
}

// New validates the options and starts the workers.
func New(opts Options) (*Dispatcher, error) {
	if opts.URL != "" {
		if err := config.ValidateWebhookURL(opts.URL); err != nil {
			return nil, err
		}
	}
	if opts.Portal.Generation == 0 {
		opts.Portal.Generation = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	switch {
	case opts.Retries == 0:
		opts.Retries = DefaultRetries
	case opts.Retries < 0:
		opts.Retries = 0
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{
			Transport:     http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: noRedirect,
		}
	}
	if opts.Guard == nil {
		opts.Guard, _ = NewGuard(nil, nil) // nothing to parse: cannot fail
	}
	d := &Dispatcher{opts: opts, client: client, guarded: opts.Guard.client(), log: opts.Logger, lanes: map[string]*lane{},
		done: make(chan struct{}), held: opts.Hold, portal: opts.Portal}
	d.cond = sync.NewCond(&d.mu)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(opts.Workers)
	for range opts.Workers {
		go func() {
			defer wg.Done()
			d.work()
		}()
	}
	go func() {
		wg.Wait()
		close(d.done)
	}()
	return d, nil
}

// SetPortal sets the portal object of the payloads not yet sent, and
// releases workers held by Options.Hold.
func (d *Dispatcher) SetPortal(p Portal) {
	if d == nil {
		return
	}
	if p.Generation == 0 {
		p.Generation = 1
	}
	d.mu.Lock()
	d.portal = p
	d.held = false
	d.cond.Broadcast()
	d.mu.Unlock()
}

// Send queues ev for the global webhook and, when sessionURL is not empty,
// for the session's own analytics_url (pass "" for user and environment
// events, which Educates sends to the global webhook only). It never
// blocks on the network: a full queue drops the event. ev.Data must not be
// changed afterwards: the payload is encoded when it is sent.
func (d *Dispatcher) Send(ev sessions.Event, sessionURL string) {
	if d == nil || d.opts.URL == "" && sessionURL == "" {
		return
	}
	if sessionURL != "" {
		// Where it may connect is decided by the guarded client's dialer,
		// on the address it connects to, not here on the name.
		if err := config.ValidateWebhookURL(sessionURL); err != nil {
			d.log.Warn("analytics webhook: not sending to an invalid session URL",
				zap.String("event", ev.Name), zap.String("session", ev.Session), zap.Error(err))
			d.result(false)
			sessionURL = ""
		}
	}
	key := orderKey(ev)
	if d.opts.URL != "" {
		d.enqueue(job{target: d.opts.URL, ev: ev}, key)
	}
	if sessionURL != "" {
		d.enqueue(job{target: sessionURL, ev: ev, guarded: !d.opts.Guard.OriginAllowed(sessionURL)}, key)
	}
}

// orderKey groups the events that must arrive in order.
func orderKey(ev sessions.Event) string {
	switch {
	case ev.Session != "":
		return "s/" + ev.Session
	case strings.HasPrefix(ev.Name, sessions.EventUserPrefix):
		return "u/" + ev.User
	default:
		return "e/" + ev.Environment
	}
}

func (d *Dispatcher) enqueue(j job, key string) {
	key = j.target + "\x00" + strconv.FormatBool(j.guarded) + "\x00" + key
	d.mu.Lock()
	if d.closing || d.queued >= d.opts.QueueSize {
		closing := d.closing
		if !closing {
			d.full++
		}
		full := d.full
		d.mu.Unlock()
		// A dead receiver under load would otherwise log every event:
		// log the first drop and then every thousandth (OnDrop counts all).
		if !closing && (full == 1 || full%1000 == 0) {
			d.log.Warn("analytics webhook: queue full, dropping events", zap.String("target", config.RedactURL(j.target)),
				zap.String("event", j.ev.Name), zap.String("session", j.ev.Session),
				zap.Int("queue_size", d.opts.QueueSize), zap.Int("dropped_so_far", full))
		}
		d.drop()
		return
	}
	l, ok := d.lanes[key]
	if !ok {
		l = &lane{}
		d.lanes[key] = l
		d.ready = append(d.ready, key)
		d.cond.Signal()
	}
	l.jobs = append(l.jobs, j)
	d.queued++
	d.mu.Unlock()
}

// work delivers jobs until Close has been called and nothing is left.
func (d *Dispatcher) work() {
	for {
		d.mu.Lock()
		// A held dispatcher waits for SetPortal, or for Close, which then
		// sends what it can with the portal it has.
		for (len(d.ready) == 0 || d.held) && !d.closing {
			d.cond.Wait()
		}
		if len(d.ready) == 0 {
			d.mu.Unlock()
			return
		}
		key := d.ready[0]
		d.ready = d.ready[1:]
		l := d.lanes[key]
		j := l.jobs[0]
		l.jobs = l.jobs[1:]
		d.queued--
		portal := d.portal
		d.mu.Unlock()

		if d.ctx.Err() != nil {
			d.drop() // Close ran out of time: count the rest, send nothing
		} else if body, err := json.Marshal(NewMessage(portal, j.ev)); err != nil {
			// Data holds a value JSON cannot encode: a bug in the caller,
			// but it must not take the portal down.
			d.log.Error("analytics webhook: encoding event", zap.String("event", j.ev.Name), zap.Error(err))
			d.result(false)
		} else {
			d.result(d.deliver(j, body))
		}

		d.mu.Lock()
		if len(l.jobs) > 0 {
			// To the back of the line, so a busy session does not starve
			// the others.
			d.ready = append(d.ready, key)
			d.cond.Signal()
		} else {
			delete(d.lanes, key)
		}
		d.mu.Unlock()
	}
}

// deliver posts one job with retries and reports whether it arrived.
func (d *Dispatcher) deliver(j job, body []byte) bool {
	wait := d.opts.Backoff
	var err error
	for attempt := 0; attempt <= d.opts.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-d.ctx.Done():
				t.Stop()
				return d.failed(j, attempt, d.ctx.Err())
			}
			wait = min(2*wait, MaxBackoff)
		}
		var retry bool
		if retry, err = d.post(j, body); err == nil {
			return true
		}
		if !retry {
			return d.failed(j, attempt+1, err)
		}
	}
	return d.failed(j, d.opts.Retries+1, err)
}

func (d *Dispatcher) failed(j job, attempts int, err error) bool {
	d.log.Warn("analytics webhook: delivery failed", zap.String("target", config.RedactURL(j.target)),
		zap.String("event", j.ev.Name), zap.String("session", j.ev.Session), zap.Int("attempts", attempts), zap.Error(err))
	return false
}

// post makes one attempt. It reports whether a failure is worth retrying:
// network errors, timeouts, 408, 429 and 5xx are; other answers, and
// addresses the guard refuses, are not.
func (d *Dispatcher) post(j job, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(d.ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.target, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddyportal-analytics")
	client := d.client
	if j.guarded {
		client = d.guarded
	}
	resp, err := client.Do(req)
	if err != nil {
		// A *url.Error quotes the whole URL, query included: keep only
		// the cause so secrets in the query stay out of the logs.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return !errors.Is(err, ErrBlocked), err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("receiver answered %s", resp.Status)
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests ||
		resp.StatusCode == http.StatusRequestTimeout, err
}

func (d *Dispatcher) result(ok bool) {
	if d.opts.OnResult != nil {
		d.opts.OnResult(ok)
	}
}

func (d *Dispatcher) drop() {
	if d.opts.OnDrop != nil {
		d.opts.OnDrop()
	}
}

// Close stops accepting events and delivers what is queued until ctx is
// done; then it abandons the rest (in-flight attempts are cancelled and
// queued events reported through OnDrop), waits for the workers to stop,
// and returns ctx's error. Calling Close again waits the same way.
func (d *Dispatcher) Close(ctx context.Context) error {
	if d == nil {
		return nil
	}
	d.once.Do(func() {
		d.mu.Lock()
		d.closing = true
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	var err error
	select {
	case <-d.done:
	case <-ctx.Done():
		err = ctx.Err()
		d.cancel()
		// Cancelled requests and backoff waits return at once, and the
		// workers drop whatever is left without sending it.
		<-d.done
	}
	d.cancel()
	d.client.CloseIdleConnections()
	d.guarded.CloseIdleConnections()
	if err != nil {
		d.log.Warn("analytics webhook: closed before every event was delivered", zap.Error(err))
	}
	return err
}
