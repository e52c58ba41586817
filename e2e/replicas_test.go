package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
	"github.com/caddyportal/caddyportal/caddyportal/webui"
	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// replicaBody is a portal on etcd with a workshop of capacity slots (pool
// upstreams that nobody listens on: the storm only allocates) and a
// one-slot workshop whose dashboard is real.
func replicaBody(endpoint, prefix string, slots int, dashboard string) string {
	var pool []string
	for i := range slots {
		pool = append(pool, fmt.Sprintf("127.0.0.1:%d", 40000+i))
	}
	return `
		name demo
		storage etcd ` + endpoint + ` {
			prefix ` + prefix + `
		}
		index https://hub.example.com/
		redirects https://hub.example.com
		sessions registered 1 anonymous 1
		robot robot@portal robot-pass
		client test-client test-secret
		workshop storm {
			reserved 0
			upstream ` + strings.Join(pool, " ") + `
			health_check off
		}
		workshop real {
			reserved 0
			upstream ` + dashboard + `
			health_check off
		}
`
}

// replicas starts n portal processes with the same portal body and waits
// until each answers HTTP.
func replicas(t testing.TB, n int, body string) []*e2etest.Process {
	t.Helper()
	var out []*e2etest.Process
	for range n {
		dir, port := t.TempDir(), e2etest.FreePort(t)
		out = append(out, e2etest.StartProcess(t, dir, port, e2etest.ProcessCaddyfile(port, "off", dir, body)))
	}
	return out
}

// storedOn reads every session record under prefix straight from etcd.
func storedOn(t *testing.T, srv *etcdtest.Server, prefix string) map[string]sessions.Session {
	t.Helper()
	return e2etest.StoredSessions(t, etcdRecords(t, srv, prefix))
}

// etcdRecords is a client of the test's own for the records under prefix,
// closed when the test ends.
func etcdRecords(t *testing.T, srv *etcdtest.Server, prefix string) *etcdstore.Store {
	t.Helper()
	st, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: srv.Endpoints(), Prefix: prefix, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// robotToken gets a token from one replica's token endpoint.
func robotToken(t testing.TB, base string) string {
	t.Helper()
	return e2etest.Token(t, e2etest.NoRedirect, base, e2etest.RobotUser, e2etest.RobotPass)
}

// acked is a session request that got a 200.
type acked struct {
	name, link string
}

// storm sends one session request per user, spread round-robin over the
// replicas, all at once, and returns the acknowledged sessions, the number
// of "No session available" answers and anything else.
func storm(t *testing.T, bases []string, token string, users int, during func(done int)) (ok []acked, full int, other []string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var done atomic.Int64
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := bases[i%len(bases)]
			r, err := e2etest.DoWith(client, "GET", base+"/workshops/environment/demo-w01/request/?user=u"+fmt.Sprint(i)+
				"&index_url=https://hub.example.com/", token, nil, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				other = append(other, fmt.Sprintf("%s: %v", base, err))
			case r.Status == 200:
				m := r.JSON(t)
				ok = append(ok, acked{name: m["name"].(string), link: m["url"].(string)})
			case r.Status == 503 && strings.Contains(string(r.Body), "No session available"):
				full++
			default:
				other = append(other, fmt.Sprintf("%s: %d %s", base, r.Status, r.Body))
			}
			if during != nil {
				during(int(done.Add(1)))
			}
		}()
	}
	wg.Wait()
	return ok, full, other
}

// checkSlots checks the stored sessions of the storm workshop: every live
// one holds its own slot, and no more are live than there are slots.
func checkSlots(t *testing.T, stored map[string]sessions.Session, slots int) int {
	t.Helper()
	held := map[int]string{}
	for _, s := range stored {
		if s.Environment != "demo-w01" || s.State == "STOPPED" {
			continue
		}
		if other, dup := held[s.Slot]; dup {
			t.Fatalf("slot %d held by %s and %s", s.Slot, other, s.Name)
		}
		held[s.Slot] = s.Name
	}
	if len(held) > slots {
		t.Fatalf("%d live sessions for %d slots", len(held), slots)
	}
	return len(held)
}

