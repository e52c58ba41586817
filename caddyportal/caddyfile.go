package caddyportal

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/health"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("portal", parseCaddyfile)
	// The portal owns its API, activation and dashboard routes and passes
	// everything else on, so it must run before the site's own handle
	// blocks; ordering it here spares operators an `order` global option.
	httpcaddyfile.RegisterDirectiveOrder("portal", httpcaddyfile.Before, "handle")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var hd Handler
	if err := hd.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return &hd, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	portal [<matcher>] {
//		name      <name>                 # default: portal
//		storage   badger [<dir>] {
//			min_free_space <size>|off
//		}
//		storage   etcd <endpoints...> {
//			prefix   <prefix>
//			username <user>
//			password <pass>
//			tls      <ca> [<cert> <key>]
//		}
//		url       <public base url>
//		index     <url>
//		redirects <origins...> | any
//		catalog   private|public
//		registration one-step|anonymous|disabled
//		password  <event access code>
//		sessions  [maximum <n>] [registered <n>] [anonymous <n>]
//		sessions  {
//			maximum    <n>
//			registered <n>
//			anonymous  <n>
//		}
//		robot     <username> <password>
//		client    <id> <secret>
//		admin     <username> <password>
//		dashboards path [keep_prefix] | host <domain>
//		assertion                      # a signed JWT for dashboards in X-Portal-Assertion
//		staff_access off | <duration>  # the admin opening learners' dashboards (default 1h)
//		frame                          # the session frame (countdown, Extend, End) for every workshop
//		tokens    [access <duration>] [refresh <duration>]
//		tokens    {
//			access  <duration>
//			refresh <duration>
//		}
//		activation_timeout <duration>
//		retention <duration>
//		stream_close_delay <duration>
//		dashboard_timeout <duration>
//		analytics <webhook url>
//		analytics_allow <networks, addresses or origins...>
//		replica   <name>
//		starts    <n>                # environments started at once (default 4)
//		workshop <name> {
//			title       <text>
//			description <text>
//			vendor      <text>
//			authors     <names...>
//			difficulty  <text>
//			duration    <text>
//			tags        <tags...>
//			labels      <key> <value> [<key> <value>...]
//			labels      {
//				<key> <value>
//			}
//			logo        <url>
//			url         <url>
//			alias       <name>
//			capacity    <n>
//			reserved    <n>
//			initial     <n>
//			expires     <duration>
//			overtime    <duration>
//			deadline    <duration>
//			orphaned    <duration>
//			overdue     <duration>
//			frame                          # the session frame for this workshop only
//			upstream    <addresses...>
//			upstream    <template containing {session}>
//			spawner     <module> { ... }   # instead of upstream, e.g. spawner process { command ... }
//			                               # (upstream <addresses...> is short for spawner static { to <addresses...> })
//			health_check off | tcp|<path> [interval <duration>] [timeout <duration>]
//			ingresses   <names...>         # host mode: <name>-<session>.<domain> (and <session>-<name>) to the same dashboard
//		}
//	}
//
// `redirects`, `workshop` and, inside a workshop, `authors`, `tags`,
// `labels`, `upstream` and `ingresses` may be repeated and accumulate; every other
// option may be given once. `robot` and `client` are required and at least
// one workshop is expected. Counts are non-negative integers; durations use
// Caddy's syntax (90s, 60m, 2h, 1d).
//
// Caddy's parser does not allow anything after a `{` on the same line, so
// the one-line forms of `sessions`, `tokens` and `labels` are written
// without braces: `sessions maximum 10 registered 1 anonymous 1`.
//
// `analytics` is the global analytics webhook (an absolute http or https
// URL without credentials; a query string may carry the receiver's secret):
// every user, environment and session event is POSTed there as JSON, in the
// background, in order per session.
//
// `analytics_allow` (repeatable, accumulates) lists what a session's own
// `analytics_url`, which REST callers choose, may reach besides public
// addresses: networks (`10.0.0.0/8`), single IPs and origins
// (`http://hooks.internal:8080`, reached whatever the name resolves to).
// Without it such URLs may not reach loopback, link-local, private, CGNAT,
// multicast, reserved or unspecified addresses; Caddy's admin listener is
// refused even inside an allowed network. The `analytics` URL is trusted.
//
// `health_check` says how a workshop's dashboards are probed before they
// are handed out and periodically (default: `tcp interval 10s timeout 5s`):
// `tcp` connects, a path such as `/api/status` makes an HTTP GET where any
// answer below 400 is healthy, `off` hands out every dashboard unprobed. A
// pool slot or reserve whose probe fails is skipped until one succeeds.
//
// `{$VAR}` environment variables are expanded when the Caddyfile is read;
// `{env.VAR}` placeholders in the robot password, the client id and secret,
// the admin password and the event access code are kept in the JSON config
// and expanded when the handler is provisioned, which keeps those secrets
// out of the adapted JSON.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.Errf("unexpected argument %q (options go in the portal { ... } block)", d.Val())
	}

	seen := map[string]bool{}
	workshopAt := map[string]bool{}
	// workshopLines are the lines of the workshop blocks, in order: a
	// workshop that validation refuses is pointed at there.
	var workshopLines []int
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt != "redirects" && opt != "workshop" && opt != "analytics_allow" {
			if seen[opt] {
				return d.Errf("portal option %q given twice", opt)
			}
			seen[opt] = true
		}
		var err error
		switch opt {
		case "name":
			h.Name, err = oneArg(d, opt, "name <name>")
		case "storage":
			h.Storage, err = parseStorage(d)
		case "url":
			var u string
			if u, err = oneURL(d, opt, "url <public base url>", config.CheckBaseURL); err == nil {
				// The portal appends its own paths to the base URL.
				h.URL = strings.TrimRight(u, "/")
			}
		case "index":
			h.Index, err = oneURL(d, opt, "index <url>", checkOrigin)
		case "redirects":
			err = parseRedirects(d, h)
		case "catalog":
			h.Catalog, err = oneOf(d, opt, config.CatalogPrivate, config.CatalogPublic)
		case "registration":
			h.Registration, err = oneOf(d, opt, config.RegistrationOneStep, config.RegistrationAnonymous, config.RegistrationDisabled)
		case "password":
			h.Password, err = oneArg(d, opt, "password <event access code>")
		case "sessions":
			err = parseSessions(d, &h.Sessions)
		case "robot":
			var c config.Credentials
			if c, err = credentials(d, opt, "robot <username> <password>"); err == nil {
				h.Robot = c
			}
		case "client":
			var c config.Credentials
			if c, err = credentials(d, opt, "client <id> <secret>"); err == nil {
				h.Client = config.Client{ID: c.Username, Secret: c.Password}
			}
		case "admin":
			var c config.Credentials
			if c, err = credentials(d, opt, "admin <username> <password>"); err == nil {
				h.Admin = &c
			}
		case "dashboards":
			h.Dashboards, err = parseDashboards(d)
		case "frame":
			if d.NextArg() {
				err = usageErr(d, opt, "frame (no arguments: the session frame for every workshop)")
			}
			h.Frame = true
		case "staff_access":
			var v string
			if v, err = oneArg(d, opt, "staff_access off | <duration>"); err == nil {
				if v == "off" {
					h.StaffAccessOff = true
				} else {
					h.StaffAccess, err = duration(d, opt, v)
				}
			}
		case "assertion":
			if d.NextArg() {
				err = usageErr(d, opt, "assertion (no arguments: sign X-Portal-Assertion for dashboards)")
			}
			h.Assertion = true
		case "tokens":
			err = parseTokens(d, &h.Tokens)
		case "activation_timeout":
			h.ActivationTimeout, err = positiveDuration(d, opt, config.DefaultActivationTimeout)
		case "retention":
			h.Retention, err = positiveDuration(d, opt, config.DefaultRetention)
		case "stream_close_delay":
			var v config.Duration
			v, err = positiveDuration(d, opt, defaultStreamCloseDelay)
			h.StreamCloseDelay = caddy.Duration(v)
		case "dashboard_timeout":
			var v config.Duration
			v, err = positiveDuration(d, opt, defaultDashboardTimeout)
			h.DashboardTimeout = caddy.Duration(v)
		case "analytics":
			var u string
			if u, err = oneArg(d, opt, "analytics <webhook url>"); err == nil {
				h.Analytics = u
				// Checked here too, to report the option's own line.
				if verr := config.ValidateWebhookURL(u); verr != nil {
					err = d.Errf("analytics: %v", verr)
				}
			}
		case "replica":
			h.Replica, err = oneArg(d, opt, "replica <name>")
		case "starts":
			var n *int
			if n, err = oneCount(d, opt); err == nil {
				if *n == 0 {
					err = d.Err("starts: at least one environment must be able to start")
				}
				h.Starts = *n
			}
		case "analytics_allow":
			var args []string
			if args, err = lineArgs(d, opt); err == nil {
				if len(args) == 0 {
					err = usageErr(d, opt, "analytics_allow <networks, addresses or origins...>")
				}
				for _, a := range args {
					if verr := config.ValidateWebhookAllow(a); verr != nil && err == nil {
						err = d.Errf("analytics_allow: %v", verr)
					}
				}
				h.AnalyticsAllow = append(h.AnalyticsAllow, args...)
			}
		case "workshop":
			var w config.Workshop
			line := d.Line()
			if w, err = parseWorkshop(d, workshopAt); err == nil {
				h.Workshops = append(h.Workshops, w)
				workshopLines = append(workshopLines, line)
			}
		default:
			return d.Errf("unrecognized portal option %q", opt)
		}
		if err != nil {
			return err
		}
	}

	// The cursor is now on the portal block's closing brace (or on the
	// directive when there is no block), which is the line these refer to.
	if !seen["robot"] {
		return d.Err("missing `robot <username> <password>` (the REST API user)")
	}
	if !seen["client"] {
		return d.Err("missing `client <id> <secret>` (the OAuth2 client of the REST API)")
	}
	// Caddy's error already begins "parsing caddyfile tokens for 'portal'".
	if err := validate(h.Portal); err != nil {
		var we *config.WorkshopError
		if errors.As(err, &we) && we.Index < len(workshopLines) {
			return fmt.Errorf("%w, at %s:%d", err, d.File(), workshopLines[we.Index])
		}
		return d.Errf("%v", err)
	}
	return nil
}

