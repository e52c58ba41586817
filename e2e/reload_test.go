package e2e

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// TestReloadKeepsStoreOpen: a config reload with the same data directory
// neither fails on Badger's directory lock nor loses data, writes keep
// working, and stopping Caddy closes the store.
func TestReloadKeepsStoreOpen(t *testing.T) {
	dir := t.TempDir()
	p := startPortal(t, dir, e2etest.DefaultBody)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	first := p.Request(tok, "demo-w01", "user=keep&index_url=https://hub.example.com/").JSON(t)["name"]

	// Reload with a changed config: new title, bigger portal maximum.
	changed := strings.Replace(e2etest.DefaultBody, `"Kubernetes 101"`, `"Kubernetes 102"`, 1)
	changed = strings.Replace(changed, "maximum 10", "maximum 12", 1)
	p.Load(changed)

	cat := p.Do("GET", "/workshops/catalog/environments/", tok, nil, nil).JSON(t)
	ws := cat["environments"].([]any)[0].(map[string]any)["workshop"].(map[string]any)
	if ws["title"] != "Kubernetes 102" {
		t.Fatalf("reload did not apply: %v", ws["title"])
	}
	if got := cat["portal"].(map[string]any)["sessions"].(map[string]any)["maximum"]; got != float64(12) {
		t.Fatalf("maximum after reload: %v", got)
	}
	// Old data readable (the token and the session survived), new writes work.
	if again := p.Request(tok, "demo-w01", "user=keep&index_url=https://hub.example.com/").JSON(t)["name"]; again != first {
		t.Fatalf("after reload the user's session is %v, want %v", again, first)
	}
	if r := p.Request(tok, "demo-w01", "user=new-after-reload&index_url=https://hub.example.com/"); r.Status != 200 {
		t.Fatalf("write after reload: %d %s", r.Status, r.Body)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	// Stop closed the store: the directory opens again.
	st := e2etest.OpenStore(t, dir)
	sessions := e2etest.StoredSessions(t, st)
	if _, ok := sessions[first.(string)]; !ok {
		t.Fatalf("session %v missing from the store after stop", first)
	}
}

// TestRestartKeepsData: what was written before a stop is there after a
// start: sessions, users and tokens.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	p := startPortal(t, dir, e2etest.DefaultBody)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	r1 := p.Request(tok, "demo-w01", "user=persist&index_url=https://hub.example.com/").JSON(t)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	p2 := startPortal(t, dir, e2etest.DefaultBody)
	// The bearer token issued before the restart still works.
	us := p2.Do("GET", "/workshops/user/persist/sessions/", tok, nil, nil)
	if us.Status != 200 {
		t.Fatalf("token after restart: %d %s", us.Status, us.Body)
	}
	list := us.JSON(t)["sessions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != r1["name"] {
		t.Fatalf("sessions after restart: %v, want %v", list, r1["name"])
	}
	// The activation link handed out before the restart still works.
	act := p2.Do("GET", r1["url"].(string), "", nil, nil)
	if act.Status != 302 {
		t.Fatalf("activation after restart: %d %s", act.Status, act.Body)
	}
	// And names keep counting: no reuse of s001.
	r2 := p2.Request(tok, "demo-w01", "user=second&index_url=https://hub.example.com/").JSON(t)
	if r2["name"] == r1["name"] {
		t.Fatalf("session name reused after restart: %v", r2["name"])
	}
}
