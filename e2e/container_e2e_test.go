package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/caddyportal/caddyportal/caddyportal/spawner/container"
	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
)

// containerBody is a portal whose one workshop runs each session in a
// container of the test image (testdash), with a memory limit small
// enough for a test to exceed.
func containerBody(t *testing.T, name string, reserved int) string {
	return containerPortalHead(name, 1) + containerWorkshop(t, "lab-box", "", reserved)
}

// containerPortalHead is the portal part of a body before its workshops.
func containerPortalHead(name string, registered int) string {
	return fmt.Sprintf(`
		name %s
		storage badger {dir}
		index https://hub.example.com/
		redirects https://hub.example.com
		sessions maximum 4 registered %d
		robot robot@portal robot-pass
		client test-client test-secret
		replica %s
`, name, registered, e2eReplica)
}

// containerWorkshop is a workshop block (title "" for the default) of
// capacity 2 whose sessions run in containers of the test image.
func containerWorkshop(t *testing.T, name, title string, reserved int) string {
	if title != "" {
		title = fmt.Sprintf("title %q", title)
	}
	return fmt.Sprintf(`
		workshop %s {
			%s
			capacity 2
			reserved %d
			expires 60m
			spawner container {
				engine %s
				image %s
				port 8080
				memory 48MiB
				pids 64
				pull never
				ready /env 60s
				stop_timeout 1s
			}
		}
`, name, title, reserved, engine.Host(t), engine.Image(t))
}