// lineArgs returns the arguments of the option at the cursor and refuses a
// block after them, so that a stray `{` is reported at its option rather
// than as an unknown option on the next line.
func lineArgs(d *caddyfile.Dispenser, opt string) ([]string, error) {
	args := d.RemainingArgs()
	if d.NextBlock(d.Nesting()) {
		d.Prev() // back to the `{`, on the option's line
		return nil, d.Errf("%s: unexpected block", opt)
	}
	return args, nil
}

func usageErr(d *caddyfile.Dispenser, opt, usage string) error {
	return d.Errf("%s: wrong argument count (usage: %s)", opt, usage)
}

func oneArg(d *caddyfile.Dispenser, opt, usage string) (string, error) {
	args, err := lineArgs(d, opt)
	if err != nil {
		return "", err
	}
	if len(args) != 1 {
		return "", usageErr(d, opt, usage)
	}
	if args[0] == "" {
		return "", d.Errf("%s: empty value", opt)
	}
	return args[0], nil
}

// checkOrigin accepts a URL whose origin the redirect policy can trust.
func checkOrigin(u string) error {
	_, err := config.Origin(u)
	return err
}

// oneURL reads a URL that check accepts: config.CheckBaseURL for the
// portal's url, checkOrigin for an index whose origin the portal trusts,
// config.CheckLink for a link it only shows (a workshop's url).
func oneURL(d *caddyfile.Dispenser, opt, usage string, check func(string) error) (string, error) {
	u, err := oneArg(d, opt, usage)
	if err != nil {
		return "", err
	}
	if err := check(u); err != nil {
		return "", d.Errf("%s: %v", opt, err)
	}
	return u, nil
}

