package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

func decodeState(env spawner.Env) (State, error) {
	var st State
	if err := json.Unmarshal(env.State, &st); err != nil {
		return st, fmt.Errorf("container spawner: state of %s: %w", env.Session, err)
	}
	return st, nil
}

// ReadyPath implements spawner.ReadyPather: the path the probe GETs, ""
// when the state is unreadable.
func (s *Spawner) ReadyPath(env spawner.Env) string {
	st, err := decodeState(env)
	if err != nil {
		return ""
	}
	return st.Ready
}

// Ready implements spawner.Spawner: one HTTP probe of the dashboard; when it
// fails and the container no longer runs, the error wraps spawner.ErrGone
// with the engine's reason.
func (s *Spawner) Ready(ctx context.Context, env spawner.Env) error {
	st, err := decodeState(env)
	if err != nil {
		return err
	}
	perr := spawner.Probe(ctx, env.Addr, st.Ready)
	if perr == nil {
		return nil
	}
	if err := s.Alive(ctx, env); errors.Is(err, spawner.ErrGone) {
		return err
	}
	return perr
}

// Alive implements spawner.Spawner: nil while the container runs; an error
// wrapping spawner.ErrGone, with the engine's reason, once it stopped or was
// removed; any other error when the engine cannot be asked.
func (s *Spawner) Alive(ctx context.Context, env spawner.Env) error {
	st, err := decodeState(env)
	if err != nil {
		// Not a state this spawner wrote: nothing of it can be found.
		return spawner.Gone("the container's record is unreadable")
	}
	ref := st.Container
	if ref == "" {
		ref = st.Name
	}
	res, err := s.cli.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
	if notFound(err) {
		return spawner.Gone("the container was removed")
	}
	if err != nil {
		return fmt.Errorf("asking the engine about the container: %w", err)
	}
	if c := res.Container; c.State == nil || !c.State.Running {
		return s.gone(ctx, ref, c.State)
	}
	return nil
}

// gone is the ErrGone of container ref, stopped in state st: why, in a
// learner's words, and for a container that ended by itself (not killed)
// its last output, which usually says why.
func (s *Spawner) gone(ctx context.Context, ref string, st *container.State) error {
	why := stoppedReason(st, s.cfg.Memory)
	if st != nil && !st.OOMKilled && st.ExitCode != 137 {
		if out := s.lastOutput(ctx, ref); len(out) > 0 {
			why += "; last output: " + strings.Join(out, " | ")
		}
	}
	return spawner.Gone(why)
}

// outputLines is how many of a stopped container's last output lines its
// reason quotes, and outputLine how long each may be.
const (
	outputLines = 5
	outputLine  = 200
)

// lastOutput returns the last lines a container wrote on stdout and stderr
// (none when the engine keeps no logs for it).
func (s *Spawner) lastOutput(ctx context.Context, ref string) []string {
	rc, err := s.cli.ContainerLogs(ctx, ref, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true,
		Tail: strconv.Itoa(outputLines)})
	if err != nil {
		return nil
	}
	defer rc.Close()
	// Containers run without a TTY, so the stream is multiplexed; a
	// broken stream still gives what was read before it broke.
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 64<<10))
	var lines []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > outputLine {
				l = l[:outputLine] + "…"
			}
			lines = append(lines, l)
		}
	}
	return lines[max(0, len(lines)-outputLines):]
}

// stoppedReason says in a learner's words why the engine stopped a
// container.
func stoppedReason(st *container.State, memory int64) string {
	switch {
	case st == nil:
		return "the container is not running"
	case st.OOMKilled:
		limit := ""
		if memory > 0 {
			limit = ", over its memory limit of " + humanize.IBytes(uint64(memory))
		}
		return "the container was stopped by the engine: out of memory" + limit
	case st.Error != "":
		return "the container could not run: " + st.Error
	case st.ExitCode == 137 && memory > 0:
		// Podman on cgroup v1 does not always set OOMKilled.
		return "the container was killed (SIGKILL), most likely by the engine for going over its memory limit of " + humanize.IBytes(uint64(memory))
	case st.ExitCode == 137:
		return "the container was killed (SIGKILL)"
	default:
		return "the container exited with status " + strconv.Itoa(st.ExitCode)
	}
}

// Stop implements spawner.Spawner: the engine stops the container (SIGTERM,
// then SIGKILL after the stop timeout), then it, its anonymous volumes and
// the session's network are removed. Idempotent.
func (s *Spawner) Stop(ctx context.Context, env spawner.Env) error {
	st, err := decodeState(env)
	if err != nil {
		return err
	}
	return s.remove(ctx, st)
}

// remove removes st's container and network, whichever exist.
func (s *Spawner) remove(ctx context.Context, st State) error {
	ref := st.Container
	if ref == "" {
		ref = st.Name
	}
	var errs []error
	if ref != "" {
		t := int(s.cfg.StopTimeout.Seconds())
		if _, err := s.cli.ContainerStop(ctx, ref, client.ContainerStopOptions{Timeout: &t}); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("stopping container %s: %w", ref, err))
		}
		_, err := s.cli.ContainerRemove(ctx, ref, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("removing container %s: %w", ref, err))
		}
	}
	if st.Network != "" {
		if _, err := s.cli.NetworkRemove(ctx, st.Network, client.NetworkRemoveOptions{}); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("removing network %s: %w", st.Network, err))
		}
	}
	return errors.Join(errs...)
}

// List implements spawner.Spawner: every container and network of this
// portal replica, by label, whether it runs or not. A network whose
// container is gone (a portal killed between creating the two) is listed
// on its own, so reconciliation removes it too.
func (s *Spawner) List(ctx context.Context) ([]spawner.Env, error) {
	cs, err := s.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: s.ownFilter()})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	ns, err := s.cli.NetworkList(ctx, client.NetworkListOptions{Filters: s.ownFilter()})
	if err != nil {
		return nil, fmt.Errorf("listing networks: %w", err)
	}
	networks := map[string]string{} // session -> network ID
	for _, n := range ns.Items {
		if sess := n.Labels[LabelSession]; sess != "" {
			networks[sess] = n.ID
		}
	}
	var out []spawner.Env
	for _, c := range cs.Items {
		sess := c.Labels[LabelSession]
		if sess == "" {
			continue
		}
		st := State{Container: c.ID, Name: s.containerName(sess), Network: networks[sess], Portal: s.cfg.Portal, Replica: s.cfg.Replica}
		delete(networks, sess)
		addr := ""
		for _, p := range c.Ports {
			if int(p.PrivatePort) == s.cfg.Port && p.PublicPort != 0 {
				addr = net.JoinHostPort(s.cfg.BindHost, strconv.Itoa(int(p.PublicPort)))
			}
		}
		out = append(out, envOf(sess, addr, st))
	}
	for sess, id := range networks {
		out = append(out, envOf(sess, "", State{Name: s.containerName(sess), Network: id, Portal: s.cfg.Portal, Replica: s.cfg.Replica}))
	}
	return out, nil
}

func envOf(session, addr string, st State) spawner.Env {
	raw, _ := json.Marshal(st) // a struct of strings always marshals
	return spawner.Env{Session: session, Addr: addr, State: raw}
}
