package gate

import (
	"context"
	"sync"
	"time"
)

// CheckFunc reads a session afresh (no cache) and reports whether it is
// still live (RUNNING or WAITING) and, if so, the instant it ends unless
// something changes it (its expiry; zero for none). An error counts as
// "not live": a stream the gate cannot vouch for is closed, and the
// browser's reconnect goes through the gate's checks again.
type CheckFunc func(ctx context.Context, session string) (live bool, until time.Time, err error)

// endedWindow is how long the registry remembers that a session ended, so
// that a request admitted just before (the gate's check and its
// registration are not one step) is stopped as it registers. Session names
// are never reused, so a long memory is harmless.
const endedWindow = time.Minute

// changedWindow is how long the registry remembers that another process
// changed a session: a request that registers within it is checked afresh,
// since its admission may have read the record from before the change (the
// gate's cache keeps records for up to a second). It is short because
// routine writes (activity) change sessions too, and each check is a read.
const changedWindow = 5 * time.Second

// checkTimeout bounds one background check of a session.
const checkTimeout = 10 * time.Second

// Streams tracks the requests the gate has open to dashboards — WebSockets,
// server-sent events, long polls, plain requests — by session, so that all
// of them end when their session does: at once when this process ends the
// session (End), after a fresh read when another process may have changed
// it (Changed), and at the session's expiry instant, which no write
// announces (a timer per session). A request whose session had already
// ended by the time it registers is stopped as it registers.
//
// One Streams serves a portal for the life of the process, across config
// reloads: streams opened under an old config stay open after a reload and
// must still end with their session.
type Streams struct {
	now func() time.Time

	mu       sync.Mutex
	check    CheckFunc
	sessions map[string]*sessionStreams
	ended    map[string]time.Time // sessions End closed, and when
	changed  map[string]time.Time // sessions Changed reported, and when
	pruned   time.Time
	closed   bool
	// distrusting holds whoever said, through Distrust, that this process
	// cannot prove it has heard of every change other processes made (the
	// gate of each config running, during a reload two): while it is not
	// empty, requests of shared sessions are stopped as they register.
	distrusting map[any]bool
}

// sessionStreams is one session's open requests and its check timer.
type sessionStreams struct {
	open  map[*Stream]struct{}
	timer *time.Timer
	at    time.Time // when timer fires; zero when no timer is armed
	// checking is set while a check runs; again asks it to run once more,
	// because something changed while it was reading.
	checking, again bool
	// shared is set when a request was opened as shared (see Open).
	shared bool
}

// Stream is a request registered with Open; call Done when it ends by
// itself. It is the registry's entry too, so registering costs one
// allocation.
type Stream struct {
	stop    func()
	s       *Streams
	session string
	e       *sessionStreams // nil when the request was stopped at Open
}

// Done removes the request from the registry.
func (st *Stream) Done() {
	if st.e == nil {
		return
	}
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.sessions[st.session]; cur == st.e {
		delete(st.e.open, st)
		if len(st.e.open) == 0 {
			s.drop(st.session, st.e)
		}
	}
}

// NewStreams returns an empty registry on the clock now (nil: time.Now).
func NewStreams(now func() time.Time) *Streams {
	if now == nil {
		now = time.Now
	}
	return &Streams{now: now, sessions: map[string]*sessionStreams{},
		ended: map[string]time.Time{}, changed: map[string]time.Time{}, distrusting: map[any]bool{}}
}

// SetCheck sets how sessions are read afresh. The latest config's service
// sets it, so that streams opened under an older config are checked too.
func (s *Streams) SetCheck(check CheckFunc) {
	s.mu.Lock()
	s.check = check
	s.mu.Unlock()
}

// Open registers a request of session that the gate admitted as live until
// until (the session's expiry; zero for none). shared says that its
// dashboard serves other sessions after this one (a slot of a fixed pool),
// so the request must not outlive what this process can vouch for (see
// Distrust). stop must end the request and its connection; it is called at
// most once, from any goroutine, and must not block. The caller calls Done
// on the result when the request ends by itself.
func (s *Streams) Open(session string, until time.Time, shared bool, stop func()) *Stream {
	st := &Stream{stop: stop, s: s, session: session}
	now := s.now()
	s.mu.Lock()
	_, ended := s.ended[session]
	if ended || s.closed || shared && len(s.distrusting) > 0 || !until.IsZero() && !now.Before(until) {
		s.mu.Unlock()
		stop()
		return st
	}
	e := s.sessions[session]
	if e == nil {
		e = &sessionStreams{open: map[*Stream]struct{}{}}
		s.sessions[session] = e
	}
	e.shared = e.shared || shared
	e.open[st] = struct{}{}
	st.e = e
	recheck := false
	if at, ok := s.changed[session]; ok && now.Sub(at) < changedWindow {
		// Another process changed the session around the time it was
		// admitted: the admission may have used the record from before.
		recheck = true
	} else if !until.IsZero() && (e.at.IsZero() || until.Before(e.at)) {
		s.arm(session, e, until, now)
	}
	s.mu.Unlock()
	if recheck {
		s.recheck(session)
	}
	return st
}