func oneOf(d *caddyfile.Dispenser, opt string, values ...string) (string, error) {
	usage := opt + " " + strings.Join(values, "|")
	v, err := oneArg(d, opt, usage)
	if err != nil {
		return "", err
	}
	for _, ok := range values {
		if v == ok {
			return v, nil
		}
	}
	return "", d.Errf("%s: unknown value %q (use %s)", opt, v, strings.Join(values, ", "))
}

func oneDuration(d *caddyfile.Dispenser, opt string) (config.Duration, error) {
	v, err := oneArg(d, opt, opt+" <duration>")
	if err != nil {
		return 0, err
	}
	return duration(d, opt, v)
}

// positiveDuration is oneDuration for an option whose 0 would mean its
// default, as a JSON config that leaves it out does: an operator who
// writes 0 means something else (none, at once), so it is refused.
func positiveDuration(d *caddyfile.Dispenser, opt string, def time.Duration) (config.Duration, error) {
	v, err := oneDuration(d, opt)
	if err == nil && v == 0 {
		return 0, zeroDuration(d, opt, def)
	}
	return v, err
}

// zeroDuration is the refusal of a 0 that would mean the default def.
func zeroDuration(d *caddyfile.Dispenser, opt string, def time.Duration) error {
	return d.Errf("%s 0 would mean the default (%s): give a duration above 0, or leave it out", opt, def)
}

