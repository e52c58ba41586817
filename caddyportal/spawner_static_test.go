package caddyportal

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

// TestStaticPoolsFromJSON: a JSON config's static spawner becomes the pool
// the allocation hands out; a malformed one is refused with the reason;
// other spawners and plain upstreams pass unchanged.
func TestStaticPoolsFromJSON(t *testing.T) {
	ws := func(raw string, upstreams ...string) config.Portal {
		return config.Portal{Workshops: []config.Workshop{{Name: "lab", Spawner: json.RawMessage(raw), Upstreams: upstreams}}}
	}
	got, err := staticPools(ws(`{"spawner":"static","to":["127.0.0.1:9001","127.0.0.1:9002"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if w := got.Workshops[0]; w.Spawned() || !slices.Equal(w.Upstreams, []string{"127.0.0.1:9001", "127.0.0.1:9002"}) {
		t.Fatalf("static spawner became %+v", w)
	}
	for raw, want := range map[string]string{
		`{"spawner":"static"}`:                                  "at least one address is required",
		`{"spawner":"static","to":["a:1"],"addresses":["b:1"]}`: `unknown field "addresses"`,
		`{"spawner":"static","to":["{session}.x:1","a:1"]}`:     "template must be the only address",
		`{"spawner":"static","to":["a:1","a:1"]}`:               `"a:1" listed twice`,
		`{"spawner":"static","to":["http://a:1"]}`:              "is not a dial address host:port",
	} {
		if _, err := staticPools(ws(raw)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", raw, err, want)
		}
	}
	if _, err := staticPools(ws(`{"spawner":"static","to":["a:1"]}`, "b:1")); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("static spawner beside upstream: error %v", err)
	}
	process := ws(`{"spawner":"process","command":["x"]}`)
	if got, err := staticPools(process); err != nil || string(got.Workshops[0].Spawner) != string(process.Workshops[0].Spawner) {
		t.Errorf("a process spawner changed: %+v, %v", got.Workshops[0], err)
	}
}
