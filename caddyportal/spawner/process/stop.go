package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/internal/procfs"
)

// Stop implements spawner.Spawner: SIGTERM to every process of the
// environment, SIGKILL to what is left after StopTimeout, wait until none is
// left, then remove the session directory, the output pipe and the state
// file. The directory is removed only once no process can write to it any
// more. Stopping an environment that is already gone just removes its files.
func (s *Spawner) Stop(ctx context.Context, env spawner.Env) error {
	session := env.Session
	// The session name builds the path RemoveAll deletes: never trust a
	// record that could point it elsewhere (State.Dir is not used for this).
	if !sessionName.MatchString(session) {
		return fmt.Errorf("process spawner: invalid session name %q", session)
	}
	st := s.parseState(env)
	if st.Replica != "" && (st.Replica != s.cfg.Replica || st.Portal != s.cfg.Portal) {
		return fmt.Errorf("process spawner: environment %s belongs to %s/%s, not %s/%s",
			session, st.Portal, st.Replica, s.cfg.Portal, s.cfg.Replica)
	}
	if st.PID > 0 {
		// A record of an environment that was since replaced by a newer one
		// of the same session name: that one is gone already, and the newer
		// one (same marker, same directory) must not go with it.
		if b, err := os.ReadFile(s.stateFile(session)); err == nil {
			var cur State
			if json.Unmarshal(b, &cur) == nil && cur.PID > 0 && (cur.PID != st.PID || cur.Start != st.Start) {
				s.log.Info("not stopping a newer environment of the same session", zap.String("session", session))
				return nil
			}
		}
	}
	if err := s.kill(ctx, session, st); err != nil {
		return err
	}
	s.mu.Lock()
	c := s.children[session]
	s.mu.Unlock()
	if c != nil {
		// Reap our child and let the output reader log the last lines, so
		// nothing of the environment is pending in this process either.
		for _, ch := range []chan struct{}{c.exited, c.output} {
			if ch == nil {
				continue
			}
			select {
			case <-ch:
			case <-time.After(killGrace):
				s.log.Warn("environment stopped but its output or exit status did not arrive",
					zap.String("session", session))
			}
		}
	}
	if err := os.RemoveAll(s.sessionDir(session)); err != nil {
		return fmt.Errorf("process spawner: removing %s: %w", session, err)
	}
	s.removeFormerDir(session, st)
	// Made now rather than by the next start, which is on a learner's way.
	if err := s.spare.renew(spareDir); err != nil {
		s.log.Warn("making a spare session directory; the next start makes its own", zap.Error(err))
	}
	// The pipe is kept for a later start only when this value saw its
	// last writer go: a descriptor held by a process that escaped the stop
	// could otherwise read or write the next environment's output.
	pipeDone := false
	var err error
	if c != nil {
		c.mu.Lock()
		pipeDone = c.eof
		c.mu.Unlock()
	}
	if pipeDone {
		err = s.spare.put(sparePipe, s.pipeFile(session))
	} else if err = os.Remove(s.pipeFile(session)); os.IsNotExist(err) {
		err = nil
	}
	if err == nil {
		err = s.spare.put(spareState, s.stateFile(session))
	}
	if err != nil {
		return fmt.Errorf("process spawner: removing %s: %w", session, err)
	}
	s.forget(session)
	s.log.Info("environment stopped", zap.String("session", session))
	return nil
}