// duration parses a duration as the JSON config does (config.ParseDuration:
// Caddy's syntax, with the `d` unit, never negative).
func duration(d *caddyfile.Dispenser, opt, s string) (config.Duration, error) {
	v, err := config.ParseDuration(s)
	if err != nil {
		return 0, d.Errf("%s: %v", opt, err)
	}
	return config.Duration(v), nil
}

// count parses a non-negative integer.
func count(d *caddyfile.Dispenser, opt, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, d.Errf("%s: %q is not a non-negative integer", opt, s)
	}
	return n, nil
}

func credentials(d *caddyfile.Dispenser, opt, usage string) (config.Credentials, error) {
	args, err := lineArgs(d, opt)
	if err != nil {
		return config.Credentials{}, err
	}
	if len(args) != 2 || args[0] == "" || args[1] == "" {
		// A {$VAR} that expands to nothing disappears before we see the
		// line, so a missing second argument is most often an unset variable.
		return config.Credentials{}, d.Errf("%s: two non-empty arguments are required (usage: %s); is an environment variable unset?", opt, usage)
	}
	return config.Credentials{Username: args[0], Password: args[1]}, nil
}

func parseRedirects(d *caddyfile.Dispenser, h *Handler) error {
	args, err := lineArgs(d, "redirects")
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return usageErr(d, "redirects", "redirects <origins...> | redirects any")
	}
	for _, u := range args {
		if u == config.RedirectsAny {
			continue
		}
		if _, err := config.Origin(u); err != nil {
			return d.Errf("redirects: %v (or %q to admit every http(s) origin)", err, config.RedirectsAny)
		}
	}
	h.Redirects = append(h.Redirects, args...)
	return nil
}

// parseBadgerOptions reads the block of `storage badger`.
func parseBadgerOptions(d *caddyfile.Dispenser, s *config.Storage) error {
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("storage badger option %q given twice", opt)
		}
		seen[opt] = true
		switch opt {
		case "min_free_space":
			v, err := oneArg(d, opt, "min_free_space <size>|off")
			if err != nil {
				return err
			}
			if v == "off" {
				s.MinFreeSpace = -1
				continue
			}
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<62 {
				return d.Errf("min_free_space: %q is not a size such as 64MiB (or off)", v)
			}
			s.MinFreeSpace = int64(n)
		default:
			return d.Errf("unrecognized storage badger option %q", opt)
		}
	}
	return nil
}

