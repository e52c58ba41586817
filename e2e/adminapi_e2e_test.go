package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// adminCall sends a request to Caddy's admin listener and decodes the JSON.
func adminCall(t *testing.T, addr, method, path string, want int, v any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	res, err := e2etest.NoRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("admin %s %s: %d %s, want %d", method, path, res.StatusCode, body, want)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("admin %s %s: %v in %s", method, path, err, body)
	}
}

// TestAdminAPI drives the portal's routes on Caddy's real admin listener:
// a session requested through the REST API is listed, survives a reload in
// the listing, and is terminated through the admin API.
func TestAdminAPI(t *testing.T) {
	admin := fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t))
	p := &portal{&e2etest.Portal{T: t, Dir: t.TempDir(), Admin: admin}}
	p.Start(e2etest.DefaultBody)

	robot := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	res := p.Request(robot, "demo-w01", "user=alice&index_url=https://hub.example.com/")
	if res.Status != 200 {
		t.Fatalf("request: %d %s", res.Status, res.Body)
	}
	name := res.JSON(t)["name"].(string)

	var portals struct{ Portals []string }
	adminCall(t, admin, "GET", "/portal/", 200, &portals)
	if len(portals.Portals) != 1 || portals.Portals[0] != "demo" {
		t.Fatalf("running portals %v, want [demo]", portals.Portals)
	}

	listed := func() []map[string]any {
		var list []map[string]any
		adminCall(t, admin, "GET", "/portal/demo/sessions/?user=alice", 200, &list)
		return list
	}
	if l := listed(); len(l) != 1 || l[0]["name"] != name || l[0]["state"] != "WAITING" {
		t.Fatalf("alice's sessions %v, want [%s WAITING]", l, name)
	}

	// A reload provisions a new portal before the old one goes: the
	// listing must come through it, still once.
	p.Load(strings.Replace(e2etest.DefaultBody, `title "Python"`, `title "Python 2"`, 1))
	adminCall(t, admin, "GET", "/portal/", 200, &portals)
	if len(portals.Portals) != 1 {
		t.Fatalf("running portals after reload %v, want [demo]", portals.Portals)
	}
	var envs []map[string]any
	adminCall(t, admin, "GET", "/portal/demo/environments/", 200, &envs)
	if len(envs) != 2 || envs[0]["allocated"] != 1.0 {
		t.Fatalf("environments after reload %v", envs)
	}

	var term map[string]any
	adminCall(t, admin, "POST", "/portal/demo/sessions/"+name+"/terminate/", 200, &term)
	if term["state"] != "STOPPING" {
		t.Fatalf("terminate answered %v", term)
	}
	user := p.Do("GET", "/workshops/user/alice/sessions/", robot, nil, nil)
	if user.Status != 200 || strings.Contains(string(user.Body), name) {
		t.Fatalf("REST API still lists the terminated session: %d %s", user.Status, user.Body)
	}

	var e map[string]string
	adminCall(t, admin, "GET", "/portal/other/sessions/", 404, &e)
	if !strings.Contains(e["error"], "no running portal") {
		t.Fatalf("unknown portal error %v", e)
	}
}