// removeFormerDir removes the directory and files of an environment started
// under another `dir` of this portal's process spawners: a config reload
// that changes `dir` keeps the sessions started under the old one, and their
// learners' files would otherwise outlive them. The record is trusted only
// as far as it names <dir>/<session> of a directory that holds the state
// directory every process spawner makes in its own: a record that points
// anywhere else is left alone, with a warning.
func (s *Spawner) removeFormerDir(session string, st State) {
	if st.Dir == "" || st.Dir == s.sessionDir(session) {
		return
	}
	parent := filepath.Dir(st.Dir)
	state := filepath.Join(parent, stateDirName)
	if fi, err := os.Lstat(state); !filepath.IsAbs(st.Dir) || filepath.Clean(st.Dir) != st.Dir ||
		filepath.Base(st.Dir) != session || err != nil || !fi.IsDir() {
		s.log.Warn("not removing a session directory outside this spawner's dir that no process spawner made",
			zap.String("session", session), zap.String("dir", st.Dir))
		return
	}
	var errs []error
	for _, p := range []string{filepath.Join(state, session+".json"), filepath.Join(state, session+".out")} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, os.RemoveAll(st.Dir))
	if err := errors.Join(errs...); err != nil {
		s.log.Warn("removing a session directory of a former dir", zap.String("session", session), zap.Error(err))
		return
	}
	s.log.Info("removed a session directory of a former dir", zap.String("session", session), zap.String("dir", st.Dir))
}

// kill ends every process of the environment. Its processes are: those
// carrying its marker, and every member of a process group or session that
// is provably its own, which are the recorded group when the recorded leader
// is still the process that was started, and any group or session a marked
// process belongs to (a group ID cannot be reused while a member lives, so a
// marked member proves the group). That catches a grandchild that left the
// group (same session), and one that cleared its environment (same group).
func (s *Spawner) kill(ctx context.Context, session string, st State) error {
	marker := s.marker(session)
	groups := map[int]bool{}
	if st.PGID > 0 && st.PID == st.PGID && st.Start != 0 {
		if p, err := procfs.ReadStat(st.PID); err == nil && p.Start == st.Start {
			groups[st.PGID] = true
		}
	}
	killAt := time.Now().Add(s.cfg.StopTimeout)
	giveUp := killAt.Add(killGrace)
	termed := map[int]bool{}
	killing := false
	interval := 2 * time.Millisecond
	var known []scanned
	for {
		// A full /proc scan reads every process's environment: do it only to
		// find the processes and to confirm none is left; in between, poll
		// the ones found. That keeps a class-end storm of Stops cheap.
		known = stillAlive(known)
		if len(known) == 0 {
			procs, err := s.victims(marker, groups)
			if err != nil {
				return fmt.Errorf("process spawner: stopping %s: %w", session, err)
			}
			if len(procs) == 0 {
				return nil
			}
			known = procs
		}
		now := time.Now()
		if !killing && (now.After(killAt) || ctx.Err() != nil) {
			killing = true
			s.log.Info("environment did not stop on SIGTERM: killing it",
				zap.String("session", session), zap.Int("processes", len(known)))
		}
		if now.After(giveUp) {
			return fmt.Errorf("process spawner: stopping %s: %d processes survived SIGKILL (pids %v)",
				session, len(known), pidList(known))
		}
		for _, p := range known {
			switch {
			case killing:
				_ = syscall.Kill(p.PID, syscall.SIGKILL)
			case !termed[p.PID]:
				termed[p.PID] = true
				_ = syscall.Kill(p.PID, syscall.SIGTERM)
			}
		}
		if killing {
			// Signal whole groups too: one kill(2) reaches members forked
			// since the scan.
			for g := range groups {
				_ = syscall.Kill(-g, syscall.SIGKILL)
			}
		}
		time.Sleep(interval)
		if interval < 50*time.Millisecond {
			interval *= 2
		}
	}
}

// stillAlive keeps the processes of list that still run (same PID, same
// start time, not a zombie).
func stillAlive(list []scanned) []scanned {
	out := list[:0]
	for _, p := range list {
		if q, err := procfs.ReadStat(p.PID); err == nil && !q.Dead() && q.Start == p.Start {
			out = append(out, p)
		}
	}
	return out
}

// victims returns the environment's live processes from a pass over /proc
// that began after this call: those with its marker, and those in groups
// or in the group or session of one with its marker (groups grows by
// those).
func (s *Spawner) victims(marker string, groups map[int]bool) ([]scanned, error) {
	procs, err := s.scans.since(time.Now())
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		if p.marker == marker {
			groups[p.PGID], groups[p.SID] = true, true
		}
	}
	var out []scanned
	for _, p := range procs {
		// An exact match: "<portal>/<replica>/s-1" must not take
		// "<portal>/<replica>/s-10" with it.
		if p.marker == marker || groups[p.PGID] || groups[p.SID] {
			out = append(out, p)
		}
	}
	return out, nil
}