func parseStorage(d *caddyfile.Dispenser) (*config.Storage, error) {
	const usage = "storage badger [<dir>] { ... } | storage etcd <endpoints...> { ... }"
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, usageErr(d, "storage", usage)
	}
	s := &config.Storage{Backend: args[0]}
	switch args[0] {
	case config.StorageBadger:
		if len(args) > 2 {
			return nil, usageErr(d, "storage", usage)
		}
		if len(args) == 2 {
			s.Path = args[1]
		}
		return s, parseBadgerOptions(d, s)
	case config.StorageEtcd:
		if len(args) == 1 {
			return nil, d.Err("storage etcd: at least one endpoint is required")
		}
		s.Endpoints = args[1:]
	default:
		return nil, d.Errf("storage: unknown backend %q (use badger or etcd)", args[0])
	}

	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("storage etcd option %q given twice", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "prefix":
			s.Prefix, err = oneArg(d, "prefix", "prefix <prefix>")
		case "username":
			s.Username, err = oneArg(d, "username", "username <user>")
		case "password":
			s.Password, err = oneArg(d, "password", "password <pass>")
		case "tls":
			var args []string
			if args, err = lineArgs(d, opt); err == nil {
				switch len(args) {
				case 1:
					s.TLS = &config.StorageTLS{CA: args[0]}
				case 3:
					s.TLS = &config.StorageTLS{CA: args[0], Cert: args[1], Key: args[2]}
				default:
					err = usageErr(d, "tls", "tls <ca> [<cert> <key>]")
				}
			}
		default:
			return nil, d.Errf("unrecognized storage etcd option %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if (s.Username == "") != (s.Password == "") {
		return nil, d.Err("storage etcd: username and password go together")
	}
	return s, nil
}

// pairs reads `<key> <value>` pairs given inline after the option or in a
// block, one pair per line. Caddy's parser refuses tokens after a `{` on the
// same line, so the inline form is the one-line spelling.
func pairs(d *caddyfile.Dispenser, opt string, set func(key, val string) error) error {
	args := d.RemainingArgs()
	if len(args)%2 != 0 {
		return d.Errf("%s: expected <key> <value> pairs, got %d arguments", opt, len(args))
	}
	n := len(args) / 2
	for i := 0; i < len(args); i += 2 {
		if err := set(args[i], args[i+1]); err != nil {
			return err
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		vals, err := lineArgs(d, opt+" "+key)
		if err != nil {
			return err
		}
		if len(vals) != 1 {
			return d.Errf("%s: %s: expected exactly one value", opt, key)
		}
		if err := set(key, vals[0]); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return d.Errf("%s: expected at least one <key> <value> pair", opt)
	}
	return nil
}

func parseSessions(d *caddyfile.Dispenser, s *config.SessionLimits) error {
	seen := map[string]bool{}
	return pairs(d, "sessions", func(key, val string) error {
		var dst *int
		switch key {
		case "maximum":
			dst = &s.Maximum
		case "registered":
			dst = &s.Registered
		case "anonymous":
			dst = &s.Anonymous
		default:
			return d.Errf("unrecognized sessions option %q (use maximum, registered, anonymous)", key)
		}
		if seen[key] {
			return d.Errf("sessions: %s given twice", key)
		}
		seen[key] = true
		n, err := count(d, "sessions "+key, val)
		*dst = n
		return err
	})
}

func parseTokens(d *caddyfile.Dispenser, t *config.TokenLifetimes) error {
	seen := map[string]bool{}
	return pairs(d, "tokens", func(key, val string) error {
		var dst *config.Duration
		switch key {
		case "access":
			dst = &t.Access
		case "refresh":
			dst = &t.Refresh
		default:
			return d.Errf("unrecognized tokens option %q (use access, refresh)", key)
		}
		if seen[key] {
			return d.Errf("tokens: %s given twice", key)
		}
		seen[key] = true
		v, err := duration(d, "tokens "+key, val)
		if err == nil && v == 0 {
			def := config.DefaultAccessTokenTTL
			if key == "refresh" {
				def = config.DefaultRefreshTokenTTL
			}
			return zeroDuration(d, "tokens "+key, def)
		}
		*dst = v
		return err
	})
}

func parseDashboards(d *caddyfile.Dispenser) (config.Dashboards, error) {
	const usage = "dashboards path [keep_prefix] | dashboards host <domain>"
	args, err := lineArgs(d, "dashboards")
	if err != nil {
		return config.Dashboards{}, err
	}
	if len(args) == 0 {
		return config.Dashboards{}, usageErr(d, "dashboards", usage)
	}
	switch args[0] {
	case config.DashboardsPath:
		switch {
		case len(args) == 1:
			return config.Dashboards{Mode: config.DashboardsPath}, nil
		case len(args) == 2 && args[1] == "keep_prefix":
			return config.Dashboards{Mode: config.DashboardsPath, KeepPrefix: true}, nil
		}
		return config.Dashboards{}, usageErr(d, "dashboards", usage)
	case config.DashboardsHost:
		if len(args) != 2 || args[1] == "" {
			return config.Dashboards{}, d.Err("dashboards host: a domain is required (usage: dashboards host <domain>)")
		}
		domain := args[1]
		if strings.ContainsAny(domain, "/:@ ") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
			return config.Dashboards{}, d.Errf("dashboards host: %q is not a domain name (sessions are served at <session>.<domain>)", domain)
		}
		return config.Dashboards{Mode: config.DashboardsHost, Domain: strings.ToLower(domain)}, nil
	default:
		return config.Dashboards{}, d.Errf("dashboards: unknown mode %q (use path or host <domain>)", args[0])
	}
}

