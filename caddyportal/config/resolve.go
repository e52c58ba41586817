package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
)

// Environment is a workshop as the portal runs it: named, with every
// default applied and every number clamped (Educates reference §4.5).
type Environment struct {
	// Name is `<portal>-wNN`, NN counting workshops from 1 in declaration order.
	Name string
	// Workshop is the workshop as configured.
	Workshop Workshop
	// Capacity, Reserved and Initial are the effective values.
	Capacity, Reserved, Initial int
	// Expires, Overtime, Deadline, Orphaned and Overdue are the effective
	// durations; Deadline is at least Expires.
	Expires, Overtime, Deadline, Orphaned, Overdue time.Duration
}

// WithDefaults returns a copy of p with every unset portal-level setting
// filled in: the one place portal defaults are written. It does not change
// the workshops; see Environments. Applying it twice changes nothing, so a
// service made from a plain config (in tests) behaves as a provisioned one.
func (p Portal) WithDefaults() Portal {
	if p.Name == "" {
		p.Name = DefaultName
	}
	if p.Storage != nil && p.Storage.Backend == StorageEtcd && p.Storage.Prefix == "" {
		st := *p.Storage
		st.Prefix = "/caddyportal/" + p.Name + "/"
		p.Storage = &st
	}
	if p.Catalog == "" {
		p.Catalog = CatalogPrivate
	}
	if p.Registration == "" {
		p.Registration = RegistrationOneStep
	}
	if p.Robot.Username == "" {
		p.Robot.Username = DefaultRobotUsername
	}
	if p.Admin != nil && p.Admin.Username == "" {
		a := *p.Admin
		a.Username = DefaultAdminUsername
		p.Admin = &a
	}
	if p.Dashboards.Mode == "" {
		p.Dashboards.Mode = DashboardsPath
	}
	if p.Replica == "" {
		// A host name that cannot be read leaves one name for every
		// replica on the machine; one replica still works.
		if h, err := os.Hostname(); err == nil && h != "" {
			p.Replica = h
		} else {
			p.Replica = "local"
		}
	}
	if p.Tokens.Access == 0 {
		p.Tokens.Access = Duration(DefaultAccessTokenTTL)
	}
	if p.Tokens.Refresh == 0 {
		p.Tokens.Refresh = Duration(DefaultRefreshTokenTTL)
	}
	if p.ActivationTimeout == 0 {
		p.ActivationTimeout = Duration(DefaultActivationTimeout)
	}
	if p.Retention == 0 {
		p.Retention = Duration(DefaultRetention)
	}
	switch {
	case p.Starts == 0:
		p.Starts = DefaultStarts
	case p.Starts < 0:
		p.Starts = 1
	}
	if p.Sessions.Anonymous == 0 {
		p.Sessions.Anonymous = p.Sessions.Registered
	}
	return p
}

// ExpandSecrets returns a copy of p with expand applied to every setting
// that may hold a secret as a placeholder ({env.X}, kept out of `caddy
// adapt`'s output): the robot password, the client id and secret, the admin
// password and the storage credentials. This is the one list of such
// settings; the glue passes Caddy's replacer.
func (p Portal) ExpandSecrets(expand func(string) string) Portal {
	p.Robot.Password = expand(p.Robot.Password)
	p.Client.ID = expand(p.Client.ID)
	p.Client.Secret = expand(p.Client.Secret)
	p.Password = expand(p.Password)
	if p.Admin != nil {
		a := *p.Admin
		a.Password = expand(a.Password)
		p.Admin = &a
	}
	if p.Storage != nil {
		st := *p.Storage
		st.Username, st.Password = expand(st.Username), expand(st.Password)
		p.Storage = &st
	}
	return p
}

// Environments returns the effective environments of the portal, in
// declaration order.
func (p Portal) Environments() []Environment {
	name := p.WithDefaults().Name
	envs := make([]Environment, 0, len(p.Workshops))
	for i, w := range p.Workshops {
		envs = append(envs, resolveWorkshop(fmt.Sprintf("%s-w%02d", name, i+1), w, p.Sessions.Maximum))
	}
	return envs
}

// MinSecretLength is the length below which WeakSecrets warns of a
// password or client secret: these guard every learner's session.
const MinSecretLength = 12

// exampleSecrets are Caddyfile.example's demo values, which an operator
// who started from it must change.
var exampleSecrets = map[string]bool{"demo-admin-password": true, "demo-robot-password": true, "demo-client-secret": true}

