package gate

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
)

// TestSessionConfigFiles: the gate serves a session's config/<type> to
// whoever presents its config password, in path mode and on the session's
// host in host mode, from the variables the portal gives the environment;
// without the password the request is any other dashboard request.
func TestSessionConfigFiles(t *testing.T) {
	seen := make(chan string, 8)
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.URL.Path
		io.WriteString(w, "dashboard")
	}))
	t.Cleanup(dash.Close)
	g, svc, name, srv := gateSetup(t, strings.TrimPrefix(dash.URL, "http://"))
	sess, err := svc.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	pw := sess.ConfigPassword
	if len(pw) < 32 {
		t.Fatalf("config password %q", pw)
	}
	rec := httptest.NewRecorder()
	if _, err := g.Activated(rec, httptest.NewRequest("GET", "/", nil), sess); err != nil {
		t.Fatal(err)
	}
	cookie := rec.Result().Cookies()[0]

	get := func(path string, c *http.Cookie) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if c != nil {
			req.AddCookie(c)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}
	base := routes.SessionPath(name) + "config/"

	status, hdr, body := get(base+"environment?token="+pw, nil)
	var env map[string]string
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(body), &env) != nil {
		t.Fatalf("environment: %d %q %s", status, hdr.Get("Content-Type"), body)
	}
	if env["SESSION_NAME"] != name || env["TRAINING_PORTAL"] != "act" || env["WORKSHOP_NAME"] != "lab" ||
		env["PORTAL_USER"] != "learner" || env["PORTAL_PREFIX"] != routes.SessionPath(name) {
		t.Errorf("environment %v", env)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("environment is cacheable: %q", hdr.Get("Cache-Control"))
	}

	status, _, body = get(base+"variables/?token="+pw, nil)
	var vars map[string]string
	if status != 200 || json.Unmarshal([]byte(body), &vars) != nil {
		t.Fatalf("variables: %d %s", status, body)
	}
	if vars["session_name"] != name || vars["training_portal"] != "act" || vars["workshop_name"] != "lab" ||
		vars["workshop_title"] != "Workshop" || vars["ssh_private_key"] != "" || len(vars) != len(configVariables)+len(configEmpty)+2 {
		t.Errorf("variables %v", vars)
	}
	if _, ok := vars["kubernetes_api_url"]; !ok {
		t.Error("variables lack the keys Educates always writes")
	}

	for _, typ := range []string{"kubeconfig", "id_rsa", "id_rsa.pub"} {
		status, hdr, _ := get(base+typ+"?token="+pw, nil)
		if status != 404 || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q", typ, status, hdr.Get("Content-Type"))
		}
	}

	// A wrong or missing password: the gate's answer to a browser that
	// does not hold the session, and the dashboard's to one that does.
	wrong := pw[:len(pw)-1] + "a"
	if wrong == pw {
		wrong = pw[:len(pw)-1] + "b"
	}
	for _, q := range []string{"?token=" + wrong, "?token=", "", "?token=" + pw + "x"} {
		if status, hdr, _ := get(base+"environment"+q, nil); status != 403 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
			t.Errorf("environment%s without a cookie: %d %q", q, status, hdr.Get("Content-Type"))
		}
	}
	if status, _, body := get(base+"environment", cookie); status != 200 || body != "dashboard" || <-seen != "/config/environment" {
		t.Errorf("without a password, with the session's cookie: %d %q", status, body)
	}
	// Another type is the dashboard's own path.
	if status, _, body := get(base+"other?token="+pw, cookie); status != 200 || body != "dashboard" || <-seen != "/config/other" {
		t.Errorf("config/other: %d %q", status, body)
	}

	// Once the session ended, its password opens nothing.
	if _, err := svc.Terminate(context.Background(), name, ""); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := get(base+"environment?token="+pw, nil); status == 200 {
		t.Errorf("ended session: %d", status)
	}
}

// TestSessionConfigFilesHostMode: in host mode the files are on the
// session's host, and the portal host's session paths other than the
// delete link are a JSON 404, not passed on.
func TestSessionConfigFilesHostMode(t *testing.T) {
	g, svc, name, _ := gateSetupWith(t, "127.0.0.1:1", Options{Domain: "sessions.test"})
	sess, err := svc.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	g.HostHandler().ServeHTTP(rec, httptest.NewRequest("GET", "http://"+name+".sessions.test/config/environment?token="+sess.ConfigPassword, nil))
	var env map[string]string
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &env) != nil || env["SESSION_NAME"] != name {
		t.Fatalf("host mode environment: %d %s", rec.Code, rec.Body)
	}
	if env["SESSION_URL"] != "" && !strings.Contains(env["SESSION_URL"], name+".sessions.test") {
		t.Errorf("SESSION_URL %q", env["SESSION_URL"])
	}
	rec = httptest.NewRecorder()
	g.HostHandler().ServeHTTP(rec, httptest.NewRequest("GET", "http://"+name+".sessions.test/config/environment?token=nope", nil))
	if rec.Code != 403 {
		t.Errorf("host mode, wrong password: %d", rec.Code)
	}

	m, ok := routes.Match(httptest.NewRequest("GET", "http://portal.test/workshops/session/"+name+"/x", nil))
	h := g.Handler(m)
	if !ok || h == nil {
		t.Fatal("host mode: a session path on the portal host is passed on")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://portal.test/workshops/session/"+name+"/x", nil))
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("host mode portal host session path: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}