// errAt reports an error at the line of tok rather than at the cursor, for
// problems that belong to a whole workshop block.
func errAt(tok caddyfile.Token, format string, args ...any) error {
	td := caddyfile.NewDispenser([]caddyfile.Token{tok})
	td.Next()
	return td.Errf(format, args...)
}

// parseWorkshop reads one `workshop <name> { ... }` block. taken holds the
// names already declared; the name is added to it.
func parseWorkshop(d *caddyfile.Dispenser, taken map[string]bool) (config.Workshop, error) {
	tok := d.Token()
	if !d.NextArg() {
		return config.Workshop{}, usageErr(d, "workshop", "workshop <name> { ... }")
	}
	w := config.Workshop{Name: d.Val()}
	if d.NextArg() {
		return config.Workshop{}, usageErr(d, "workshop", "workshop <name> { ... }")
	}
	if taken[w.Name] {
		return config.Workshop{}, d.Errf("workshop %q: declared twice", w.Name)
	}
	taken[w.Name] = true
	// Kept across upstream lines so a pool spread over many lines parses
	// in linear time (rebuilding it per line was quadratic: 16000 lines
	// took 30 s, enough to time out the fuzzer).
	var upstreams config.UpstreamChecker
	seen := map[string]bool{}
	labels := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "authors", "tags", "labels", "upstream", "ingresses":
		default:
			if seen[opt] {
				return config.Workshop{}, d.Errf("workshop option %q given twice", opt)
			}
			seen[opt] = true
		}
		var err error
		switch opt {
		case "title":
			w.Title, err = oneArg(d, opt, "title <text>")
		case "description":
			w.Description, err = oneArg(d, opt, "description <text>")
		case "vendor":
			w.Vendor, err = oneArg(d, opt, "vendor <text>")
		case "difficulty":
			w.Difficulty, err = oneArg(d, opt, "difficulty <text>")
		case "duration":
			w.Duration, err = oneArg(d, opt, "duration <text>")
		case "logo":
			w.Logo, err = oneArg(d, opt, "logo <url>")
		case "url":
			w.URL, err = oneURL(d, opt, "url <url>", config.CheckLink)
		case "alias":
			w.Alias, err = oneArg(d, opt, "alias <name>")
		case "authors":
			w.Authors, err = appendArgs(d, opt, w.Authors)
		case "tags":
			w.Tags, err = appendArgs(d, opt, w.Tags)
		case "ingresses":
			w.Ingresses, err = appendArgs(d, opt, w.Ingresses)
		case "labels":
			err = pairs(d, opt, func(key, val string) error {
				if key == "" {
					return d.Err("labels: empty label name")
				}
				if labels[key] {
					return d.Errf("labels: %q given twice", key)
				}
				labels[key] = true
				if w.Labels == nil {
					w.Labels = map[string]string{}
				}
				w.Labels[key] = val
				return nil
			})
		case "capacity":
			w.Capacity, err = oneCount(d, opt)
		case "reserved":
			w.Reserved, err = oneCount(d, opt)
		case "initial":
			w.Initial, err = oneCount(d, opt)
		case "expires":
			w.Expires, err = oneDuration(d, opt)
		case "overtime":
			w.Overtime, err = oneDuration(d, opt)
		case "deadline":
			w.Deadline, err = oneDuration(d, opt)
		case "orphaned":
			w.Orphaned, err = oneDuration(d, opt)
		case "overdue":
			w.Overdue, err = oneDuration(d, opt)
		case "frame":
			if d.NextArg() {
				err = usageErr(d, opt, "frame (no arguments: the session frame for this workshop)")
			}
			w.Frame = true
		case "upstream":
			w.Upstreams, err = parseUpstream(d, w.Upstreams, &upstreams)
		case "health_check":
			w.HealthCheck, err = parseHealthCheck(d)
		case "spawner":
			w.Spawner, err = parseSpawner(d)
		default:
			return config.Workshop{}, d.Errf("unrecognized workshop option %q", opt)
		}
		if err != nil {
			return config.Workshop{}, err
		}
	}
	// A static spawner is checked as the pool it becomes (capacity against
	// its addresses), but kept as written in the JSON.
	pooled, err := withStaticPool(w)
	if err == nil {
		err = pooled.Validate()
	}
	if err != nil {
		return config.Workshop{}, errAt(tok, "workshop %q: %v", w.Name, err)
	}
	return w, nil
}