// WeakSecrets lists, for the operator's log at start-up, the secrets of
// the configuration (as expanded) that anyone could guess: the example
// Caddyfile's demo values, and ones shorter than MinSecretLength. The robot
// and the client can create and enter any learner's session; the admin can
// end them all. None is an error, and a portal whose url is on this machine
// (localhost, a loopback address: the example's, a laptop's) gets none: it
// may use anything.
func (p Portal) WeakSecrets() []string {
	if u, err := url.Parse(p.URL); err == nil && p.URL != "" {
		h := u.Hostname()
		if ip := net.ParseIP(h); strings.EqualFold(h, "localhost") || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	var out []string
	check := func(what, secret string) {
		switch {
		case secret == "":
		case exampleSecrets[secret]:
			out = append(out, fmt.Sprintf("%s is the example Caddyfile's demo value: change it before anyone else can reach this portal", what))
		case len(secret) < MinSecretLength:
			out = append(out, fmt.Sprintf("%s has %d characters: use at least %d, such as the output of `openssl rand -base64 18`", what, len(secret), MinSecretLength))
		}
	}
	check("the robot's password", p.Robot.Password)
	check("the client secret", p.Client.Secret)
	if p.Admin != nil {
		check("the admin's password", p.Admin.Password)
	}
	return out
}

// Adjusted lists the workshop settings the portal runs otherwise than they
// are written, worded for the operator's log at start-up. None is an error
// (Educates accepts them too), but each would surprise someone who reads
// the Caddyfile and then watches the portal.
func (p Portal) Adjusted() []string {
	var out []string
	for _, e := range p.Environments() {
		w := e.Workshop
		step := lifecycle.Policy{Expires: e.Expires, Overtime: e.Overtime, Deadline: e.Deadline}.Step()
		if e.Overtime > 0 && step != e.Overtime {
			out = append(out, fmt.Sprintf("workshop %q: overtime %v is shorter than the shortest extension step: each extension adds %v", w.Name, e.Overtime, step))
		}
		if w.Deadline > 0 && w.Deadline.D() < e.Expires {
			out = append(out, fmt.Sprintf("workshop %q: deadline %v is before expires %v: sessions last %v and cannot be extended", w.Name, w.Deadline.D(), e.Expires, e.Expires))
		}
		if w.Reserved != nil && *w.Reserved != e.Reserved {
			out = append(out, fmt.Sprintf("workshop %q: reserved %d is more than its capacity: %d are kept ready", w.Name, *w.Reserved, e.Reserved))
		}
		if w.Initial != nil && *w.Initial > e.Capacity {
			out = append(out, fmt.Sprintf("workshop %q: initial %d is more than its capacity: %d are started at start-up", w.Name, *w.Initial, e.Initial))
		}
		if hc := w.HealthCheck; hc != nil && hc.Interval > 0 && hc.Timeout > hc.Interval {
			out = append(out, fmt.Sprintf("workshop %q: health_check timeout %v is longer than its interval %v: a dashboard that hangs holds each probe round up to %v, so dashboards are probed less often than every %v",
				w.Name, hc.Timeout.D(), hc.Interval.D(), hc.Timeout.D(), hc.Interval.D()))
		}
	}
	return out
}

func resolveWorkshop(name string, w Workshop, maximum int) Environment {
	e := Environment{Name: name, Workshop: w}
	_, tmpl := w.Template()
	switch {
	case w.Capacity != nil:
		e.Capacity = *w.Capacity
	case !tmpl:
		e.Capacity = len(w.Upstreams)
		if maximum > 0 && maximum < e.Capacity {
			e.Capacity = maximum
		}
	default:
		e.Capacity = maximum
	}
	e.Reserved = 1
	if w.Reserved != nil {
		e.Reserved = *w.Reserved
	}
	e.Reserved = clamp(e.Reserved, 0, e.Capacity)
	e.Initial = e.Reserved
	if w.Initial != nil {
		e.Initial = *w.Initial
	}
	e.Initial = clamp(e.Initial, 0, e.Capacity)
	if e.Initial != 0 && e.Initial < e.Reserved {
		e.Initial = e.Reserved
	}
	e.Expires = w.Expires.D()
	e.Overtime = w.Overtime.D()
	e.Deadline = w.Deadline.D()
	if e.Deadline < e.Expires {
		e.Deadline = e.Expires
	}
	e.Orphaned = w.Orphaned.D()
	e.Overdue = w.Overdue.D()
	return e
}

func clamp(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}