func pidList(ps []scanned) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.PID
	}
	sort.Ints(out)
	return out
}

// List implements spawner.Spawner: every state file of this portal replica,
// plus any environment whose processes run with this replica's marker but
// whose state file is missing. Environments whose processes still run get
// their output logged by this value from now on.
func (s *Spawner) List(ctx context.Context) ([]spawner.Env, error) {
	seen := map[string]bool{}
	var out []spawner.Env
	files, err := filepath.Glob(filepath.Join(s.stateDir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		session := strings.TrimSuffix(filepath.Base(f), ".json")
		if !sessionName.MatchString(session) {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue // stopped meanwhile
			}
			return nil, err
		}
		b = bytes.TrimSpace(b) // updateState pads a shorter record
		var st State
		if err := json.Unmarshal(b, &st); err != nil {
			// Empty when the portal died between creating the file and
			// writing it: nothing was started yet, but list it so Stop
			// cleans it up.
			st = State{Portal: s.cfg.Portal, Replica: s.cfg.Replica}
			b, _ = json.Marshal(st)
		}
		if st.Portal != s.cfg.Portal || st.Replica != s.cfg.Replica {
			continue
		}
		env := spawner.Env{Session: session, State: b}
		if st.Port > 0 {
			env.Addr = net.JoinHostPort(s.cfg.BindHost, strconv.Itoa(st.Port))
		}
		seen[session] = true
		out = append(out, env)
	}
	prefix := s.cfg.Portal + "/" + s.cfg.Replica + "/"
	procs, err := s.scans.since(time.Now())
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		session, ours := strings.CutPrefix(p.marker, prefix)
		if !ours || seen[session] || !sessionName.MatchString(session) {
			continue
		}
		seen[session] = true
		// Start writes the state file before it starts anything, and Stop
		// removes it only once nothing runs, so a marked process without
		// one was not started with this dir. Reconciliation stops it unless
		// its session is live: say why, for the operator whose second
		// portal on this host (same name and replica) just lost a dashboard.
		s.log.Warn("processes marked as this portal replica's run without a state file in its dir: "+
			"left by a run with another dir, or another portal on this host has the same name and replica "+
			"(give each its own replica); they are stopped unless their session is live",
			zap.String("session", session), zap.Int("pid", p.PID), zap.String("marker", p.marker), zap.String("dir", s.cfg.Dir))
		// Its directory is where it runs: Stop removes it there too when it
		// is a session directory of a process spawner's former dir.
		dir := s.sessionDir(session)
		if cwd, err := os.Readlink("/proc/" + strconv.Itoa(p.PID) + "/cwd"); err == nil && filepath.Base(cwd) == session {
			dir = cwd
		}
		b, _ := json.Marshal(State{Dir: dir, Portal: s.cfg.Portal, Replica: s.cfg.Replica})
		out = append(out, spawner.Env{Session: session, State: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Session < out[j].Session })
	for _, env := range out {
		if s.Alive(ctx, env) == nil {
			s.adopt(env)
		}
	}
	return out, nil
}

// adopt starts logging the output of an environment a previous run started,
// and reserves its port, unless this value already does both.
func (s *Spawner) adopt(env spawner.Env) {
	st := s.parseState(env)
	s.mu.Lock()
	if _, known := s.children[env.Session]; known {
		s.mu.Unlock()
		return
	}
	c := &child{}
	s.children[env.Session] = c
	if st.Port > 0 {
		s.ports[st.Port] = env.Session
	}
	s.mu.Unlock()
	// Non-blocking: opening a pipe's read end would otherwise wait for a
	// writer, and the environment may have died since Alive looked.
	in, err := os.OpenFile(s.pipeFile(env.Session), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	s.readOutput(env.Session, c, in)
}
