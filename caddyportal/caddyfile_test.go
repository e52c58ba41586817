package caddyportal

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

func intp(n int) *int { return &n }

func dur(d time.Duration) config.Duration { return config.Duration(d) }

// required is the minimum a valid portal block needs besides its workshops.
const required = `
	robot robot@portal pw
	client id secret
`

const oneWorkshop = `
	workshop lab {
		upstream 127.0.0.1:9001
	}
`

var (
	requiredCfg = config.Portal{
		Robot:  config.Credentials{Username: "robot@portal", Password: "pw"},
		Client: config.Client{ID: "id", Secret: "secret"},
	}
	oneWorkshopCfg = []config.Workshop{{Name: "lab", Upstreams: []string{"127.0.0.1:9001"}}}
)

func withRequired(p config.Portal) config.Portal {
	p.Robot, p.Client = requiredCfg.Robot, requiredCfg.Client
	if p.Workshops == nil {
		p.Workshops = oneWorkshopCfg
	}
	return p
}

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  config.Portal
	}{
		{
			name:  "minimal",
			input: "portal {" + required + oneWorkshop + "}",
			want:  withRequired(config.Portal{}),
		},
		{
			name: "portal options",
			input: `portal {
				name demo
				storage badger /data
				url https://portal.example.com/
				index https://hub.example.com/
				redirects https://a.example.com
				redirects https://b.example.com https://c.example.com
				catalog public
				registration disabled
				password event-2026
				sessions {
					maximum 10
					registered 1
				}
				admin root root-pw
				dashboards host labs.example.com
				tokens {
					access 2h
				}
				activation_timeout 2m
				retention 1d12h
				analytics http://127.0.0.1:9000/hook
				analytics_allow 127.0.0.0/8 ::1
				analytics_allow http://hooks.internal:8080 10.1.2.3
				` + required + oneWorkshop + `}`,
			want: withRequired(config.Portal{
				Name:              "demo",
				Storage:           &config.Storage{Backend: "badger", Path: "/data"},
				URL:               "https://portal.example.com",
				Index:             "https://hub.example.com/",
				Redirects:         []string{"https://a.example.com", "https://b.example.com", "https://c.example.com"},
				Catalog:           "public",
				Registration:      "disabled",
				Password:          "event-2026",
				Sessions:          config.SessionLimits{Maximum: 10, Registered: 1},
				Admin:             &config.Credentials{Username: "root", Password: "root-pw"},
				Dashboards:        config.Dashboards{Mode: "host", Domain: "labs.example.com"},
				Tokens:            config.TokenLifetimes{Access: dur(2 * time.Hour)},
				ActivationTimeout: dur(2 * time.Minute),
				Retention:         dur(36 * time.Hour),
				Analytics:         "http://127.0.0.1:9000/hook",
				AnalyticsAllow:    []string{"127.0.0.0/8", "::1", "http://hooks.internal:8080", "10.1.2.3"},
			}),
		},
		{
			name:  "inline pairs",
			input: "portal {\nsessions maximum 3 anonymous 2\ntokens refresh 1h access 1m\n" + required + "workshop lab {\nlabels a b c d\nupstream x:1\n}\n}",
			want: withRequired(config.Portal{
				Sessions:  config.SessionLimits{Maximum: 3, Anonymous: 2},
				Tokens:    config.TokenLifetimes{Access: dur(time.Minute), Refresh: dur(time.Hour)},
				Workshops: []config.Workshop{{Name: "lab", Labels: map[string]string{"a": "b", "c": "d"}, Upstreams: []string{"x:1"}}},
			}),
		},
		{
			name:  "storage badger min_free_space",
			input: "portal {\nstorage badger /data {\nmin_free_space 128MiB\n}\n" + required + oneWorkshop + "}",
			want:  withRequired(config.Portal{Storage: &config.Storage{Backend: "badger", Path: "/data", MinFreeSpace: 128 << 20}}),
		},
		{
			name:  "storage badger min_free_space off",
			input: "portal {\nstorage badger {\nmin_free_space off\n}\n" + required + oneWorkshop + "}",
			want:  withRequired(config.Portal{Storage: &config.Storage{Backend: "badger", MinFreeSpace: -1}}),
		},
		{
			name: "storage etcd",
			input: `portal {
				storage etcd http://e1:2379 http://e2:2379 {
					prefix /p/
					username u
					password p
					tls ca.pem
				}` + required + oneWorkshop + `}`,
			want: withRequired(config.Portal{Storage: &config.Storage{
				Backend: "etcd", Endpoints: []string{"http://e1:2379", "http://e2:2379"},
				Prefix: "/p/", Username: "u", Password: "p", TLS: &config.StorageTLS{CA: "ca.pem"},
			}}),
		},
		{
			name: "workshop options",
			input: `portal {` + required + `
				workshop lab {
					title "A title"
					description "Some words"
					vendor v
					authors a b
					authors c
					difficulty hard
					duration 1h
					tags t1
					tags t2
					labels {
						k v
					}
					labels k2 v2
					logo data:image/png;base64,AAAA
					url https://example.com/lab
					alias lab-alias
					capacity 2
					reserved 1
					initial 2
					expires 1h
					overtime 10m
					deadline 3h
					orphaned 0s
					overdue 5m
					upstream a:1
					upstream b:2
				}
				workshop tmpl {
					capacity 4
					upstream {session}.svc:80
					health_check /api/status interval 30s timeout 2s
				}
			}`,
			want: withRequired(config.Portal{Workshops: []config.Workshop{
				{
					Name: "lab", Title: "A title", Description: "Some words", Vendor: "v",
					Authors: []string{"a", "b", "c"}, Difficulty: "hard", Duration: "1h",
					Tags: []string{"t1", "t2"}, Labels: map[string]string{"k": "v", "k2": "v2"},
					Logo: "data:image/png;base64,AAAA", URL: "https://example.com/lab", Alias: "lab-alias",
					Capacity: intp(2), Reserved: intp(1), Initial: intp(2),
					Expires: dur(time.Hour), Overtime: dur(10 * time.Minute), Deadline: dur(3 * time.Hour),
					Overdue: dur(5 * time.Minute), Upstreams: []string{"a:1", "b:2"},
				},
				{Name: "tmpl", Capacity: intp(4), Upstreams: []string{"{session}.svc:80"}, HealthCheck: &config.HealthCheck{
					Path: "/api/status", Interval: dur(30 * time.Second), Timeout: dur(2 * time.Second)}},
			}}),
		},
		{
			name:  "runtime placeholders stay",
			input: "portal {\nrobot r {env.PW}\nclient {env.ID} {env.SECRET}\n" + oneWorkshop + "}",
			want: config.Portal{
				Robot:     config.Credentials{Username: "r", Password: "{env.PW}"},
				Client:    config.Client{ID: "{env.ID}", Secret: "{env.SECRET}"},
				Workshops: oneWorkshopCfg,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(h.Portal, tt.want) {
				t.Errorf("got  %+v\nwant %+v", h.Portal, tt.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	ws := func(body string) string {
		return "portal {" + required + "workshop lab {\n" + body + "\n}\n}"
	}
	tests := []struct {
		name, input, want string
	}{
		{"directive argument", "portal x {" + required + oneWorkshop + "}", `unexpected argument "x"`},
		{"unknown option", "portal {\nbogus 1\n" + required + oneWorkshop + "}", `unrecognized portal option "bogus", at Testfile:2`},
		{"unknown workshop option", ws("upstream a:1\nbogus"), `unrecognized workshop option "bogus", at Testfile:6`},
		{"option twice", "portal {\nname a\nname b\n" + required + oneWorkshop + "}", `portal option "name" given twice, at Testfile:3`},
		{"workshop option twice", ws("upstream a:1\ntitle a\ntitle b"), `workshop option "title" given twice`},
		{"url without scheme", "portal {\nurl example.com\n" + required + oneWorkshop + "}", `url: "example.com" is not an absolute http(s) URL, at Testfile:2`},
		{"url two args", "portal {\nurl https://a https://b\n" + required + oneWorkshop + "}", `url: wrong argument count (usage: url <public base url>), at Testfile:2`},
		{"url with path", "portal {\nurl https://portal.example.com/training/\n" + required + oneWorkshop + "}", `url: "https://portal.example.com/training/": the portal is served at the root of its host; give scheme://host[:port] only, without a path or query, at Testfile:2`},
		{"option with block", "portal {\nname a {\nx\n}\n" + required + oneWorkshop + "}", `name: unexpected block, at Testfile:2`},
		{"redirects empty", "portal {\nredirects\n" + required + oneWorkshop + "}", `redirects: wrong argument count`},
		{"bad catalog", "portal {\ncatalog open\n" + required + oneWorkshop + "}", `catalog: unknown value "open" (use private, public)`},
		{"bad registration", "portal {\nregistration two-step\n" + required + oneWorkshop + "}", `registration: unknown value "two-step"`},
		{"sessions odd pairs", "portal {\nsessions maximum\n" + required + oneWorkshop + "}", `sessions: expected <key> <value> pairs, got 1 arguments`},
		{"sessions empty", "portal {\nsessions\n" + required + oneWorkshop + "}", `sessions: expected at least one <key> <value> pair`},
		{"sessions negative", "portal {\nsessions maximum -1\n" + required + oneWorkshop + "}", `sessions maximum: "-1" is not a non-negative integer`},
		{"sessions twice", "portal {\nsessions maximum 1 maximum 2\n" + required + oneWorkshop + "}", `sessions: maximum given twice`},
		{"sessions block value missing", "portal {\nsessions {\nmaximum\n}\n" + required + oneWorkshop + "}", `sessions: maximum: expected exactly one value, at Testfile:3`},
		{"sessions block two values", "portal {\nsessions {\nmaximum 1 2\n}\n" + required + oneWorkshop + "}", `sessions: maximum: expected exactly one value, at Testfile:3`},
		{"tokens unknown", "portal {\ntokens id 1h\n" + required + oneWorkshop + "}", `unrecognized tokens option "id"`},
		{"tokens negative", "portal {\ntokens access -1h\n" + required + oneWorkshop + "}", `tokens access: duration "-1h" must not be negative`},
		{"activation_timeout bad", "portal {\nactivation_timeout soon\n" + required + oneWorkshop + "}", `activation_timeout: invalid duration "soon"`},
		{"activation_timeout 0", "portal {\nactivation_timeout 0\n" + required + oneWorkshop + "}", `activation_timeout 0 would mean the default (1m0s): give a duration above 0, or leave it out, at Testfile:2`},
		{"retention 0", "portal {\nretention 0s\n" + required + oneWorkshop + "}", `retention 0 would mean the default (36h0m0s)`},
		{"tokens access 0", "portal {\ntokens access 0\n" + required + oneWorkshop + "}", `tokens access 0 would mean the default (10h0m0s)`},
		{"tokens refresh 0", "portal {\ntokens refresh 0\n" + required + oneWorkshop + "}", `tokens refresh 0 would mean the default`},
		{"stream_close_delay 0", "portal {\nstream_close_delay 0\n" + required + oneWorkshop + "}", `stream_close_delay 0 would mean the default (10m0s)`},
		{"dashboard_timeout 0", "portal {\ndashboard_timeout 0\n" + required + oneWorkshop + "}", `dashboard_timeout 0 would mean the default (30s)`},
		{"robot one arg", "portal {\nrobot r\nclient id secret\n" + oneWorkshop + "}", `robot: two non-empty arguments are required`},
		{"robot empty password", "portal {\nrobot r \"\"\nclient id secret\n" + oneWorkshop + "}", `robot: two non-empty arguments are required`},
		{"client one arg", "portal {\nrobot r p\nclient id\n" + oneWorkshop + "}", `client: two non-empty arguments are required`},
		{"missing robot", "portal {\nclient id secret\n" + oneWorkshop + "}", "missing `robot <username> <password>`"},
		{"missing client", "portal {\nrobot r p\n" + oneWorkshop + "}", "missing `client <id> <secret>`"},
		{"no block", "portal", "missing `robot"},
		{"dashboards extra", "portal {\ndashboards path x\n" + required + oneWorkshop + "}", `dashboards: wrong argument count`},
		{"dashboards host url", "portal {\ndashboards host https://x.example.com\n" + required + oneWorkshop + "}", `dashboards host: "https://x.example.com" is not a domain name`},
		{"storage none", "portal {\nstorage\n" + required + oneWorkshop + "}", `storage: wrong argument count`},
		{"storage badger block", "portal {\nstorage badger /d {\nx y\n}\n" + required + oneWorkshop + "}", `unrecognized storage badger option "x", at Testfile:3`},
		{"min_free_space bad", "portal {\nstorage badger /d {\nmin_free_space lots\n}\n" + required + oneWorkshop + "}", `min_free_space: "lots" is not a size such as 64MiB (or off), at Testfile:3`},
		{"min_free_space zero", "portal {\nstorage badger /d {\nmin_free_space 0\n}\n" + required + oneWorkshop + "}", `min_free_space: "0" is not a size`},
		{"min_free_space twice", "portal {\nstorage badger /d {\nmin_free_space 1MiB\nmin_free_space 2MiB\n}\n" + required + oneWorkshop + "}", `storage badger option "min_free_space" given twice, at Testfile:4`},
		{"min_free_space no value", "portal {\nstorage badger /d {\nmin_free_space\n}\n" + required + oneWorkshop + "}", `min_free_space: wrong argument count`},
		{"storage badger extra", "portal {\nstorage badger /a /b\n" + required + oneWorkshop + "}", `storage: wrong argument count`},
		{"etcd tls two", "portal {\nstorage etcd e:1 {\ntls a b\n}\n" + required + oneWorkshop + "}", `tls: wrong argument count (usage: tls <ca> [<cert> <key>])`},
		{"etcd user without password", "portal {\nstorage etcd e:1 {\nusername u\n}\n" + required + oneWorkshop + "}", `storage etcd: username and password go together`},
		{"workshop no name", "portal {" + required + "workshop {\nupstream a:1\n}\n}", `workshop: wrong argument count`},
		{"workshop two names", "portal {" + required + "workshop a b {\nupstream a:1\n}\n}", `workshop: wrong argument count`},
		{"workshop duplicate", "portal {" + required + oneWorkshop + oneWorkshop + "}", `workshop "lab": declared twice, at Testfile:9`},
		{"capacity not a number", ws("capacity many\nupstream a:1"), `capacity: "many" is not a non-negative integer`},
		{"initial overflow", ws("initial 99999999999999999999\nupstream a:1"), `initial: "99999999999999999999" is not a non-negative integer`},
		{"reserved > capacity", ws("capacity 1\nreserved 2\nupstream a:1"), `workshop "lab": reserved (2) is larger than capacity (1), at Testfile:4`},
		{"capacity > pool", ws("capacity 2\nupstream a:1"), `workshop "lab": capacity (2) is larger than the upstream pool (1 addresses), at Testfile:4`},
		{"no upstream", ws("title t"), `workshop "lab": upstream or spawner: at least one dashboard address, or a spawner that starts one per session, is required, at Testfile:4`},
		{"empty upstream", ws("upstream"), `upstream or spawner: at least one dashboard address, or a spawner that starts one per session, is required`},
		{"empty upstream address", ws(`upstream ""`), `upstream: empty address`},
		{"upstream twice", ws("upstream a:1\nupstream a:1"), `upstream: "a:1" listed twice, at Testfile:6`},
		{"template in pool", ws("upstream a:1 {session}:80"), `upstream: a {session} template must be the only address`},
		{"template after pool line", ws("upstream a:1 a:2\nupstream {session}:80"), `upstream: a {session} template must be the only address, not part of a pool, at Testfile:6`},
		{"pool after template line", ws("upstream {session}:80\nupstream a:1"), `upstream: a {session} template must be the only address, not part of a pool, at Testfile:6`},
		{"upstream twice across lines", ws("upstream a:1 a:2\nupstream a:3\nupstream a:2"), `upstream: "a:2" listed twice, at Testfile:7`},
		{"upstream with scheme", ws("upstream http://127.0.0.1:9001"), `upstream: "http://127.0.0.1:9001" is not a dial address host:port (such as 127.0.0.1:9001, without a scheme or path), at Testfile:5`},
		{"upstream without port", ws("upstream a:1\nupstream dash.internal"), `upstream: "dash.internal" is not a dial address host:port (such as 127.0.0.1:9001, without a scheme or path), at Testfile:6`},
		{"upstream with path", ws("upstream a:1/x"), `upstream: "a:1/x": the port must be a number 1-65535`},
		{"upstream port too large", ws("upstream 127.0.0.1:99999"), `upstream: "127.0.0.1:99999": the port must be a number 1-65535`},
		{"upstream port zero", ws("upstream a:0"), `upstream: "a:0": the port must be a number 1-65535`},
		{"upstream template without port", ws("upstream {session}.lab.internal"), `upstream: "{session}.lab.internal" is not a dial address host:port`},
		{"upstream without host", ws("upstream :9001"), `upstream: ":9001" is not a dial address host:port`},
		{"template without capacity", ws("upstream {session}.lab:80"), "workshop \"lab\": capacity: its dashboards are started per session (a spawner or a {session} template), so there is no pool to count: set `capacity <n>`, or the portal's `sessions maximum <n>`"},
		{"spawner without capacity", ws("spawner process {\ncommand x {port}\n}"), "workshop \"lab\": capacity: its dashboards are started per session"},
		{"health_check interval 0", ws("upstream a:1\nhealth_check tcp interval 0s"), `health_check interval 0 would mean the default (10s)`},
		{"health_check timeout 0", ws("upstream a:1\nhealth_check /x timeout 0"), `health_check timeout 0 would mean the default (5s)`},
		{"second workshop refused at its line", "portal {" + required + "workshop a {\nupstream a:1\n}\nworkshop b {\nupstream {session}.b:80\n}\n}", "workshop \"b\": capacity: its dashboards are started per session (a spawner or a {session} template), so there is no pool to count: set `capacity <n>`, or the portal's `sessions maximum <n>`, at Testfile:7"},
		{"ready path without a slash", ws("capacity 1\nspawner process {\ncommand x {port}\nready healthz 5s\n}"), `spawner process: ready: the path "healthz" must begin with / (or a placeholder such as {prefix})`},
		{"ready without a path", ws("capacity 1\nspawner container {\nimage x\nport 80\nready\n}"), `spawner container: ready <path> [<timeout>]`},
		{"labels odd", ws("labels a\nupstream a:1"), `labels: expected <key> <value> pairs, got 1 arguments`},
		{"labels twice", ws("labels a b a c\nupstream a:1"), `labels: "a" given twice`},
		{"labels empty key", ws("labels \"\" b\nupstream a:1"), `labels: empty label name`},
		{"workshop url bad", ws("url /lab\nupstream a:1"), `url: "/lab" is not an absolute http(s) URL`},
		{"expires bad", ws("expires 1 hour\nupstream a:1"), `expires: wrong argument count`},
		{"overdue negative", ws("overdue -1s\nupstream a:1"), `overdue: duration "-1s" must not be negative`},
		{"bad portal name", "portal {\nname UPPER\n" + required + oneWorkshop + "}", `name "UPPER": use lowercase letters, digits and dashes (at most 40), at Testfile:10`},
		{"replica with slash", "portal {\nreplica node/a\n" + required + oneWorkshop + "}", `replica "node/a": use letters, digits, dots, dashes and underscores (at most 253), such as a host name; the default is this host's name, at Testfile:10`},
		{"replica with space", "portal {\nreplica \"node a\"\n" + required + oneWorkshop + "}", `replica "node a": use letters`},
		{"replica with equals", "portal {\nreplica a=b\n" + required + oneWorkshop + "}", `replica "a=b": use letters`},
		{"replica ending in dot", "portal {\nreplica node.\n" + required + oneWorkshop + "}", `replica "node.": use letters`},
		{"analytics_allow empty", "portal {\nanalytics_allow\n" + required + oneWorkshop + "}", `analytics_allow: wrong argument count (usage: analytics_allow <networks, addresses or origins...>), at Testfile:2`},
		{"analytics_allow bad network", "portal {\nanalytics_allow 10.0.0.0/33\n" + required + oneWorkshop + "}", `analytics_allow: "10.0.0.0/33" is not a network in CIDR form (such as 10.0.0.0/8), at Testfile:2`},
		{"analytics_allow name", "portal {\nanalytics_allow hooks.internal\n" + required + oneWorkshop + "}", `analytics_allow: "hooks.internal" is not a network (10.0.0.0/8), an IP address or an origin (http://host:port)`},
		{"analytics_allow url with path", "portal {\nanalytics_allow http://hooks.internal/x\n" + required + oneWorkshop + "}", `analytics_allow: "http://hooks.internal/x" is not an origin (scheme://host[:port])`},
		{"analytics_allow block", "portal {\nanalytics_allow 10.0.0.0/8 {\nx\n}\n" + required + oneWorkshop + "}", `analytics_allow: unexpected block, at Testfile:2`},
		{"health_check empty", ws("upstream a:1\nhealth_check"), `health_check: wrong argument count (usage: health_check off | health_check tcp|<path> [interval <duration>] [timeout <duration>]), at Testfile:6`},
		{"health_check off extra", ws("upstream a:1\nhealth_check off interval 1s"), `health_check: wrong argument count`},
		{"health_check bad kind", ws("upstream a:1\nhealth_check http"), `health_check: "http" is neither tcp, off nor a path starting with /`},
		{"health_check odd", ws("upstream a:1\nhealth_check tcp interval"), `health_check: wrong argument count`},
		{"health_check unknown key", ws("upstream a:1\nhealth_check tcp every 1s"), `health_check: unknown setting "every" (use interval, timeout)`},
		{"health_check bad duration", ws("upstream a:1\nhealth_check tcp interval soon"), `health_check interval: invalid duration "soon"`},
		{"health_check twice", ws("upstream a:1\nhealth_check tcp\nhealth_check off"), `workshop option "health_check" given twice`},
		{"health_check path with space", ws("upstream a:1\nhealth_check \"/a b\""), `health_check: path "/a b" must start with /`},
		{"bad admin", "portal {\nadmin a\n" + required + oneWorkshop + "}", `admin: two non-empty arguments are required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("want an error containing %q, got none; parsed %+v", tt.want, h.Portal)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

// TestUnmarshalCaddyfileEnv checks {$VAR} expansion, which happens while
// the Caddyfile is read, including a password variable that is empty.
func TestUnmarshalCaddyfileEnv(t *testing.T) {
	const input = "portal {\nrobot robot@portal {$CADDYPORTAL_TEST_PW}\nclient id secret\n" + oneWorkshop + "}"

	t.Setenv("CADDYPORTAL_TEST_PW", "s3cret")
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	if h.Robot.Password != "s3cret" {
		t.Errorf("robot password %q, want s3cret", h.Robot.Password)
	}

	t.Setenv("CADDYPORTAL_TEST_PW", "")
	h = Handler{}
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	if err == nil || !strings.Contains(err.Error(), "robot: two non-empty arguments are required") || !strings.Contains(err.Error(), "Testfile:2") {
		t.Errorf("empty password variable: got %v", err)
	}
}

// TestParsedConfigValidates checks that whatever the parser accepts also
// passes the handler's own Validate, which Caddy runs after Provision.
func TestParsedConfigValidates(t *testing.T) {
	input := "portal {\ndashboards host x.example.com\nsessions maximum 2\n" + required +
		"workshop a {\nupstream {session}:1\nreserved 2\n}\nworkshop b {\nupstream a:1 a:2\ncapacity 2\nreserved 2\ninitial 1\n}\n}"
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	envs := h.Environments()
	if len(envs) != 2 || envs[0].Capacity != 2 || envs[1].Capacity != 2 || envs[1].Initial != 2 {
		t.Errorf("environments: %+v", envs)
	}
}

// A pool spread over many upstream lines must parse in linear work: the
// parser once rebuilt its duplicate set on every line, and a fuzzer input of
// 16000 lines took 30 s. Bytes allocated grow with the work done and, unlike
// time, do not depend on how busy the machine is: four times the lines must
// cost well under sixteen times the bytes (linear is about four).
func TestUnmarshalCaddyfileUpstreamLinesLinear(t *testing.T) {
	parse := func(lines int) uint64 {
		var b strings.Builder
		b.WriteString("portal {\nrobot r p\nclient i s\nworkshop w {\n")
		for i := 0; i < lines; i++ {
			fmt.Fprintf(&b, "upstream a:%d\n", i+1)
		}
		b.WriteString("}\n}")
		tokens, err := caddyfile.Tokenize([]byte(b.String()), "Caddyfile")
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if got := len(h.Portal.Workshops[0].Upstreams); got != lines {
			t.Fatalf("parsed %d upstreams, want %d", got, lines)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := parse(1000), parse(4000)
	if ratio := float64(large) / float64(small); ratio > 8 {
		t.Fatalf("4x the upstream lines allocated %.1fx the bytes (%d vs %d): parsing is not linear", ratio, large, small)
	}
}

// TestMinFreeSpaceOnlyForBadger: the free-space reserve is a Badger
// setting; in a JSON config for etcd it is an error, not ignored.
func TestMinFreeSpaceOnlyForBadger(t *testing.T) {
	p := withRequired(config.Portal{Storage: &config.Storage{Backend: "etcd", Endpoints: []string{"e:1"}, MinFreeSpace: 1 << 20}})
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "min_free_space applies to badger only") {
		t.Fatalf("Validate: %v", err)
	}
	p.Storage = &config.Storage{Backend: "badger", MinFreeSpace: -1}
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate of badger with min_free_space off: %v", err)
	}
}

// TestDashboardsKeepPrefix: `dashboards path keep_prefix` keeps the
// session's prefix for the dashboard; host mode has none to keep.
func TestDashboardsKeepPrefix(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("portal {\ndashboards path keep_prefix\n" + required + oneWorkshop + "}")); err != nil {
		t.Fatal(err)
	}
	if !h.Dashboards.KeepPrefix || h.Dashboards.Mode != config.DashboardsPath {
		t.Fatalf("dashboards = %+v, want path mode keeping the prefix", h.Dashboards)
	}
	if p := h.Portal.WithDefaults(); p.Validate() != nil {
		t.Fatal(p.Validate())
	}
	h = Handler{}
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("portal {\ndashboards host x.example.com keep_prefix\n" + required + oneWorkshop + "}"))
	if err == nil {
		t.Fatal("host mode accepted keep_prefix")
	}
	h = Handler{}
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("portal {\ndashboards path keep_prefix\n" + required + oneWorkshop + "}")); err != nil {
		t.Fatal(err)
	}
	bad := h.Portal.WithDefaults()
	bad.Dashboards.Mode, bad.Dashboards.Domain = config.DashboardsHost, "x.example.com"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "keep_prefix") {
		t.Fatalf("JSON config with host mode and keep_prefix: %v", err)
	}
}

// TestStartsAndReplica: `starts` bounds concurrent environment starts and
// `replica` names the process; zero starts is refused.
func TestStartsAndReplica(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("portal {\nstarts 8\nreplica node-a\n" + required + oneWorkshop + "}")); err != nil {
		t.Fatal(err)
	}
	if h.Starts != 8 || h.Replica != "node-a" {
		t.Fatalf("starts %d replica %q", h.Starts, h.Replica)
	}
	h = Handler{}
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("portal {\nstarts 0\n" + required + oneWorkshop + "}")); err == nil || !strings.Contains(err.Error(), "starts") {
		t.Fatalf("starts 0: %v", err)
	}
}
