package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAuthService checks the forward_auth peer admits only a cookie it
// signed, for a known session, before its expiry, so the gate scenario
// does not compare the gate with a check that lets everything through.
func TestAuthService(t *testing.T) {
	a, err := startAuthService(map[string]string{"s1": "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	now := time.Unix(1_800_000_000, 0)
	good := a.sign("s1", now.Add(time.Minute))
	if user, ok := a.verify(good, now); !ok || user != "alice" {
		t.Fatalf("verify(good) = %q, %v", user, ok)
	}
	other := &authService{key: []byte("another key"), users: a.users}
	for name, v := range map[string]string{
		"expired":         a.sign("s1", now),
		"unknown session": a.sign("s2", now.Add(time.Minute)),
		"other key":       other.sign("s1", now.Add(time.Minute)),
		"forged payload":  strings.Replace(good, "s1.", "s2.", 1),
		"forged expiry":   strings.Replace(good, ".18", ".19", 1),
		"forged mac":      strings.TrimPrefix(tamper("c="+good), "c="),
		"no mac":          good[:strings.LastIndexByte(good, '.')],
		"empty":           "",
		"not base64":      good[:strings.LastIndexByte(good, '.')] + ".!!!",
	} {
		if user, ok := a.verify(v, now); ok {
			t.Errorf("%s: %q admitted as %q", name, v, user)
		}
	}

	// Over HTTP: the user header only on success, as forward_auth copies it.
	for _, c := range []struct {
		cookie string
		status int
		user   string
	}{
		{authCookie + "=" + a.sign("s1", time.Now().Add(time.Minute)), http.StatusOK, "alice"},
		{authCookie + "=" + a.sign("s1", time.Now().Add(-time.Second)), http.StatusUnauthorized, ""},
		{"", http.StatusUnauthorized, ""},
	} {
		req := httptest.NewRequest("GET", "/auth", nil)
		if c.cookie != "" {
			req.Header.Set("Cookie", c.cookie)
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, req)
		if w.Code != c.status || w.Header().Get("X-Portal-User") != c.user {
			t.Errorf("cookie %q: %d user %q, want %d %q", c.cookie, w.Code, w.Header().Get("X-Portal-User"), c.status, c.user)
		}
	}
}
