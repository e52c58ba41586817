package container

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// pull is one image pull that concurrent starts share: a class of 50
// learners on a new image makes one pull, not 50. Each start reports the
// pull's latest message from its own goroutine: a start's progress
// callback is never called from another.
type pull struct {
	done chan struct{}
	err  error

	mu     sync.Mutex
	latest string // the engine's latest progress message
}

func (p *pull) message() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latest
}

// progressEvery bounds how often a pull's progress reaches the session
// records: every report is a store write.
const progressEvery = time.Second

// ensureImage makes the image available according to the pull policy.
func (s *Spawner) ensureImage(ctx context.Context, progress func(spawner.Progress)) error {
	if s.cfg.Pull != PullAlways {
		_, err := s.cli.ImageInspect(ctx, s.cfg.Image)
		if err == nil {
			return nil
		}
		if !notFound(err) {
			return fmt.Errorf("looking up image %s: %w", s.cfg.Image, err)
		}
		if s.cfg.Pull == PullNever {
			return fmt.Errorf("image %s is not on the engine, and the pull policy is never", s.cfg.Image)
		}
	}
	return s.sharedPull(ctx, progress)
}

// sharedPull joins the pull of the image under way, or starts one.
func (s *Spawner) sharedPull(ctx context.Context, progress func(spawner.Progress)) error {
	s.pullMu.Lock()
	p := s.pulls[s.cfg.Image]
	if p == nil {
		p = &pull{done: make(chan struct{})}
		s.pulls[s.cfg.Image] = p
		go func() {
			// Not the caller's context: the other starts waiting on
			// this pull must not fail because the first one gave up.
			pctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadyTimeout)
			defer cancel()
			p.err = s.pull(pctx, p)
			s.pullMu.Lock()
			delete(s.pulls, s.cfg.Image)
			s.pullMu.Unlock()
			close(p.done)
		}()
	}
	s.pullMu.Unlock()
	spawner.Report(progress, StepPulling, "pulling "+s.cfg.Image)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	reported := ""
	for {
		select {
		case <-p.done:
			if p.err != nil {
				return fmt.Errorf("pulling image %s: %w", s.cfg.Image, p.err)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if m := p.message(); m != "" && m != reported {
				reported = m
				spawner.Report(progress, StepPulling, m)
			}
		}
	}
}

// pull runs one pull to its end, keeping the engine's latest progress
// message for the starts that wait on it.
func (s *Spawner) pull(ctx context.Context, p *pull) error {
	resp, err := s.cli.ImagePull(ctx, s.cfg.Image, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if m.Error != nil {
			return fmt.Errorf("%s", m.Error.Message)
		}
		if m.Status == "" {
			continue
		}
		msg := "pulling " + s.cfg.Image + ": " + m.Status
		if m.ID != "" {
			msg += " " + m.ID
		}
		p.mu.Lock()
		p.latest = msg
		p.mu.Unlock()
	}
	return nil
}
