package gate_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newCookies(t *testing.T, key byte) *gate.Cookies {
	t.Helper()
	s, err := tokens.NewSigner(bytes.Repeat([]byte{key}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return gate.NewCookies(s, "portal-demo-")
}

// withCookie returns a request that carries c.
func withCookie(c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	return r
}

func TestIssueAttributes(t *testing.T) {
	c := newCookies(t, 1)
	for _, secure := range []bool{false, true} {
		ck := c.Issue("demo-w01-s001", "alice", "/workshops/session/demo-w01-s001/", secure, t0)
		if ck.Name != "portal-demo-demo-w01-s001" || c.Name("demo-w01-s001") != ck.Name {
			t.Fatalf("cookie name %q", ck.Name)
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure != secure {
			t.Fatalf("cookie flags: HttpOnly=%v SameSite=%v Secure=%v (secure=%v)", ck.HttpOnly, ck.SameSite, ck.Secure, secure)
		}
		if ck.Path != "/workshops/session/demo-w01-s001/" || !ck.Expires.Equal(t0.Add(gate.CookieTTL)) {
			t.Fatalf("cookie path %q expires %v", ck.Path, ck.Expires)
		}
		if err := ck.Valid(); err != nil {
			t.Fatalf("net/http refuses the cookie: %v", err)
		}
	}
	// Fresh per issue: two cookies at different instants differ.
	a := c.Issue("s", "u", "/", false, t0)
	b := c.Issue("s", "u", "/", false, t0.Add(time.Second))
	if a.Value == b.Value {
		t.Fatal("cookies issued at different times are identical")
	}
}

func TestVerify(t *testing.T) {
	c := newCookies(t, 1)
	other := newCookies(t, 2)
	good := c.Issue("demo-w01-s001", "alice", "/", false, t0)
	otherSession := c.Issue("demo-w01-s002", "bob", "/", false, t0)
	forged := other.Issue("demo-w01-s001", "alice", "/", false, t0)
	ticket := c.IssueTicket("demo-w01-s001", "alice", "nonce", t0)

	tamper := func(v string) string {
		b := []byte(v)
		i := len(b) / 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}

	tests := []struct {
		name    string
		req     *http.Request
		session string
		now     time.Time
		user    string
		wantErr error // nil: any error accepted when user == ""
	}{
		{"valid", withCookie(good), "demo-w01-s001", t0, "alice", nil},
		{"valid just before expiry", withCookie(good), "demo-w01-s001", t0.Add(gate.CookieTTL - time.Nanosecond), "alice", nil},
		{"expired", withCookie(good), "demo-w01-s001", t0.Add(gate.CookieTTL), "", tokens.ErrExpired},
		{"no cookie", httptest.NewRequest("GET", "/", nil), "demo-w01-s001", t0, "", http.ErrNoCookie},
		{"cookie of another session under its own name", withCookie(otherSession), "demo-w01-s001", t0, "", http.ErrNoCookie},
		{"cookie of another session under this session's name",
			withCookie(&http.Cookie{Name: c.Name("demo-w01-s001"), Value: otherSession.Value}), "demo-w01-s001", t0, "", gate.ErrWrongSession},
		{"signed with another key", withCookie(forged), "demo-w01-s001", t0, "", tokens.ErrBadSignature},
		{"tampered", withCookie(&http.Cookie{Name: good.Name, Value: tamper(good.Value)}), "demo-w01-s001", t0, "", nil},
		{"truncated", withCookie(&http.Cookie{Name: good.Name, Value: good.Value[:len(good.Value)-4]}), "demo-w01-s001", t0, "", nil},
		{"empty value", withCookie(&http.Cookie{Name: good.Name, Value: ""}), "demo-w01-s001", t0, "", nil},
		{"garbage", withCookie(&http.Cookie{Name: good.Name, Value: "not-a-signed-value"}), "demo-w01-s001", t0, "", nil},
		{"a ticket is not a cookie", withCookie(&http.Cookie{Name: good.Name, Value: ticket}), "demo-w01-s001", t0, "", tokens.ErrBadSignature},
		{"quoted, among other cookies", rawCookie("a=1; " + good.Name + "=\"" + good.Value + "\"; b=2"), "demo-w01-s001", t0, "alice", nil},
		{"first of the name has bytes net/http refuses", rawCookie(good.Name + "=a\\b; " + good.Name + "=" + good.Value), "demo-w01-s001", t0, "alice", nil},
		{"session name is a prefix", withCookie(&http.Cookie{Name: c.Name("demo-w01-s00"), Value: good.Value}), "demo-w01-s00", t0, "", gate.ErrWrongSession},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := c.Verify(tt.req, tt.session, tt.now)
			if tt.user != "" {
				if err != nil || user != tt.user {
					t.Fatalf("Verify = %q, %v; want %q", user, err, tt.user)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted it as user %q", user)
			}
			if user != "" {
				t.Fatalf("Verify returned user %q with error %v", user, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// rawCookie returns a request with the Cookie line as a browser sent it.
func rawCookie(line string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", line)
	return r
}

// TestVerifyAllocatesNothing: a browser's cookie is authenticated once;
// the gate's check of every later request allocates nothing.
func TestVerifyAllocatesNothing(t *testing.T) {
	c := newCookies(t, 1)
	r := rawCookie("theme=dark; " + c.Issue("demo-w01-s001", "alice", "/", false, t0).String())
	if n := testing.AllocsPerRun(100, func() {
		if user, err := c.Verify(r, "demo-w01-s001", t0); err != nil || user != "alice" {
			t.Fatal(user, err)
		}
	}); n != 0 {
		t.Errorf("Verify allocates %v times per request", n)
	}
}

// TestVerifyUserWithNewline: a user id cannot smuggle a different session
// into the payload.
func TestVerifyUserWithNewline(t *testing.T) {
	c := newCookies(t, 1)
	ck := c.Issue("a", "u\nb", "/", false, t0)
	if _, err := c.Verify(withCookie(&http.Cookie{Name: c.Name("b"), Value: ck.Value}), "b", t0); err == nil {
		t.Fatal("cookie for session a verified for session b")
	}
	if u, err := c.Verify(withCookie(ck), "a", t0); err != nil || u != "u\nb" {
		t.Fatalf("Verify = %q, %v", u, err)
	}
}

func TestTickets(t *testing.T) {
	c := newCookies(t, 1)
	other := newCookies(t, 2)
	tk := c.IssueTicket("demo-w01-s001", "alice", "n1", t0)
	if tk2 := c.IssueTicket("demo-w01-s001", "alice", "n2", t0); tk2 == tk {
		t.Fatal("tickets with different nonces are identical")
	}
	if strings.ContainsAny(tk, "+/=&?# ") {
		t.Fatalf("ticket %q is not URL-safe", tk)
	}
	cookie := c.Issue("demo-w01-s001", "alice", "/", false, t0)

	tests := []struct {
		name    string
		ticket  string
		session string
		now     time.Time
		ok      bool
		wantErr error
	}{
		{"valid", tk, "demo-w01-s001", t0, true, nil},
		{"valid until just before TTL", tk, "demo-w01-s001", t0.Add(gate.TicketTTL - time.Nanosecond), true, nil},
		{"expired", tk, "demo-w01-s001", t0.Add(gate.TicketTTL), false, tokens.ErrExpired},
		{"other session", tk, "demo-w01-s002", t0, false, gate.ErrWrongSession},
		{"other key", other.IssueTicket("demo-w01-s001", "alice", "n1", t0), "demo-w01-s001", t0, false, tokens.ErrBadSignature},
		{"a cookie is not a ticket", cookie.Value, "demo-w01-s001", t0, false, tokens.ErrBadSignature},
		{"tampered", tk[:len(tk)-1] + map[bool]string{true: "A", false: "B"}[tk[len(tk)-1] != 'A'], "demo-w01-s001", t0, false, nil},
		{"empty", "", "demo-w01-s001", t0, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, nonce, err := c.VerifyTicket(tt.ticket, tt.session, tt.now)
			if tt.ok {
				if err != nil || user != "alice" || nonce != "n1" {
					t.Fatalf("VerifyTicket = %q, %q, %v", user, nonce, err)
				}
				return
			}
			if err == nil || user != "" || nonce != "" {
				t.Fatalf("VerifyTicket = %q, %q, %v; want refusal", user, nonce, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}
