package e2e

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// TestStaffAccess: from a learner's session page the admin opens the
// learner's dashboard through the gate, which the dashboard sees as the
// admin; the session's timeline records who, from where and until when;
// the learner keeps their access; nobody else can open it; the admin's
// access ends with the grant.
func TestStaffAccess(t *testing.T) {
	up := echo.Start(t, "staffed")
	p := startPortal(t, t.TempDir(), gateBody("admin admin admin-pass\n\t\tstaff_access 2s", up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, loc := p.Activate(tok, "demo-w01", "alice")

	admin := formClient(t)
	if r := p.postForm(admin, "192.0.2.9", "/accounts/login/", url.Values{"username": {"admin"}, "password": {"admin-pass"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("admin login: %d", r.Status)
	}
	open := func(c *http.Client) resp {
		page, err := e2etest.DoWith(c, "GET", p.Base+"/admin/sessions/"+name+"/", "", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		csrf := ""
		if m := csrfField.FindSubmatch(page.Body); m != nil {
			csrf = html.UnescapeString(string(m[1]))
		}
		r, err := e2etest.DoWith(c, "POST", p.Base+"/admin/sessions/"+name+"/open/", "", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": p.Base, "X-Forwarded-For": "192.0.2.9"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := open(admin)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != loc {
		t.Fatalf("open: %d to %q, want the dashboard %s", r.Status, r.Header.Get("Location"), loc)
	}
	var staffCookie *http.Cookie
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == ck.Name {
			staffCookie = c
		}
	}
	if staffCookie == nil {
		t.Fatalf("no dashboard cookie for the admin: %q", r.Header.Values("Set-Cookie"))
	}
	who := func(c *http.Cookie) (int, string) {
		r := p.Do(http.MethodGet, loc+"who", "", nil, map[string]string{"Cookie": c.Name + "=" + c.Value})
		var seen echo.Seen
		_ = json.Unmarshal(r.Body, &seen)
		return r.Status, seen.Header.Get("X-Portal-User")
	}
	if status, user := who(staffCookie); status != http.StatusOK || user != "admin" {
		t.Fatalf("the admin in the dashboard: %d as %q", status, user)
	}
	if status, user := who(ck); status != http.StatusOK || user != "alice" {
		t.Fatalf("the learner beside the admin: %d as %q", status, user)
	}
	page, _ := e2etest.DoWith(admin, "GET", p.Base+"/admin/sessions/"+name+"/", "", nil, nil)
	if !strings.Contains(string(page.Body), "Staff access: admin from 127.0.0.1 until") {
		t.Errorf("the session's timeline does not record the access:\n%s", page.Body)
	}

	// A learner of the portal is not staff.
	learner := formClient(t)
	p.postForm(learner, "192.0.2.10", "/accounts/signup/", url.Values{"email": {"eve@example.com"}, "first_name": {"Eve"},
		"password": {"eve-password-1"}, "password2": {"eve-password-1"}})
	p.postForm(learner, "192.0.2.10", "/accounts/login/", url.Values{"username": {"eve@example.com"}, "password": {"eve-password-1"}})
	if r := open(learner); r.Status == http.StatusSeeOther {
		t.Fatalf("a learner opened another learner's dashboard: to %q", r.Header.Get("Location"))
	}

	// The grant ends; the learner's own access does not.
	time.Sleep(2100 * time.Millisecond)
	if status, _ := who(staffCookie); status != http.StatusForbidden {
		t.Errorf("the admin after the grant ended: %d, want 403", status)
	}
	if status, _ := who(ck); status != http.StatusOK {
		t.Errorf("the learner after the admin's grant ended: %d", status)
	}
}
