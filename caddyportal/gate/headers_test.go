package gate_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/gate"
)

func TestStripIdentity(t *testing.T) {
	tests := []struct {
		name   string
		in     http.Header
		cookie []string // want Cookie values; nil: no Cookie header
		kept   map[string]string
	}{
		{
			name: "client identity headers removed",
			in: http.Header{
				"X-Portal-User":                  {"evil"},
				"X-Portal-Session":               {"other"},
				"X-Portal-Anything":              {"x"},
				"X-Forwarded-User":               {"evil"},
				"X-Forwarded-Email":              {"evil@example.com"},
				"X-Forwarded-Groups":             {"admins"},
				"Remote-User":                    {"evil"},
				"X-Remote-User":                  {"evil"},
				"X-Auth-Request-User":            {"evil"},
				"X-Auth-Request-Email":           {"evil@example.com"},
				"X-Webauth-User":                 {"evil"},
				"X-User":                         {"evil"},
				"X-Email":                        {"evil@example.com"},
				"Accept":                         {"text/html"},
				"X-Forwarded-For":                {"10.0.0.1"},
				"Authorization":                  {"Bearer upstream-own"},
				"X-Forwarded-Preferred-Username": {"evil"},
			},
			kept: map[string]string{"Accept": "text/html", "X-Forwarded-For": "10.0.0.1", "Authorization": "Bearer upstream-own"},
		},
		{
			name: "client address headers removed",
			in: http.Header{
				"Forwarded":          {"for=6.6.6.6;proto=https"},
				"X-Real-Ip":          {"6.6.6.6"},
				"X-Client-Ip":        {"6.6.6.6"},
				"True-Client-Ip":     {"6.6.6.6"},
				"Cf-Connecting-Ip":   {"6.6.6.6"},
				"X-Forwarded-Port":   {"443"},
				"X-Forwarded-Server": {"evil"},
				"X-Original-Url":     {"/admin"},
				"X-Original-Host":    {"evil.example"},
				"X-Host":             {"evil.example"},
				"User-Agent":         {"test"},
			},
			kept: map[string]string{"User-Agent": "test"},
		},
		{
			name: "identity families removed by prefix, forwarding headers Caddy rewrites kept",
			in: http.Header{
				"Remote-Groups":                {"admins"},
				"Impersonate-Extra-Scopes":     {"all"},
				"X-Remote-Extra-Foo":           {"x"},
				"X-Auth-Request-Anything":      {"x"},
				"X-Forwarded-Access-Token":     {"t"},
				"X-Forwarded-Prefix":           {"/evil"},
				"X-Ms-Client-Principal-Idp":    {"aad"},
				"Cf-Access-Jwt-Assertion":      {"jwt"},
				"X-Forwarded-Proto":            {"https"},
				"X-Forwarded-Host":             {"portal.example"},
				"X-Remotely-Unrelated-Feature": {"kept"},
			},
			kept: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "portal.example",
				"X-Remotely-Unrelated-Feature": "kept"},
		},
		{
			name: "lower-case header keys (not canonicalised) removed",
			in:   http.Header{"x-portal-user": {"evil"}, "x-portal-session": {"evil"}},
		},
		{
			name:   "portal cookies removed, others kept",
			in:     http.Header{"Cookie": {"portal-demo-demo-w01-s001=abc; app=1", "portal-demo-demo-w01-s002=def;theme=dark ;  ; x=y"}},
			cookie: []string{"app=1; theme=dark; x=y"},
		},
		{
			name: "only portal cookies: no Cookie header left",
			in:   http.Header{"Cookie": {"portal-demo-a=1; portal-demo-b=2"}},
		},
		{
			name:   "cookie named like the prefix without the dash is kept",
			in:     http.Header{"Cookie": {"portal-demox=1"}},
			cookie: []string{"portal-demox=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone()
			gate.StripIdentity(h, "portal-demo-", "demo-w01-s001", "alice", "")
			want := http.Header{
				gate.HeaderSession: {"demo-w01-s001"},
				gate.HeaderUser:    {"alice"},
			}
			for k, v := range tt.kept {
				want.Set(k, v)
			}
			if tt.cookie != nil {
				want["Cookie"] = tt.cookie
			}
			if !reflect.DeepEqual(h, want) {
				t.Fatalf("after StripIdentity:\n got %v\nwant %v", h, want)
			}
		})
	}
}

func TestStripTrailers(t *testing.T) {
	tr := http.Header{"X-Portal-User": {"root"}, "Remote-Groups": {"admins"}, "Cookie": {"portal-demo-x=1"},
		"impersonate-user": {"root"}, "X-Checksum": {"abc"}}
	gate.StripTrailers(tr)
	if want := (http.Header{"X-Checksum": {"abc"}}); !reflect.DeepEqual(tr, want) {
		t.Fatalf("trailers after StripTrailers: %v, want %v", tr, want)
	}
}
