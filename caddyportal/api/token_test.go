package api_test

import (
	"net/url"
	"strconv"
	"testing"
	"time"
)

func TestPasswordGrant(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	pw := url.Values{"grant_type": {"password"}, "username": {robotUser}, "password": {robotPass}}
	tests := []struct {
		name         string
		v            url.Values
		basic        bool
		id, secret   string
		status       int
		err, errDesc string
	}{
		{"basic", pw, true, clientID, clientSec, 200, "", ""},
		{"form fields", merge(pw, url.Values{"client_id": {clientID}, "client_secret": {clientSec}}), false, "", "", 200, "", ""},
		{"admin", url.Values{"grant_type": {"password"}, "username": {adminUser}, "password": {adminPass}}, true, clientID, clientSec, 200, "", ""},
		{"wrong password", merge(pw, url.Values{"password": {"nope"}}), true, clientID, clientSec, 400, "invalid_grant", "Invalid credentials given."},
		{"wrong user", merge(pw, url.Values{"username": {"someone"}}), true, clientID, clientSec, 400, "invalid_grant", "Invalid credentials given."},
		{"robot password for admin", merge(pw, url.Values{"username": {adminUser}}), true, clientID, clientSec, 400, "invalid_grant", "Invalid credentials given."},
		{"empty password", merge(pw, url.Values{"password": {""}}), true, clientID, clientSec, 400, "invalid_grant", "Invalid credentials given."},
		{"wrong client secret", pw, true, clientID, "nope", 401, "invalid_client", ""},
		{"wrong client id", pw, true, "other", clientSec, 401, "invalid_client", ""},
		{"no client", pw, false, "", "", 401, "invalid_client", ""},
		{"client id without secret", merge(pw, url.Values{"client_id": {clientID}}), false, "", "", 401, "invalid_client", ""},
		{"unsupported grant", url.Values{"grant_type": {"client_credentials"}}, true, clientID, clientSec, 400, "unsupported_grant_type", ""},
		{"no grant", url.Values{}, true, clientID, clientSec, 400, "unsupported_grant_type", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.form("/oauth2/token/", tt.v, tt.basic, tt.id, tt.secret)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			m := r.json(t)
			if tt.status != 200 {
				if m["error"] != tt.err {
					t.Errorf("error %v, want %s", m["error"], tt.err)
				}
				if d, _ := m["error_description"].(string); d != tt.errDesc {
					t.Errorf("error_description %q, want %q", d, tt.errDesc)
				}
				return
			}
			wantKeys(t, "token response", r.body, "access_token", "expires_in", "token_type", "scope", "refresh_token")
			if m["expires_in"] != float64(36000) || m["token_type"] != "Bearer" || m["scope"] != "user:info" {
				t.Errorf("token response %v", m)
			}
			if a, _ := m["access_token"].(string); len(a) < 22 {
				t.Errorf("access token %q", a)
			}
		})
	}
}