// available is how many ready reserves the catalog reports for the first
// workshop.
func available(t *testing.T, p *portal, tok string) int {
	t.Helper()
	r := p.Do(http.MethodGet, "/workshops/catalog/workshops/", tok, nil, nil)
	var v struct {
		Workshops []struct {
			Environment struct {
				Available int `json:"available"`
			} `json:"environment"`
		} `json:"workshops"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil || len(v.Workshops) == 0 {
		t.Fatalf("catalog: %d %s (%v)", r.Status, r.Body, err)
	}
	return v.Workshops[0].Environment.Available
}

// TestContainerSessionLifecycle runs sessions in real containers through a
// real Caddy: a warm reserve puts the learner in the dashboard at once
// (HTTP and a WebSocket through the gate); ending the session removes its
// container; the next learner starts from a fresh container;
// a learner who exceeds the memory limit sees the session end with that
// reason.
func TestContainerSessionLifecycle(t *testing.T) {
	engine.Exclusive(t)
	cli := engine.Client(t)
	// The portal's reserve outlives it (a restart would adopt it): remove
	// what this test process made, whatever happened.
	t.Cleanup(func() { engine.Remove(t, cli, container.LabelReplica+"="+e2eReplica) })
	p := startPortal(t, t.TempDir(), containerBody(t, "demo", 1))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	count := func(label string) (int, int) { return engine.Count(t, cli, label) }

	waitFor(t, "a warm reserve", func() bool { return available(t, p, tok) == 1 })
	name, ck, loc := p.Activate(tok, "demo-w01", "alice")
	hdr := map[string]string{"Cookie": ck.Name + "=" + ck.Value}
	// The reserve was ready: the first page is the dashboard, not the
	// starting page.
	if r := p.Do(http.MethodGet, loc, "", nil, hdr); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Workshop dashboard "+name) {
		t.Fatalf("the learner's first page: %d %.300s", r.Status, r.Body)
	}
	var env map[string]string
	if r := p.Do(http.MethodGet, loc+"env", "", nil, hdr); r.Status != http.StatusOK || json.Unmarshal(r.Body, &env) != nil || env["SESSION_NAME"] != name {
		t.Fatalf("the container's environment through the gate: %d %.300s", r.Status, r.Body)
	}
	ws, _, err := dialWS(t, e2etest.NoRedirect, "ws"+strings.TrimPrefix(p.Base, "http")+loc+"ws", hdr)
	if err != nil {
		t.Fatalf("websocket through the gate: %v", err)
	}
	wantEcho(t, ws, "hello from a container")
	ws.CloseNow()
	if r := p.Do(http.MethodPut, loc+"file?name=/tmp/notes", "", strings.NewReader("alice was here"), hdr); r.Status != http.StatusOK {
		t.Fatalf("writing a file in the container: %d %s", r.Status, r.Body)
	}
	// One container, in a network of its own: on Podman a network
	// namespace (no network on the engine that other sessions' starts and
	// ends could disturb), on Docker a bridge network made for it.
	wantNets := 1
	if engine.Podman(t, cli) {
		wantNets = 0
	}
	if c, n := count(container.LabelSession + "=" + name); c != 1 || n != wantNets {
		t.Fatalf("session %s has %d containers and %d networks, want one container and %d networks", name, c, n, wantNets)
	}

	if r := p.Do(http.MethodPost, "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}
	waitFor(t, "the session to be STOPPED", func() bool {
		return p.Do(http.MethodGet, "/workshops/session/"+name+"/schedule/", tok, nil, nil).Status == http.StatusNotFound
	})
	if c, n := count(container.LabelSession + "=" + name); c+n != 0 {
		t.Fatalf("the ended session %s left %d containers and %d networks", name, c, n)
	}

	next, ck2, loc2 := p.Activate(tok, "demo-w01", "bob")
	hdr2 := map[string]string{"Cookie": ck2.Name + "=" + ck2.Value}
	waitFor(t, "bob's dashboard", func() bool {
		r := p.Do(http.MethodGet, loc2, "", nil, hdr2)
		return r.Status == http.StatusOK && strings.Contains(string(r.Body), "Workshop dashboard "+next)
	})
	if r := p.Do(http.MethodGet, loc2+"file?name=/tmp/notes", "", nil, hdr2); r.Status != http.StatusNotFound {
		t.Fatalf("the next learner (%s) sees the previous learner's file: %d %q", next, r.Status, r.Body)
	}

	// Over the memory limit the engine kills the container; the portal
	// notices, ends the session with the reason, and removes what is left.
	p.Do(http.MethodGet, loc2+"eat?mb=256", "", nil, hdr2)
	waitFor(t, "the session over its memory limit to end", func() bool {
		return p.Do(http.MethodGet, "/workshops/session/"+next+"/schedule/", tok, nil, nil).Status == http.StatusNotFound
	})
	// The learner's front end hears that the session ended (Educates'
	// notification); the progress route says why, in the engine's words.
	if r := p.Do(http.MethodGet, loc2, "", nil, hdr2); r.Status != http.StatusFound || !strings.Contains(r.Header.Get("Location"), "notification=") {
		t.Errorf("the learner's page after the memory limit: %d %s", r.Status, r.Header.Get("Location"))
	}
	pm := p.Do(http.MethodGet, "/workshops/session/"+next+"/progress/", tok, nil, nil).JSON(t)
	if pm["state"] != "STOPPED" || pm["reason"] != "environment-lost" || !strings.Contains(fmt.Sprint(pm["message"]), "memory limit") {
		t.Errorf("the session's progress after the memory limit: %v", pm)
	}
	waitFor(t, "the killed container to be removed", func() bool {
		c, n := count(container.LabelSession + "=" + next)
		return c+n == 0
	})
}

// TestContainerKillMidStart kills the portal (SIGKILL) while its containers
// start: after the restart every acknowledged session is either ready or
// ended, one container runs per live session and nothing else of the
// portal is left, and ending the live ones leaves no container or network.
func TestContainerKillMidStart(t *testing.T) {
	engine.Exclusive(t)
	cli := engine.Client(t)
	name := fmt.Sprintf("cstorm-%d", os.Getpid())
	label := container.LabelPortal + "=" + name
	t.Cleanup(func() { engine.Remove(t, cli, label) }) // only what a failed run left
	dir, port := t.TempDir(), e2etest.FreePort(t)
	body := containerBody(t, name, 0)
	c := e2etest.StartServeChild(t, dir, port, body)
	p := remote(t, c.Base, port, dir)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	var acked []string
	for _, user := range []string{"ann", "ben"} {
		r := p.Request(tok, name+"-w01", "user="+user+"&index_url=https://hub.example.com/")
		if r.Status != http.StatusOK {
			t.Fatalf("request for %s: %d %s", user, r.Status, r.Body)
		}
		acked = append(acked, r.JSON(t)["name"].(string))
	}
	waitFor(t, "a container being started", func() bool {
		n, _ := engine.Count(t, cli, label)
		return n > 0
	})
	c.Kill()
	c = e2etest.StartServeChild(t, dir, port, body)
	p = remote(t, c.Base, port, dir)

	live := 0
	for _, s := range acked {
		waitFor(t, s+" to be ready or ended", func() bool {
			m := p.Do(http.MethodGet, "/workshops/session/"+s+"/progress/", tok, nil, nil).JSON(t)
			if m["state"] == "STOPPED" {
				t.Logf("%s ended: %v", s, m)
				return true
			}
			if m["ready"] == true {
				live++
				return true
			}
			return false
		})
	}
	if n, _ := engine.Count(t, cli, label); n != live {
		t.Fatalf("%d containers of the portal run for %d live sessions", n, live)
	}
	t.Logf("after the restart %d of %d sessions are live", live, len(acked))
	for _, s := range acked {
		p.Do(http.MethodPost, "/workshops/session/"+s+"/terminate/", tok, nil, nil)
	}
	waitFor(t, "every container and network to be removed", func() bool {
		n, m := engine.Count(t, cli, label)
		return n+m == 0
	})
}

// TestContainerWorkshopsSurviveAReload: two container workshops on one
// engine list each other's containers (each reload's reconciliation used
// to remove the other's). A config reload with one session running and
// another one's start just requested keeps both: the running container is
// the same one afterwards, the starting session reaches its dashboard,
// and no other container of the portal is left. (A reload inside the
// engine's create and start, about 0.2 s here, is the sessions package's
// TestSpawnReloadKeepsAStartUnderWay.)
func TestContainerWorkshopsSurviveAReload(t *testing.T) {
	engine.Exclusive(t)
	cli := engine.Client(t)
	t.Cleanup(func() { engine.Remove(t, cli, container.LabelReplica+"="+e2eReplica) })
	body := func(title string) string {
		return containerPortalHead("demo", 2) + containerWorkshop(t, "lab-a", title, 0) + containerWorkshop(t, "lab-b", "", 0)
	}
	p := startPortal(t, t.TempDir(), body("Lab A"))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	dash := func(ck *http.Cookie, loc, name string) bool {
		r := p.Do(http.MethodGet, loc, "", nil, map[string]string{"Cookie": ck.Name + "=" + ck.Value})
		return r.Status == http.StatusOK && strings.Contains(string(r.Body), "Workshop dashboard "+name)
	}
	ids := func(name string) []string {
		list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", container.LabelSession+"="+name)})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range list.Items {
			out = append(out, c.ID)
		}
		return out
	}
	a, ckA, locA := p.Activate(tok, "demo-w01", "alice")
	waitFor(t, "alice's dashboard", func() bool { return dash(ckA, locA, a) })
	before := ids(a)
	b, ckB, locB := p.Activate(tok, "demo-w02", "bob")

	p.Load(body("Lab A, reloaded"))

	if after := ids(a); len(after) != 1 || len(before) != 1 || after[0] != before[0] {
		t.Fatalf("alice's containers: %v before the reload, %v after", before, after)
	}
	if !dash(ckA, locA, a) {
		t.Fatal("alice's dashboard does not answer after the reload")
	}
	waitFor(t, "bob's dashboard, started across the reload", func() bool {
		if pm := p.Do(http.MethodGet, "/workshops/session/"+b+"/progress/", tok, nil, nil).JSON(t); pm["state"] == "STOPPED" {
			t.Fatalf("bob's session ended across the reload: %v", pm)
		}
		return dash(ckB, locB, b)
	})
	if n, _ := engine.Count(t, cli, container.LabelPortal+"=demo"); n != 2 {
		t.Fatalf("%d containers of the portal for 2 live sessions", n)
	}
}
