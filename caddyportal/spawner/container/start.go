package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// Steps of a container start, between spawner.StepStarting and
// spawner.StepStarted.
const (
	StepPulling  = "pulling"  // the engine pulls the image
	StepCreating = "creating" // the network and container are created
)

// cleanupTimeout bounds the removal of what a failed start created, and the
// creation of a session's network: the start's own context may be the reason
// it failed, and cannot be what ends them.
const cleanupTimeout = time.Minute

// Start implements spawner.Spawner: it makes sure the image is there, creates
// the session's network and container, starts it and returns the published
// address. On error everything it created is removed.
func (s *Spawner) Start(ctx context.Context, spec spawner.Spec, progress func(spawner.Progress)) (spawner.Env, error) {
	if !sessionName.MatchString(spec.Session) {
		return spawner.Env{}, fmt.Errorf("container spawner: session name %q cannot name a container", spec.Session)
	}
	spawner.Report(progress, spawner.StepStarting, "preparing the container")
	if err := s.ensureImage(ctx, progress); err != nil {
		return spawner.Env{}, err
	}
	vars := spawner.NewVars(spec, "0.0.0.0", s.cfg.Port, "")
	cmd, err := spawner.ExpandAll(s.cfg.Command, vars)
	if err != nil {
		return spawner.Env{}, err
	}
	ready, err := spawner.Expand(s.cfg.ReadyPath, vars)
	if err != nil {
		return spawner.Env{}, err
	}
	env, err := spawner.Environment(spec)
	if err != nil {
		return spawner.Env{}, err
	}
	if s.cfg.Educates {
		env = append(env, educatesEnv(spec)...)
	}
	for _, e := range s.cfg.Env {
		v, err := spawner.Expand(e.Value, vars)
		if err != nil {
			return spawner.Env{}, err
		}
		env = append(env, e.Name+"="+v)
	}

	st := State{Name: s.containerName(spec.Session), Ready: ready, Portal: s.cfg.Portal, Replica: s.cfg.Replica}
	fail := func(err error) (spawner.Env, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if rerr := s.remove(cctx, st); rerr != nil {
			s.log.Warn("removing a failed start", zap.String("session", spec.Session), zap.Error(rerr))
		}
		return spawner.Env{}, err
	}
	spawner.Report(progress, StepCreating, "creating the container")
	netName := s.cfg.Network
	if netName == "" && !s.bridges {
		netName = ownNetworkMode
	} else if netName == "" {
		netName = st.Name
		opts := client.NetworkCreateOptions{Driver: "bridge", Labels: s.labels(spec)}
		if s.podman {
			// Podman's bridges route to each other unless isolated (its
			// Docker API isolates by default, its own CLI does not: say
			// it, whatever the engine's configuration); Docker isolates
			// bridge networks from each other itself.
			opts.Options = map[string]string{"isolate": "true"}
		}
		// The create runs to its answer even when the start is cut short
		// meanwhile (a reload, Close): a network the engine made must be
		// known by its ID to be removed. Docker lets two networks have one
		// name, and one left behind under the session's name made the next
		// start of that session fail ("network ... is ambiguous").
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		res, err := s.cli.NetworkCreate(cctx, netName, opts)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("creating the session's network: %w", err))
		}
		st.Network = res.ID
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
	}
	created, err := s.cli.ContainerCreate(ctx, s.createOptions(spec, st.Name, netName, cmd, env))
	if err != nil {
		return fail(fmt.Errorf("creating the container: %w", err))
	}
	st.Container = created.ID
	if _, err := s.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		if strings.Contains(err.Error(), "rlimit") {
			err = fmt.Errorf("%w (the engine cannot set a resource limit this high: set lower ones with the spawner's ulimit option)", err)
		} else if netName == ownNetworkMode && strings.Contains(err.Error(), "slirp4netns") {
			err = fmt.Errorf("%w (each session's network of its own needs slirp4netns on the engine's host: install it, or name a shared network with the spawner's network option)", err)
		}
		return fail(fmt.Errorf("starting the container: %w", err))
	}
	addr, err := s.publishedAddr(ctx, created.ID)
	if err != nil {
		return fail(err)
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return fail(err)
	}
	spawner.Report(progress, spawner.StepStarted, "the container runs")
	return spawner.Env{Session: spec.Session, Addr: addr, State: raw}, nil
}

// ownNetworkMode is, on Podman, a session's network of its own: a network
// namespace with user-mode networking (slirp4netns), reached from the host
// through the published port only. Unlike per-session bridge networks,
// whose isolation Podman 4.3's netavark keeps in iptables chains shared by
// all networks (removing one network's rules dropped the isolation of the
// others in a churn test), nothing here is shared between sessions. The
// host's loopback interface (the portal's admin endpoints, other sessions'
// published ports) stays closed, whatever containers.conf says.
const ownNetworkMode = "slirp4netns:allow_host_loopback=false"

// createOptions is the container's whole definition.
func (s *Spawner) createOptions(spec spawner.Spec, name, netName string, cmd, env []string) client.ContainerCreateOptions {
	port := s.port
	bind, _ := netip.ParseAddr(s.cfg.BindHost)
	stop := int(s.cfg.StopTimeout / time.Second)
	if stop < 1 {
		stop = 1
	}
	cfg := &container.Config{
		Image:        s.cfg.Image,
		Env:          env,
		Labels:       s.labels(spec),
		ExposedPorts: network.PortSet{port: {}},
		StopTimeout:  &stop,
		Hostname:     spec.Session,
		User:         s.cfg.User,
	}
	if len(cmd) > 0 {
		cfg.Cmd = cmd
	}
	hc := &container.HostConfig{
		NetworkMode:   container.NetworkMode(netName),
		PortBindings:  network.PortMap{port: {{HostIP: bind, HostPort: ""}}},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		// No device, capability or privilege beyond the engine's
		// defaults, and no new privileges through setuid binaries.
		SecurityOpt: []string{"no-new-privileges"},
	}
	hc.Memory = s.cfg.Memory
	if s.cfg.Memory > 0 {
		hc.MemorySwap = s.cfg.Memory // no swap beyond the limit: over it, the engine kills
	}
	hc.NanoCPUs = int64(s.cfg.CPUs * 1e9)
	if s.cfg.Pids > 0 {
		p := s.cfg.Pids
		hc.PidsLimit = &p
	}
	for _, u := range s.cfg.Ulimits {
		hc.Ulimits = append(hc.Ulimits, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	for _, m := range s.cfg.Mounts {
		hc.Binds = append(hc.Binds, m.Source+":"+m.Target+":ro")
	}
	return client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc}
}

// publishedAddr returns host:port where the engine published the dashboard
// port of container id.
func (s *Spawner) publishedAddr(ctx context.Context, id string) (string, error) {
	res, err := s.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspecting the container: %w", err)
	}
	c := res.Container
	if c.State != nil && !c.State.Running {
		return "", s.gone(ctx, id, c.State)
	}
	if c.NetworkSettings != nil {
		for _, b := range c.NetworkSettings.Ports[s.port] {
			if b.HostPort != "" {
				return net.JoinHostPort(s.cfg.BindHost, b.HostPort), nil
			}
		}
	}
	return "", errors.New("the engine did not publish the dashboard port")
}
