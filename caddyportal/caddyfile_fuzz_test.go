package caddyportal

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

// FuzzUnmarshalCaddyfile feeds arbitrary token streams to the parser. It
// must never panic, and whatever it accepts must pass Validate and survive
// the JSON round trip that Caddy performs before provisioning.
//
// It tokenizes with caddyfile.Tokenize rather than NewTestDispenser, which
// exits the process on a lexer error.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	seeds := []string{
		"portal {\nrobot r p\nclient i s\nworkshop lab {\nupstream a:1\n}\n}",
		"portal {\nname demo\nstorage etcd e:1 {\nprefix /p\nusername u\npassword p\ntls a b c\n}\nurl https://x\nindex https://y/\nredirects https://z\ncatalog public\nregistration anonymous\nsessions maximum 1 registered 1 anonymous 1\nrobot r p\nclient i s\nadmin a p\ndashboards host d.example\ntokens access 1h refresh 1d\nactivation_timeout 1m\nretention 1d\n}",
		"portal {\nsessions {\nmaximum 3\n}\ntokens {\naccess 1h\n}\nrobot r p\nclient i s\nworkshop w {\ntitle t\ndescription d\nvendor v\nauthors a b\ndifficulty x\nduration 1h\ntags t\nlabels {\nk v\n}\nlogo l\nurl https://u\nalias a\ncapacity 2\nreserved 1\ninitial 1\nexpires 1h\novertime 5m\ndeadline 2h\norphaned 1m\noverdue 1m\nupstream a:1 a:2\n}\n}",
		"portal {\nworkshop t {\nupstream {session}:80\n}\n}",
		"portal {\nsessions { maximum 10 registered 1 }\n}",
		"portal {\nworkshop w {\nlabels {\n}\n}\n}",
		"portal {\n}\n}\n{",
		"portal",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkCaddyfile(t, data) })
}

// checkCaddyfile parses data as a portal block: it must never panic, and
// whatever it accepts must pass Validate and survive the JSON round trip
// that Caddy performs before provisioning. It reports whether the parser
// accepted data.
func checkCaddyfile(t testing.TB, data []byte) bool {
	t.Helper()
	tokens, err := caddyfile.Tokenize(data, "Caddyfile")
	if err != nil {
		return false
	}
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
		return false
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("accepted a config that fails Validate: %v\n%s", err, data)
	}
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var again Handler
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if !reflect.DeepEqual(normalize(h), normalize(again)) {
		t.Fatalf("JSON round trip changed the config:\n%+v\n%+v\n%s", h.Portal, again.Portal, data)
	}
	return true
}

// normalize makes empty and nil collections compare equal, since JSON's
// omitempty cannot tell them apart.
func normalize(h Handler) Handler {
	p := h.Portal
	if len(p.Redirects) == 0 {
		p.Redirects = nil
	}
	ws := append([]config.Workshop(nil), p.Workshops...)
	for i := range ws {
		if len(ws[i].Labels) == 0 {
			ws[i].Labels = nil
		}
		if len(ws[i].Authors) == 0 {
			ws[i].Authors = nil
		}
		if len(ws[i].Tags) == 0 {
			ws[i].Tags = nil
		}
	}
	if len(ws) == 0 {
		ws = nil
	}
	p.Workshops = ws
	return Handler{Portal: p}
}