// parseSpawner reads `spawner <name> { ... }` with the spawner module's
// own Caddyfile syntax and returns its JSON, the module name inline.
func parseSpawner(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.Err("spawner <name> { ... } (for example: spawner process { command ... })")
	}
	name := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, "http.handlers.portal.spawners."+name)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, "spawner", name, nil), nil
}

func appendArgs(d *caddyfile.Dispenser, opt string, to []string) ([]string, error) {
	args, err := lineArgs(d, opt)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, usageErr(d, opt, opt+" <values...>")
	}
	return append(to, args...), nil
}

func oneCount(d *caddyfile.Dispenser, opt string) (*int, error) {
	v, err := oneArg(d, opt, opt+" <n>")
	if err != nil {
		return nil, err
	}
	n, err := count(d, opt, v)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// parseUpstream reads one upstream line and appends its addresses to pool;
// check holds the pool's earlier lines.
func parseUpstream(d *caddyfile.Dispenser, pool []string, check *config.UpstreamChecker) ([]string, error) {
	args, err := lineArgs(d, "upstream")
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, d.Err("upstream or spawner: at least one dashboard address, or a spawner that starts one per session, is required (usage: upstream <addresses...> | upstream <template containing {session}>)")
	}
	for _, a := range args {
		if err := check.Add(a); err != nil {
			return nil, d.Errf("upstream: %v", err)
		}
	}
	return append(pool, args...), nil
}

func parseHealthCheck(d *caddyfile.Dispenser) (*config.HealthCheck, error) {
	const usage = "health_check off | health_check tcp|<path> [interval <duration>] [timeout <duration>]"
	args, err := lineArgs(d, "health_check")
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, usageErr(d, "health_check", usage)
	}
	hc := &config.HealthCheck{}
	switch {
	case args[0] == "off":
		if len(args) != 1 {
			return nil, usageErr(d, "health_check", usage)
		}
		return &config.HealthCheck{Disabled: true}, nil
	case args[0] == "tcp":
	case strings.HasPrefix(args[0], "/"):
		hc.Path = args[0]
	default:
		return nil, d.Errf("health_check: %q is neither tcp, off nor a path starting with / (usage: %s)", args[0], usage)
	}
	rest := args[1:]
	if len(rest)%2 != 0 {
		return nil, usageErr(d, "health_check", usage)
	}
	seen := map[string]bool{}
	for i := 0; i < len(rest); i += 2 {
		key := rest[i]
		if seen[key] {
			return nil, d.Errf("health_check: %s given twice", key)
		}
		seen[key] = true
		var dst *config.Duration
		var def time.Duration
		switch key {
		case "interval":
			dst, def = &hc.Interval, health.DefaultInterval
		case "timeout":
			dst, def = &hc.Timeout, health.DefaultTimeout
		default:
			return nil, d.Errf("health_check: unknown setting %q (use interval, timeout)", key)
		}
		v, err := duration(d, "health_check "+key, rest[i+1])
		if err != nil {
			return nil, err
		}
		if v == 0 {
			return nil, zeroDuration(d, "health_check "+key, def)
		}
		*dst = v
	}
	return hc, nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
