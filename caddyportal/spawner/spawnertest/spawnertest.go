// Package spawnertest holds a spawner for tests of the packages that run
// spawned sessions (sessions' users: gate, portal, metrics). Its
// environments are real loopback HTTP servers in the test process, and
// every start waits until the test lets it go, so a test can hold starts
// in the queue and watch the states in between.
package spawnertest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// Held starts each environment once Release is closed: a loopback server
// answering Page(spec), or the error Fail. Use New.
type Held struct {
	// Release lets the starts go on when closed.
	Release chan struct{}
	// Fail, when set, is what every start fails with once released.
	Fail error
	// Page is what an environment's dashboard answers; default
	// "dashboard of <session>".
	Page func(spec spawner.Spec) string

	mu   sync.Mutex
	srvs map[string]*httptest.Server
	// unsure, when set, is what Alive answers for every environment: a
	// backend that cannot tell (see Unsure).
	unsure error
}

// New returns a Held spawner whose starts wait for Release.
func New() *Held {
	return &Held{Release: make(chan struct{}), srvs: map[string]*httptest.Server{}}
}

// Start implements spawner.Spawner.
func (h *Held) Start(ctx context.Context, spec spawner.Spec, progress func(spawner.Progress)) (spawner.Env, error) {
	spawner.Report(progress, spawner.StepStarting, "creating the test dashboard")
	select {
	case <-h.Release:
	case <-ctx.Done():
		return spawner.Env{}, ctx.Err()
	}
	if h.Fail != nil {
		return spawner.Env{}, h.Fail
	}
	page := "dashboard of " + spec.Session
	if h.Page != nil {
		page = h.Page(spec)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, page)
	}))
	h.mu.Lock()
	h.srvs[spec.Session] = srv
	h.mu.Unlock()
	return spawner.Env{Session: spec.Session, Addr: strings.TrimPrefix(srv.URL, "http://")}, nil
}

// Ready implements spawner.Spawner.
func (h *Held) Ready(ctx context.Context, env spawner.Env) error {
	return spawner.Probe(ctx, env.Addr, "/")
}

// ReadyTimeout implements spawner.Spawner.
func (h *Held) ReadyTimeout() time.Duration { return 5 * time.Second }

// Stop implements spawner.Spawner: it closes the environment's server.
func (h *Held) Stop(_ context.Context, env spawner.Env) error {
	h.Kill(env.Session)
	return nil
}

// List implements spawner.Spawner: a test process has nothing left from
// an earlier run.
func (h *Held) List(context.Context) ([]spawner.Env, error) { return nil, nil }

// Alive implements spawner.Spawner: an environment is gone once Stop or
// Kill closed its server.
func (h *Held) Alive(_ context.Context, env spawner.Env) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.unsure != nil:
		return h.unsure
	case h.srvs[env.Session] == nil:
		return spawner.Gone("the test dashboard of " + env.Session + " was killed")
	}
	return nil
}

// Kill makes a session's environment die as a crashed dashboard does: its
// server closes and Alive reports it gone, but nothing is stopped.
func (h *Held) Kill(session string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if srv := h.srvs[session]; srv != nil {
		srv.Close()
		delete(h.srvs, session)
	}
}

// Unsure makes Alive answer err for every environment from now on, as a
// backend that cannot be reached does; nil makes it answer truly again.
// err must not wrap spawner.ErrGone.
func (h *Held) Unsure(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unsure = err
}

var _ spawner.Spawner = (*Held)(nil)
