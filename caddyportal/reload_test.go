package caddyportal_test

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func stopCaddy() error { return caddy.Stop() }

// TestReloadKeepsStoreOpen: a config reload with the same data directory
// neither fails on Badger's directory lock nor loses data, writes keep
// working, and stopping Caddy closes the store.
func TestReloadKeepsStoreOpen(t *testing.T) {
	dir := t.TempDir()
	p := startPortal(t, dir, defaultBody)
	tok := p.token(robotUser, robotPass)
	first := p.request(tok, "demo-w01", "user=keep&index_url=https://hub.example.com/").json(t)["name"]

	// Reload with a changed config: new title, bigger portal maximum.
	changed := strings.Replace(defaultBody, `"Kubernetes 101"`, `"Kubernetes 102"`, 1)
	changed = strings.Replace(changed, "maximum 10", "maximum 12", 1)
	p.load(changed)

	cat := p.do("GET", "/workshops/catalog/environments/", tok, nil, nil).json(t)
	ws := cat["environments"].([]any)[0].(map[string]any)["workshop"].(map[string]any)
	if ws["title"] != "Kubernetes 102" {
		t.Fatalf("reload did not apply: %v", ws["title"])
	}
	if got := cat["portal"].(map[string]any)["sessions"].(map[string]any)["maximum"]; got != float64(12) {
		t.Fatalf("maximum after reload: %v", got)
	}
	// Old data readable (the token and the session survived), new writes work.
	if again := p.request(tok, "demo-w01", "user=keep&index_url=https://hub.example.com/").json(t)["name"]; again != first {
		t.Fatalf("after reload the user's session is %v, want %v", again, first)
	}
	if r := p.request(tok, "demo-w01", "user=new-after-reload&index_url=https://hub.example.com/"); r.status != 200 {
		t.Fatalf("write after reload: %d %s", r.status, r.body)
	}
	if err := stopCaddy(); err != nil {
		t.Fatal(err)
	}
	// Stop closed the store: the directory opens again.
	st := openStore(t, dir)
	sessions := storedSessions(t, st)
	if _, ok := sessions[first.(string)]; !ok {
		t.Fatalf("session %v missing from the store after stop", first)
	}
}

// TestRestartKeepsData: what was written before a stop is there after a
// start: sessions, users and tokens.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	p := startPortal(t, dir, defaultBody)
	tok := p.token(robotUser, robotPass)
	r1 := p.request(tok, "demo-w01", "user=persist&index_url=https://hub.example.com/").json(t)
	if err := stopCaddy(); err != nil {
		t.Fatal(err)
	}

	p2 := startPortal(t, dir, defaultBody)
	// The bearer token issued before the restart still works.
	us := p2.do("GET", "/workshops/user/persist/sessions/", tok, nil, nil)
	if us.status != 200 {
		t.Fatalf("token after restart: %d %s", us.status, us.body)
	}
	list := us.json(t)["sessions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != r1["name"] {
		t.Fatalf("sessions after restart: %v, want %v", list, r1["name"])
	}
	// The activation link handed out before the restart still works.
	act := p2.do("GET", r1["url"].(string), "", nil, nil)
	if act.status != 302 {
		t.Fatalf("activation after restart: %d %s", act.status, act.body)
	}
	// And names keep counting: no reuse of s001.
	r2 := p2.request(tok, "demo-w01", "user=second&index_url=https://hub.example.com/").json(t)
	if r2["name"] == r1["name"] {
		t.Fatalf("session name reused after restart: %v", r2["name"])
	}
}