// TestReplicasShareCapacity: three portal processes on one etcd get 1,000
// concurrent requests against capacity 100 and allocate exactly 100, with
// distinct names and slots; a session requested on one replica is
// activated on a second and its dashboard proxied by the third.
func TestReplicasShareCapacity(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	srv := etcdtest.Start(t)
	up := echo.Start(t, "shared")
	const prefix = "/replicas/"
	reps := replicas(t, 3, replicaBody(srv.Endpoints()[0], prefix, 100, up.Addr))
	bases := []string{reps[0].Base, reps[1].Base, reps[2].Base}
	token := robotToken(t, bases[0]) // tokens live in etcd: any replica accepts them

	ok, full, other := storm(t, bases, token, 1000, nil)
	if len(other) > 0 {
		t.Fatalf("%d unexpected answers, first: %s", len(other), other[0])
	}
	if len(ok) != 100 || full != 900 {
		t.Fatalf("%d sessions allocated and %d refused, want 100 and 900", len(ok), full)
	}
	names := map[string]bool{}
	for _, a := range ok {
		if names[a.name] {
			t.Fatalf("session %s handed out twice", a.name)
		}
		names[a.name] = true
	}
	stored := storedOn(t, srv, prefix)
	if n := checkSlots(t, stored, 100); n != 100 {
		t.Fatalf("%d live sessions stored, want 100", n)
	}
	for name := range names {
		if _, found := stored[name]; !found {
			t.Fatalf("acknowledged session %s is not in etcd", name)
		}
	}

	// Requested on replica 0, activated on 1, dashboard through 2.
	req := remote(t, bases[0], 0, "").Request(token, "demo-w02", "user=walker&index_url=https://hub.example.com/")
	if req.Status != 200 {
		t.Fatalf("request on replica 0: %d %s", req.Status, req.Body)
	}
	m := req.JSON(t)
	name, link := m["name"].(string), m["url"].(string)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := browser.Get(bases[1] + link)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		t.Fatalf("activation on replica 1: %d", res.StatusCode)
	}
	// The cookie was set for replica 1's origin; a browser behind a load
	// balancer sends it to whichever replica answers.
	u1, _ := url.Parse(bases[1] + "/workshops/session/" + name + "/")
	u2, _ := url.Parse(bases[2] + "/workshops/session/" + name + "/")
	jar.SetCookies(u2, jar.Cookies(u1))
	page := get(t, browser, u2.String(), nil)
	if page.Status != 200 || !strings.Contains(string(page.Body), "Workshop dashboard shared") {
		t.Fatalf("dashboard through replica 2: %d %s", page.Status, page.Body)
	}
	probe := get(t, browser, u2.String()+"probe", nil)
	var saw echo.Seen
	if err := json.Unmarshal(probe.Body, &saw); err != nil || saw.Header.Get("X-Portal-Session") != name {
		t.Fatalf("upstream saw %d %s, want X-Portal-Session %s", probe.Status, probe.Body, name)
	}
}

// TestReplicaKilledDuringStorm: one of three replicas is killed with
// SIGKILL in the middle of a storm. No acknowledged session is lost (each
// is stored and its token still activates, on a surviving replica), slots
// stay unique, and the survivors keep allocating.
func TestReplicaKilledDuringStorm(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	srv := etcdtest.Start(t)
	const prefix = "/killed/"
	const slots = 500
	reps := replicas(t, 3, replicaBody(srv.Endpoints()[0], prefix, slots, "127.0.0.1:1"))
	bases := []string{reps[0].Base, reps[1].Base, reps[2].Base}
	token := robotToken(t, bases[0])

	var killOnce sync.Once
	ok, _, other := storm(t, bases, token, 400, func(done int) {
		if done >= 150 {
			killOnce.Do(reps[1].Kill)
		}
	})
	if !reps[1].Exited() {
		t.Fatal("replica 1 was not killed during the storm")
	}
	for _, o := range other {
		if !strings.HasPrefix(o, bases[1]) {
			t.Fatalf("a surviving replica failed a request: %s", o)
		}
	}
	var survivors int
	// Survivors go on allocating after the kill.
	after := remote(t, bases[2], 0, "").Request(token, "demo-w01", "user=late&index_url=https://hub.example.com/")
	if after.Status != 200 {
		t.Fatalf("a surviving replica stopped allocating: %d %s", after.Status, after.Body)
	}

	stored := storedOn(t, srv, prefix)
	checkSlots(t, stored, slots)
	for _, a := range ok {
		if _, found := stored[a.name]; !found {
			t.Fatalf("acknowledged session %s was lost", a.name)
		}
		res := get(t, e2etest.NoRedirect, bases[0]+a.link, nil)
		if res.Status != http.StatusFound {
			t.Fatalf("token of acknowledged session %s no longer activates: %d %s", a.name, res.Status, res.Body)
		}
		survivors++
	}
	t.Logf("%d sessions acknowledged during the storm, %d requests lost with the killed replica", survivors, len(other))
}

