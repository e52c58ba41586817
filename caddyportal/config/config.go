// Package config holds the portal's configuration: the JSON shape that the
// Caddy module embeds, its defaults and clamping (Educates reference §4.5,
// §5.2), and its validation. It does not import Caddy, so the rest of the
// portal logic can be tested without a server.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that unmarshals from JSON as either an integer
// number of nanoseconds or a duration string ("90s", "60m", "2h", "1d"),
// the same forms Caddy's own duration type accepts.
type Duration time.Duration

// MarshalJSON writes the duration as integer nanoseconds, as Caddy does.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(int64(d)) }

// UnmarshalJSON accepts integer nanoseconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string like \"60m\" or integer nanoseconds: %w", err)
	}
	*d = Duration(n)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses Go duration syntax plus a "d" (day) unit, as
// Caddy's own parser does ("1d12h", "1.5d", "12h1d"), and refuses negative
// values: no portal setting means anything negative. The JSON config and
// the Caddyfile both parse durations here, with the same messages.
func ParseDuration(s string) (time.Duration, error) {
	if len(s) > 64 {
		return 0, fmt.Errorf("duration %q is too long", s[:64])
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	invalid := fmt.Errorf("invalid duration %q (use forms like 90s, 60m, 2h, 1d)", s)
	// Each <number>d becomes <number*24>h; Go's parser does the rest.
	isNum := func(r rune) bool { return r >= '0' && r <= '9' || r == '.' || r == '+' }
	var b strings.Builder
	for rest := s; rest != ""; {
		n := strings.IndexFunc(rest, func(r rune) bool { return !isNum(r) })
		if n < 0 {
			b.WriteString(rest) // a bare number: Go's parser judges it
			break
		}
		u := strings.IndexFunc(rest[n:], isNum)
		if u < 0 {
			u = len(rest) - n
		}
		number, unit := rest[:n], rest[n:n+u]
		if unit == "d" {
			days, err := strconv.ParseFloat(number, 64)
			if err != nil {
				return 0, invalid
			}
			number, unit = strconv.FormatFloat(days*24, 'f', -1, 64), "h"
		}
		b.WriteString(number + unit)
		rest = rest[n+u:]
	}
	v, err := time.ParseDuration(b.String())
	if err != nil {
		return 0, invalid
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	return v, nil
}

// Values accepted by the enumerated settings.
const (
	CatalogPrivate = "private"
	CatalogPublic  = "public"

	RegistrationOneStep   = "one-step"
	RegistrationAnonymous = "anonymous"
	RegistrationDisabled  = "disabled"

	DashboardsPath = "path"
	DashboardsHost = "host"

	StorageBadger = "badger"
	StorageEtcd   = "etcd"

	// RedirectsAny in Redirects admits every http(s) index_url, as the
	// Educates training portal does (an open redirect: opt-in only).
	RedirectsAny = "any"
)

// Defaults applied when a setting is left out.
const (
	DefaultName              = "portal"
	DefaultRobotUsername     = "robot@educates"
	DefaultAdminUsername     = "educates"
	DefaultAccessTokenTTL    = 10 * time.Hour
	DefaultRefreshTokenTTL   = 30 * 24 * time.Hour
	DefaultActivationTimeout = 60 * time.Second
	DefaultRetention         = 36 * time.Hour
	DefaultStarts            = 4
)

// Portal is the whole configuration of one training portal.
type Portal struct {
	// Name of the portal. Environments are named `<name>-wNN` and sessions
	// `<name>-wNN-sNNN`. Lowercase letters, digits and dashes. Default: `portal`.
	Name string `json:"name,omitempty"`

	// Storage selects where users, sessions and tokens are kept.
	// Default: Badger under Caddy's data directory, in `caddyportal/<name>`.
	Storage *Storage `json:"storage,omitempty"`

	// URL is the public base URL of the portal: an origin (scheme://host[:port]),
	// since the portal serves its routes at the root of its host.
	// Default: derived from each request's scheme and host.
	URL string `json:"url,omitempty"`

	// Index is the fallback index URL: where browsers go when a session ends
	// and the session has no index_url of its own, and the default for
	// requests that give no index_url.
	Index string `json:"index,omitempty"`

	// Redirects lists the origins (scheme://host[:port]) that index_url and
	// redirect_url may point at, besides the origins of Index and URL. The
	// entry RedirectsAny admits every http(s) origin, as Educates does.
	Redirects []string `json:"redirects,omitempty"`

	// Catalog visibility: `private` (default) needs a bearer token for the
	// catalog routes; `public` lets anyone list RUNNING environments.
	Catalog string `json:"catalog,omitempty"`

	// Registration mode for learners' web logins: `one-step` (default),
	// `anonymous`, or `disabled` (only the admin can log in).
	Registration string `json:"registration,omitempty"`

	// Password is the event access code (Educates' portal.password): when
	// set, browsers enter it at /workshops/access/ before the portal's
	// front door (`/` and the catalog page) lets them in.
	Password string `json:"password,omitempty"`

	// Sessions holds the portal-wide session caps.
	Sessions SessionLimits `json:"sessions,omitzero"`

	// Robot is the REST API user (OAuth2 password grant). The password is required.
	Robot Credentials `json:"robot,omitzero"`

	// Client is the OAuth2 client that REST callers authenticate as.
	// Both the ID and the secret are required.
	Client Client `json:"client,omitzero"`

	// Admin is the admin login for the web pages. Optional.
	Admin *Credentials `json:"admin,omitempty"`

	// Dashboards says where session dashboards are served: `path` (default)
	// under /workshops/session/<s>/ on the portal host, or `host` at
	// <s>.<domain>.
	Dashboards Dashboards `json:"dashboards,omitzero"`

	// Assertion makes the gate add a signed, short-lived JWT naming the
	// session, learner and workshop to every request it proxies
	// (X-Portal-Assertion), and the portal publish the keys that verify it
	// at /.well-known/caddyportal/jwks.json, so a dashboard on a network
	// it does not trust can check that a request came through the portal.
	Assertion bool `json:"assertion,omitempty"`

	// Frame shows every session in the session frame: the dashboard under
	// a slim bar with the workshop's title, the time left, a warning
	// before the end, Extend and End session. A workshop's own `frame`
	// turns it on for that workshop only.
	Frame bool `json:"frame,omitempty"`

	// StaffAccess is how long the admin may use a learner's dashboard
	// after opening it from the admin pages (every opening is recorded in
	// the session, logged and sent to the webhooks). Default: 1h.
	StaffAccess Duration `json:"staff_access,omitempty"`
	// StaffAccessOff removes that button: nobody but the learner enters.
	StaffAccessOff bool `json:"staff_access_off,omitempty"`

	// Tokens sets OAuth2 token lifetimes.
	Tokens TokenLifetimes `json:"tokens,omitzero"`

	// ActivationTimeout is the default activation window for a requested
	// session when the request gives no `timeout`. Default: 60s.
	ActivationTimeout Duration `json:"activation_timeout,omitempty"`

	// Retention is how long STOPPED session records are kept before they
	// are purged, and anonymous users after their last session stopped (or
	// after they were created, if they never got one). Default: 36h.
	Retention Duration `json:"retention,omitempty"`

	// Analytics is the global analytics webhook: an absolute http or https
	// URL that receives every user, environment and session event as a
	// JSON POST (the payload of Educates' `analytics.webhook.url`).
	// Delivery is asynchronous, with a timeout and bounded retries.
	// Sessions requested with an `analytics_url` also send their own
	// events there. Default: none.
	Analytics string `json:"analytics,omitempty"`

	// AnalyticsAllow lists what a session's own `analytics_url` (given by
	// the REST caller, unlike Analytics) may reach besides public
	// addresses: networks in CIDR form or single IPs (`127.0.0.0/8`,
	// `10.1.2.3`), and origins (`http://hooks.internal:8080`), which are
	// then reached whatever they resolve to. By default such URLs may not
	// reach loopback, link-local, private, unspecified, shared (CGNAT),
	// multicast or reserved addresses; Caddy's admin listener is refused
	// even inside an allowed network. Default: none.
	AnalyticsAllow []string `json:"analytics_allow,omitempty"`

	// Starts bounds how many session environments (of workshops with a
	// spawner) each portal process starts at once; the others wait in
	// FIFO order, their pages showing their position. Capacity rules are
	// unchanged: a request is never refused because starts are busy.
	// Default: 4; clamped to at least 1.
	Starts int `json:"starts,omitempty"`

	// Replica names this portal process among the replicas that share one
	// store (etcd): an environment a spawner starts belongs to the replica
	// that started it, which alone reconciles it after a restart. It must
	// stay the same across restarts of that replica and differ between
	// replicas. Default: the host name; on a store only one process uses
	// (Badger), the name the store kept from its first start, so a host
	// that is renamed keeps what it started.
	Replica string `json:"replica,omitempty"`

	// Workshops are the workshops offered, one environment each, in order.
	Workshops []Workshop `json:"workshops,omitempty"`
}

// Storage selects and configures the state backend.
type Storage struct {
	// Backend is `badger` (default) or `etcd`.
	Backend string `json:"backend,omitempty"`
	// Path is the Badger data directory. Default: under Caddy's data directory.
	Path string `json:"path,omitempty"`
	// MinFreeSpace is the free space, in bytes, that Badger's file system
	// must keep: below it writes get 503 and a start fails, because Badger
	// would crash on a full disk. Zero means the default, 64 MiB; negative
	// turns the check off. Badger only.
	MinFreeSpace int64 `json:"min_free_space,omitempty"`
	// Endpoints are the etcd endpoints.
	Endpoints []string `json:"endpoints,omitempty"`
	// Prefix is the etcd key prefix. Default: `/caddyportal/<name>/`.
	Prefix string `json:"prefix,omitempty"`
	// Username and Password authenticate to etcd.
	Username string `json:"username,omitempty"`
	// Password for Username.
	Password string `json:"password,omitempty"`
	// TLS holds file paths for etcd client TLS.
	TLS *StorageTLS `json:"tls,omitempty"`
}

// StorageTLS holds file paths for an etcd client certificate.
type StorageTLS struct {
	// CA is the CA bundle that signs the etcd server certificate.
	CA string `json:"ca,omitempty"`
	// Cert is the client certificate.
	Cert string `json:"cert,omitempty"`
	// Key is the client key.
	Key string `json:"key,omitempty"`
}

// SessionLimits are the portal-wide caps; 0 means no cap.
type SessionLimits struct {
	// Maximum caps allocated sessions across the portal. It is also the
	// default capacity of each workshop.
	Maximum int `json:"maximum,omitempty"`
	// Registered caps concurrent sessions per web-registered user.
	Registered int `json:"registered,omitempty"`
	// Anonymous caps concurrent sessions per REST-created or anonymous
	// user. Default: the Registered value.
	Anonymous int `json:"anonymous,omitempty"`
}

// Credentials are a username and password.
type Credentials struct {
	// Username of the account.
	Username string `json:"username,omitempty"`
	// Password of the account. Placeholders such as {env.X} are expanded.
	Password string `json:"password,omitempty"`
}

// Client is an OAuth2 client registration.
type Client struct {
	// ID is the client_id.
	ID string `json:"id,omitempty"`
	// Secret is the client_secret. Placeholders such as {env.X} are expanded.
	Secret string `json:"secret,omitempty"`
}

// Dashboards selects how session dashboards are addressed.
type Dashboards struct {
	// Mode is `path` (default) or `host`.
	Mode string `json:"mode,omitempty"`
	// Domain is the parent domain of session hosts in `host` mode.
	Domain string `json:"domain,omitempty"`
	// KeepPrefix, in `path` mode, passes the whole path,
	// /workshops/session/<name>/..., to the dashboard instead of stripping
	// the session's prefix. It is for dashboards that take their base URL
	// as a setting (Jupyter's base_url, code-server's --base-path): give
	// them the session's prefix (the process spawner's {prefix}) and they
	// serve and link under it. No X-Forwarded-Prefix is sent then: the
	// path already carries the prefix, and a framework that honours the
	// header would add it twice.
	KeepPrefix bool `json:"keep_prefix,omitempty"`
}

// TokenLifetimes sets OAuth2 token lifetimes.
type TokenLifetimes struct {
	// Access token lifetime. Default: 10h (expires_in 36000).
	Access Duration `json:"access,omitempty"`
	// Refresh token lifetime. Default: 30 days.
	Refresh Duration `json:"refresh,omitempty"`
}

// Workshop is one workshop offered by the portal.
type Workshop struct {
	// Name is the workshop resource name, unique within the portal.
	Name string `json:"name"`
	// Title shown in catalogs.
	Title string `json:"title,omitempty"`
	// Description shown in catalogs.
	Description string `json:"description,omitempty"`
	// Vendor of the workshop.
	Vendor string `json:"vendor,omitempty"`
	// Authors of the workshop.
	Authors []string `json:"authors,omitempty"`
	// Difficulty, free text such as `beginner`.
	Difficulty string `json:"difficulty,omitempty"`
	// Duration is free text such as `30m`, shown in catalogs; it is not the
	// session time limit (see Expires).
	Duration string `json:"duration,omitempty"`
	// Tags of the workshop.
	Tags []string `json:"tags,omitempty"`
	// Labels feed the catalog and its `labels[k]=v` filters.
	Labels map[string]string `json:"labels,omitempty"`
	// Logo is an image URL or data URL.
	Logo string `json:"logo,omitempty"`
	// URL of the workshop's home page.
	URL string `json:"url,omitempty"`
	// Alias is the published name (catalog `workshop.name`).
	Alias string `json:"alias,omitempty"`

	// Spawner starts an environment per session (a guest module of
	// namespace http.handlers.portal.spawners, such as "process"): with
	// one, the workshop has no Upstreams. Its JSON is the module's, with
	// the module name in the "spawner" key.
	Spawner json.RawMessage `json:"spawner,omitempty" caddy:"namespace=http.handlers.portal.spawners inline_key=spawner"`
	// Capacity caps the environment's sessions, reserved ones included.
	// Default: the upstream pool size, else sessions.maximum; a workshop
	// with a spawner or an address template needs one of them.
	Capacity *int `json:"capacity,omitempty"`
	// Reserved sessions kept ready. Default 1, clamped to 0..capacity.
	Reserved *int `json:"reserved,omitempty"`
	// Initial sessions created at start. Default: reserved; clamped to
	// 0..capacity and raised to at least reserved unless 0.
	Initial *int `json:"initial,omitempty"`

	// Expires is the session duration from activation; 0 means unlimited.
	Expires Duration `json:"expires,omitempty"`
	// Overtime is the extension step (at least 5 minutes when set).
	Overtime Duration `json:"overtime,omitempty"`
	// Deadline caps extensions, counted from activation. Default: Expires.
	Deadline Duration `json:"deadline,omitempty"`
	// Orphaned ends sessions idle this long; 0 disables it.
	Orphaned Duration `json:"orphaned,omitempty"`
	// Overdue is the startup timeout for the dashboard; 0 disables it.
	Overdue Duration `json:"overdue,omitempty"`
	// Frame shows this workshop's sessions in the session frame (see
	// Portal.Frame).
	Frame bool `json:"frame,omitempty"`

	// Upstreams are the dashboard addresses: a fixed pool (one per session
	// slot), or a single address template containing `{session}`.
	Upstreams []string `json:"upstreams,omitempty"`

	// Ingresses name the extra host names of each session in host mode,
	// `<name>-<session>.<domain>` (and Educates' older
	// `<session>-<name>.<domain>`), for dashboards that serve several
	// applications by host name (Educates' gateway: the editor, the
	// console and a workshop's session ingresses). They are gated like the
	// session host and proxied to the same dashboard with their own Host.
	// Each is a DNS label.
	Ingresses []string `json:"ingresses,omitempty"`

	// HealthCheck says how the dashboards are probed before they are
	// handed out and periodically: a pool slot or reserve whose probe
	// fails is skipped (and shown unhealthy in the admin pages and
	// metrics) until a probe succeeds again. Default: a TCP connect every
	// 10s with a 5s timeout.
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
}

// HealthCheck configures the probes of a workshop's dashboards.
type HealthCheck struct {
	// Disabled turns probing off: every dashboard is handed out.
	Disabled bool `json:"disabled,omitempty"`
	// Path, when set, probes with an HTTP GET of this path (an answer
	// below 400 is healthy) instead of a TCP connect. It starts with `/`.
	Path string `json:"path,omitempty"`
	// Interval between probes of one dashboard. Default: 10s.
	Interval Duration `json:"interval,omitempty"`
	// Timeout of one probe. Default: 5s.
	Timeout Duration `json:"timeout,omitempty"`
}

// SessionPlaceholder marks an upstream address template.
const SessionPlaceholder = "{session}"

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// replicaRE admits host names, the default replica name.
var replicaRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?$`)

// CheckUpstreams reports the first problem with a workshop's fixed dashboard
// addresses (see UpstreamChecker).
func CheckUpstreams(addrs []string) error {
	var c UpstreamChecker
	for _, a := range addrs {
		if err := c.Add(a); err != nil {
			return err
		}
	}
	return nil
}

// UpstreamChecker checks a workshop's fixed dashboard addresses one at a
// time, for the Caddyfile's `upstream` lines, the static spawner's `to` and
// JSON alike: each must be a TCP dial address host:port (the gate and the
// health checker dial nothing else), none may be listed twice (one address
// is one session slot, so a repeat would hand one dashboard to two
// learners), and a {session} template must be the pool's only address. A
// pool spread over many Caddyfile lines is checked in linear time.
type UpstreamChecker struct {
	seen     map[string]bool
	template bool
}

// Add checks a, the next address of the pool.
func (c *UpstreamChecker) Add(a string) error {
	switch {
	case a == "":
		return fmt.Errorf("empty address")
	case c.seen[a]:
		return fmt.Errorf("%q listed twice", a)
	case len(c.seen) > 0 && (c.template || strings.Contains(a, SessionPlaceholder)):
		return fmt.Errorf("a %s template must be the only address, not part of a pool", SessionPlaceholder)
	}
	// A template is checked as the address of a session would be.
	host, port, err := net.SplitHostPort(strings.ReplaceAll(a, SessionPlaceholder, "s"))
	if err != nil || host == "" || strings.ContainsAny(host, "/?#@ ") {
		return fmt.Errorf("%q is not a dial address host:port (such as 127.0.0.1:9001, without a scheme or path)", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number 1-65535", a)
	}
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	c.seen[a] = true
	c.template = c.template || strings.Contains(a, SessionPlaceholder)
	return nil
}

// Template reports whether the workshop's upstream is a `{session}` address
// template rather than a fixed pool, and returns it.
func (w Workshop) Template() (string, bool) {
	if len(w.Upstreams) == 1 && strings.Contains(w.Upstreams[0], SessionPlaceholder) {
		return w.Upstreams[0], true
	}
	return "", false
}

// PublishedName is the alias if set, else the resource name.
func (w Workshop) PublishedName() string {
	if w.Alias != "" {
		return w.Alias
	}
	return w.Name
}

// Validate checks the configuration and returns the first problem found,
// worded for an operator.
func (p *Portal) Validate() error {
	if p.Name != "" && (!nameRE.MatchString(p.Name) || len(p.Name) > 40) {
		return fmt.Errorf("name %q: use lowercase letters, digits and dashes (at most 40)", p.Name)
	}
	if p.Replica != "" && (!replicaRE.MatchString(p.Replica) || len(p.Replica) > 253) {
		// It is part of the marks and labels by which a replica finds its
		// own environments: a '/' would let replica "a" take "a/b"'s.
		return fmt.Errorf("replica %q: use letters, digits, dots, dashes and underscores (at most 253), "+
			"such as a host name; the default is this host's name", p.Replica)
	}
	if p.Storage != nil {
		switch p.Storage.Backend {
		case "", StorageBadger:
		case StorageEtcd:
			if p.Storage.MinFreeSpace != 0 {
				return fmt.Errorf("storage etcd: min_free_space applies to badger only")
			}
			if len(p.Storage.Endpoints) == 0 {
				return fmt.Errorf("storage etcd: at least one endpoint is required")
			}
		default:
			return fmt.Errorf("storage %q: unknown backend (use badger or etcd)", p.Storage.Backend)
		}
	}
	if p.URL != "" {
		if err := CheckBaseURL(p.URL); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	}
	if p.Index != "" {
		if _, err := Origin(p.Index); err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	for _, u := range p.Redirects {
		if u == RedirectsAny {
			continue
		}
		if _, err := Origin(u); err != nil {
			return fmt.Errorf("redirects: %w (or %q to admit every http(s) origin)", err, RedirectsAny)
		}
	}
	if p.Analytics != "" {
		if err := ValidateWebhookURL(p.Analytics); err != nil {
			return fmt.Errorf("analytics: %w", err)
		}
	}
	for _, a := range p.AnalyticsAllow {
		if err := ValidateWebhookAllow(a); err != nil {
			return fmt.Errorf("analytics_allow: %w", err)
		}
	}
	switch p.Catalog {
	case "", CatalogPrivate, CatalogPublic:
	default:
		return fmt.Errorf("catalog %q: use private or public", p.Catalog)
	}
	switch p.Registration {
	case "", RegistrationOneStep, RegistrationAnonymous, RegistrationDisabled:
	default:
		return fmt.Errorf("registration %q: use one-step, anonymous or disabled", p.Registration)
	}
	if p.Sessions.Maximum < 0 || p.Sessions.Registered < 0 || p.Sessions.Anonymous < 0 {
		return fmt.Errorf("sessions: limits must not be negative")
	}
	if p.Robot.Password == "" {
		return fmt.Errorf("robot: a password is required")
	}
	if p.Client.ID == "" || p.Client.Secret == "" {
		return fmt.Errorf("client: an id and a secret are required")
	}
	if p.Admin != nil && p.Admin.Password == "" {
		return fmt.Errorf("admin: a password is required")
	}
	switch p.Dashboards.Mode {
	case "", DashboardsPath:
	case DashboardsHost:
		if p.Dashboards.Domain == "" {
			return fmt.Errorf("dashboards host: a domain is required")
		}
		if p.Dashboards.KeepPrefix {
			return fmt.Errorf("dashboards host: keep_prefix is a path-mode option (a session host has no prefix to keep)")
		}
	default:
		return fmt.Errorf("dashboards %q: use path or host <domain>", p.Dashboards.Mode)
	}
	for _, d := range []Duration{p.Tokens.Access, p.Tokens.Refresh, p.ActivationTimeout, p.Retention} {
		if d < 0 {
			return fmt.Errorf("durations must not be negative")
		}
	}
	seen := map[string]bool{}
	for i, w := range p.Workshops {
		if err := w.validate(); err != nil {
			return &WorkshopError{Index: i, Name: w.Name, Err: err}
		}
		if _, tmpl := w.Template(); w.Capacity == nil && p.Sessions.Maximum == 0 && (tmpl || w.Spawned()) {
			// Its capacity would default to 0: a workshop that never gives
			// a session, which nothing else would explain.
			return &WorkshopError{Index: i, Name: w.Name, Err: errors.New("capacity: its dashboards are started per session (a spawner or a {session} template), so there is no pool to count: set `capacity <n>`, or the portal's `sessions maximum <n>`")}
		}
		if len(w.Ingresses) > 0 && p.Dashboards.Mode != DashboardsHost {
			return &WorkshopError{Index: i, Name: w.Name, Err: errors.New("ingresses are host names of a session: they need `dashboards host <domain>`")}
		}
		if seen[w.Name] {
			return &WorkshopError{Index: i, Name: w.Name, Err: fmt.Errorf("declared twice (workshop %d)", i+1)}
		}
		seen[w.Name] = true
	}
	return nil
}

// WorkshopError is Validate's refusal of one workshop, the Index-th: the
// Caddyfile adapter points at that workshop's block with it.
type WorkshopError struct {
	Index int
	Name  string
	Err   error
}

func (e *WorkshopError) Error() string { return fmt.Sprintf("workshop %q: %v", e.Name, e.Err) }

// Unwrap returns the workshop's own error.
func (e *WorkshopError) Unwrap() error { return e.Err }

// Spawned reports whether the workshop starts an environment per session
// (a spawner) instead of using fixed dashboard addresses.
func (w Workshop) Spawned() bool { return len(w.Spawner) > 0 }

// Validate checks one workshop on its own (name, numbers, durations and
// upstreams), without the portal-wide checks of Portal.Validate. The
// Caddyfile parser uses it to report a problem at the workshop's line.
func (w Workshop) Validate() error { return w.validate() }

func (w Workshop) validate() error {
	if w.Name == "" {
		return fmt.Errorf("a name is required")
	}
	if !nameRE.MatchString(w.Name) {
		return fmt.Errorf("name: use lowercase letters, digits and dashes")
	}
	for _, n := range []*int{w.Capacity, w.Reserved, w.Initial} {
		if n != nil && *n < 0 {
			return fmt.Errorf("capacity, reserved and initial must not be negative")
		}
	}
	for _, d := range []Duration{w.Expires, w.Overtime, w.Deadline, w.Orphaned, w.Overdue} {
		if d < 0 {
			return fmt.Errorf("durations must not be negative")
		}
	}
	switch {
	case w.Spawned() && len(w.Upstreams) > 0:
		return fmt.Errorf("upstream and spawner: a workshop's dashboards are either fixed addresses or started per session, not both")
	case len(w.Upstreams) == 0 && !w.Spawned():
		return fmt.Errorf("upstream or spawner: at least one dashboard address, or a spawner that starts one per session, is required")
	}
	if hc := w.HealthCheck; hc != nil {
		if hc.Path != "" && (!strings.HasPrefix(hc.Path, "/") || strings.ContainsAny(hc.Path, " \t\r\n#")) {
			return fmt.Errorf("health_check: path %q must start with / (and hold no spaces or fragment)", hc.Path)
		}
		if hc.Interval < 0 || hc.Timeout < 0 {
			return fmt.Errorf("health_check: durations must not be negative")
		}
	}
	if err := CheckUpstreams(w.Upstreams); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	ingress := map[string]bool{}
	for _, name := range w.Ingresses {
		if !nameRE.MatchString(name) || len(name) > 32 {
			return fmt.Errorf("ingresses: %q is not a host name label (lowercase letters, digits and dashes, at most 32)", name)
		}
		if ingress[name] {
			return fmt.Errorf("ingresses: %q given twice", name)
		}
		ingress[name] = true
	}
	if w.Capacity != nil && w.Reserved != nil && *w.Reserved > *w.Capacity {
		return fmt.Errorf("reserved (%d) is larger than capacity (%d)", *w.Reserved, *w.Capacity)
	}
	if _, tmpl := w.Template(); !tmpl && !w.Spawned() && w.Capacity != nil && *w.Capacity > len(w.Upstreams) {
		return fmt.Errorf("capacity (%d) is larger than the upstream pool (%d addresses)", *w.Capacity, len(w.Upstreams))
	}
	return nil
}