// End stops every open request of session now, and any that registers
// later. Call it when the session stops being live (STOPPING or STOPPED).
// It does not block: stop funcs only cancel and close.
func (s *Streams) End(session string) {
	s.mu.Lock()
	s.ended[session] = s.now()
	s.pruneLocked()
	s.mu.Unlock()
	s.stop(session)
}

// stop stops the requests of session open now.
func (s *Streams) stop(session string) {
	s.mu.Lock()
	stops := s.takeLocked(session)
	s.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

// Changed tells the registry that another process may have changed session
// ("" for any session): sessions with open requests are read afresh in the
// background and their requests stopped if the session is no longer live.
// It does not block.
func (s *Streams) Changed(session string) {
	var names []string
	s.mu.Lock()
	if session == "" {
		for name := range s.sessions {
			names = append(names, name)
		}
	} else {
		s.changed[session] = s.now()
		s.pruneLocked()
		if s.sessions[session] != nil {
			names = append(names, session)
		}
	}
	s.mu.Unlock()
	for _, name := range names {
		s.recheck(name)
	}
}

// CloseAll stops every open request and any that registers later: the
// portal is going away.
func (s *Streams) CloseAll() {
	var stops []func()
	s.mu.Lock()
	s.closed = true
	for name := range s.sessions {
		stops = append(stops, s.takeLocked(name)...)
	}
	s.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

// Distrust tells the registry, on behalf of by (a gate), whether this
// process can vouch for what it admitted: stale is true while it cannot
// prove that it has heard of every change other processes made lately (its
// store's watch is cut off, see store.Current). Until by calls again with
// false, the requests of shared sessions are stopped, those open now and
// those that register: another process may have ended the session and
// handed its dashboard on, and this one would not know. Their browsers
// reconnect through the gate, which reads the session afresh. It returns
// how many requests it stopped.
func (s *Streams) Distrust(by any, stale bool) int {
	var stops []func()
	s.mu.Lock()
	if !stale {
		delete(s.distrusting, by)
		s.mu.Unlock()
		return 0
	}
	s.distrusting[by] = true
	for name, e := range s.sessions {
		if e.shared {
			stops = append(stops, s.takeLocked(name)...)
		}
	}
	s.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	return len(stops)
}

// Count reports how many requests of session are open.
func (s *Streams) Count(session string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.sessions[session]; e != nil {
		return len(e.open)
	}
	return 0
}

// takeLocked forgets session's requests and returns their stop funcs.
func (s *Streams) takeLocked(session string) []func() {
	e := s.sessions[session]
	if e == nil {
		return nil
	}
	s.drop(session, e)
	stops := make([]func(), 0, len(e.open))
	for st := range e.open {
		stops = append(stops, st.stop)
	}
	return stops
}

// drop forgets a session's entry and its timer. s.mu is held.
func (s *Streams) drop(session string, e *sessionStreams) {
	if e.timer != nil {
		e.timer.Stop()
	}
	e.at = time.Time{}
	delete(s.sessions, session)
}

// arm makes the session's check run at the instant at (now is the time
// now). s.mu is held. e.at is at itself, not now plus the delay: read
// again a moment later, that would lie past at, and the next request of
// the session, finding its expiry before e.at, would arm a new timer (it
// once did so for every request).
func (s *Streams) arm(session string, e *sessionStreams, at, now time.Time) {
	if e.timer != nil {
		e.timer.Stop()
	}
	e.at = at
	e.timer = time.AfterFunc(at.Sub(now), func() { s.recheck(session) })
}

// recheck reads session afresh in the background, stopping its requests if
// it is no longer live and otherwise re-arming its timer at its (possibly
// extended) expiry. Checks of one session do not overlap; a request for one
// while another runs makes that one run again.
func (s *Streams) recheck(session string) {
	s.mu.Lock()
	e := s.sessions[session]
	if e == nil {
		s.mu.Unlock()
		return
	}
	if e.checking {
		e.again = true
		s.mu.Unlock()
		return
	}
	e.checking = true
	check := s.check
	s.mu.Unlock()
	go func() {
		for {
			live, until, err := false, time.Time{}, error(nil)
			if check != nil {
				ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
				live, until, err = check(ctx, session)
				cancel()
			}
			if err != nil {
				// Fail closed, but only for what is open now: the
				// session may well be live, and its reconnects pass the
				// gate's own checks.
				s.stop(session)
				return
			}
			if !live {
				s.End(session)
				return
			}
			s.mu.Lock()
			if s.sessions[session] != e {
				s.mu.Unlock()
				return // all its requests ended meanwhile
			}
			if e.again {
				e.again = false
				check = s.check
				s.mu.Unlock()
				continue
			}
			e.checking = false
			if e.timer != nil {
				e.timer.Stop()
			}
			e.at = time.Time{}
			if !until.IsZero() {
				s.arm(session, e, until, s.now())
			}
			s.mu.Unlock()
			return
		}
	}()
}

// pruneLocked forgets ended and changed marks that no longer matter, at
// most once per changedWindow. s.mu is held.
func (s *Streams) pruneLocked() {
	now := s.now()
	if now.Sub(s.pruned) < changedWindow {
		return
	}
	s.pruned = now
	for name, at := range s.ended {
		if now.Sub(at) >= endedWindow {
			delete(s.ended, name)
		}
	}
	for name, at := range s.changed {
		if now.Sub(at) >= changedWindow {
			delete(s.changed, name)
		}
	}
}