func merge(a, b url.Values) url.Values {
	out := url.Values{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestTokenEndpointMethods(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, p := range []string{"/oauth2/token/", "/oauth2/revoke-token/"} {
		r := h.get(p, "")
		if r.status != 405 || r.header.Get("Allow") != "POST" {
			t.Errorf("GET %s: %d Allow %q", p, r.status, r.header.Get("Allow"))
		}
	}
}

func TestRefreshGrant(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	pw := url.Values{"grant_type": {"password"}, "username": {robotUser}, "password": {robotPass}}
	first := h.form("/oauth2/token/", pw, true, clientID, clientSec).json(t)
	refresh := first["refresh_token"].(string)

	// educates-hub: no client identification at all.
	r := h.form("/oauth2/token/", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, false, "", "")
	if r.status != 200 {
		t.Fatalf("refresh without client: %d %s", r.status, r.body)
	}
	second := r.json(t)
	wantKeys(t, "refresh response", r.body, "access_token", "expires_in", "token_type", "scope", "refresh_token")
	// Rotation: the old refresh token and its access token are dead.
	if r := h.form("/oauth2/token/", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, true, clientID, clientSec); r.status != 400 || r.json(t)["error"] != "invalid_grant" {
		t.Errorf("old refresh token: %d %s", r.status, r.body)
	}
	if r := h.get("/workshops/catalog/environments/", first["access_token"].(string)); r.status != 403 {
		t.Errorf("old access token after rotation: %d", r.status)
	}
	if r := h.get("/workshops/catalog/environments/", second["access_token"].(string)); r.status != 200 {
		t.Errorf("new access token: %d %s", r.status, r.body)
	}
	// With Basic and with form credentials.
	r = h.form("/oauth2/token/", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second["refresh_token"].(string)}}, true, clientID, clientSec)
	if r.status != 200 {
		t.Fatalf("refresh with basic: %d %s", r.status, r.body)
	}
	third := r.json(t)
	r = h.form("/oauth2/token/", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {third["refresh_token"].(string)},
		"client_id": {clientID}, "client_secret": {clientSec}}, false, "", "")
	if r.status != 200 {
		t.Fatalf("refresh with form credentials: %d %s", r.status, r.body)
	}
	fourth := r.json(t)
	// Wrong client credentials, when given, are refused and the token kept.
	r = h.form("/oauth2/token/", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fourth["refresh_token"].(string)}}, true, clientID, "wrong")
	if r.status != 401 || r.json(t)["error"] != "invalid_client" {
		t.Errorf("refresh with wrong client: %d %s", r.status, r.body)
	}
	r = h.form("/oauth2/token/", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fourth["refresh_token"].(string)}}, false, "", "")
	if r.status != 200 {
		t.Errorf("refresh after a refused attempt: %d %s", r.status, r.body)
	}
	// Garbage and missing refresh tokens.
	for _, tok := range []string{"garbage", ""} {
		r = h.form("/oauth2/token/", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}, false, "", "")
		if r.status != 400 || r.json(t)["error"] != "invalid_grant" {
			t.Errorf("refresh %q: %d %s", tok, r.status, r.body)
		}
	}
}

func TestRevoke(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	tok := h.passwordToken(robotUser, robotPass)
	if r := h.get("/workshops/catalog/environments/", tok); r.status != 200 {
		t.Fatalf("before revoke: %d", r.status)
	}
	r := h.form("/oauth2/revoke-token/", url.Values{"token": {tok}, "client_id": {clientID}, "client_secret": {clientSec}}, false, "", "")
	if r.status != 200 || len(r.body) != 0 {
		t.Fatalf("revoke: %d %q", r.status, r.body)
	}
	if r := h.get("/workshops/catalog/environments/", tok); r.status != 403 {
		t.Errorf("after revoke: %d", r.status)
	}
	// Unknown, empty and repeated tokens: 200.
	for _, v := range []url.Values{{"token": {"unknown"}}, {}, {"token": {tok}}} {
		if r := h.form("/oauth2/revoke-token/", v, true, clientID, clientSec); r.status != 200 {
			t.Errorf("revoke %v: %d %s", v, r.status, r.body)
		}
	}
	// The robot's other token is untouched.
	if r := h.get("/workshops/catalog/environments/", h.robot); r.status != 200 {
		t.Errorf("other token after revoke: %d", r.status)
	}
}

func TestBruteForceLimited(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	bad := url.Values{"grant_type": {"password"}, "username": {robotUser}, "password": {"guess"}}
	good := url.Values{"grant_type": {"password"}, "username": {robotUser}, "password": {robotPass}}
	for i := 0; i < 10; i++ {
		if r := h.form("/oauth2/token/", bad, true, clientID, clientSec); r.status != 400 {
			t.Fatalf("attempt %d: %d", i+1, r.status)
		}
	}
	// Blocked now, even with the right password.
	for _, v := range []url.Values{bad, good} {
		r := h.form("/oauth2/token/", v, true, clientID, clientSec)
		if r.status != 429 {
			t.Fatalf("after 10 failures: %d %s", r.status, r.body)
		}
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > 60 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		r.json(t)
	}
	// Wrong client secrets count too, and a window later it is open again.
	h.clk.Advance(time.Minute)
	if r := h.form("/oauth2/token/", good, true, clientID, clientSec); r.status != 200 {
		t.Fatalf("after the window: %d %s", r.status, r.body)
	}
	for i := 0; i < 10; i++ {
		h.form("/oauth2/token/", good, true, clientID, "guess")
	}
	if r := h.form("/oauth2/token/", good, true, clientID, clientSec); r.status != 429 {
		t.Errorf("after 10 bad client secrets: %d", r.status)
	}
	// Other routes are not affected.
	if r := h.get("/workshops/catalog/environments/", h.robot); r.status != 200 {
		t.Errorf("catalog while login is blocked: %d", r.status)
	}
}