// TestEtcdOutage: a portal whose etcd cannot be reached at start is refused
// with an error naming the endpoint; one whose etcd goes away later answers
// 503 quickly and recovers by itself when etcd is back.
func TestEtcdOutage(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	verdict, out, _ := e2etest.StartOnce(t, t.TempDir(), replicaBody("http://127.0.0.1:1", "/down/", 2, "127.0.0.1:1"))
	if !strings.HasPrefix(verdict, e2etest.ChildLoadFail) || !strings.Contains(verdict, "127.0.0.1:1") {
		t.Fatalf("start with etcd unreachable: verdict %q, want a load error naming the endpoint\n%s", verdict, out)
	}

	srv := etcdtest.Start(t)
	rep := replicas(t, 1, replicaBody(srv.Endpoints()[0], "/outage/", 10, "127.0.0.1:1"))[0]
	token := robotToken(t, rep.Base)
	p := remote(t, rep.Base, 0, "")
	if r := p.Request(token, "demo-w01", "user=before&index_url=https://hub.example.com/"); r.Status != 200 {
		t.Fatalf("before the outage: %d %s", r.Status, r.Body)
	}

	srv.Stop()
	client := e2etest.HTTPClient(30 * time.Second) // a bound on a hang, not a speed check
	r, err := e2etest.DoWith(client, "GET", rep.Base+"/workshops/environment/demo-w01/request/?user=during&index_url=https://hub.example.com/", token, nil, nil)
	if err != nil || r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "error") {
		t.Fatalf("during the outage: %v %d %s, want a 503 JSON error", err, r.Status, r.Body)
	}

	srv.Restart()
	var last resp
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if last, err = e2etest.DoWith(client, "GET", rep.Base+"/workshops/environment/demo-w01/request/?user=after&index_url=https://hub.example.com/", token, nil, nil); err == nil && last.Status == 200 {
			return
		}
	}
	t.Fatalf("the portal did not recover after etcd came back: %v %d %s", err, last.Status, last.Body)
}

// TestReplicasShareLoginLimits: password guesses spread over two replicas
// behind a load balancer count together (they keep their counts in etcd),
// so the guesser gets loginlimit.Burst in all, not that many per replica:
// after five wrong robot passwords on each, the right one is refused on
// both until the window has passed. Sign-ups from one address likewise get
// webui.SignupBurst in all.
func TestReplicasShareLoginLimits(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	srv := etcdtest.Start(t)
	up := echo.Start(t, "shared")
	reps := replicas(t, 2, replicaBody(srv.Endpoints()[0], "/limits/", 1, up.Addr)+"registration one-step\n")
	signup := func(i int) resp {
		p := remote(t, reps[i%2].Base, 0, "")
		return p.postForm(formClient(t), "", "/accounts/signup/", url.Values{"email": {fmt.Sprintf("u%d@example.com", i)},
			"first_name": {"U"}, "last_name": {fmt.Sprint(i)}, "password": {"a-password-of-u"}, "password2": {"a-password-of-u"}})
	}
	for i := range webui.SignupBurst {
		if r := signup(i); r.Status != http.StatusSeeOther {
			t.Fatalf("sign-up %d on replica %d: %d %s", i, i%2, r.Status, r.Body)
		}
	}
	for i := range 2 {
		if r := signup(webui.SignupBurst + i); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
			t.Errorf("sign-up on replica %d after %d over both: %d (Retry-After %q)", i, webui.SignupBurst, r.Status, r.Header.Get("Retry-After"))
		}
	}
	for i := range loginlimit.Burst {
		p := remote(t, reps[i%2].Base, 0, "")
		if r := p.passwordGrant("", e2etest.RobotUser, fmt.Sprint("guess-", i)); r.Status != http.StatusBadRequest {
			t.Fatalf("guess %d on replica %d: %d %s", i, i%2, r.Status, r.Body)
		}
	}
	for i, rep := range reps {
		wantLimited(t, fmt.Sprintf("the right password on replica %d after %d guesses over both", i, loginlimit.Burst),
			remote(t, rep.Base, 0, "").passwordGrant("", e2etest.RobotUser, e2etest.RobotPass))
	}
}
