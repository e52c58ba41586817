package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// authCookie is the cookie the forward_auth peer checks.
const authCookie = "bench_session"

// authService is the peer the gate scenario compares the gate with: what an
// operator would put behind Caddy's forward_auth without caddyportal. It
// admits a request whose cookie is "<session>.<expiry>.<mac>", the MAC being
// HMAC-SHA256 over "<session>.<expiry>" (expiry in Unix seconds), and answers
// with the session's user in X-Portal-User for forward_auth to copy onto the
// proxied request. Sessions are a fixed in-memory map, so the peer pays for
// a cookie check and a lookup, like the gate, and nothing more.
type authService struct {
	key   []byte
	users map[string]string // session id → user; read-only once serving
	Addr  string
	srv   *http.Server
}

// startAuthService serves the check at /auth on 127.0.0.1 for the given
// sessions (id → user), with a fresh random key.
func startAuthService(users map[string]string) (*authService, error) {
	a := &authService{key: make([]byte, 32), users: users}
	if _, err := rand.Read(a.key); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a.Addr = l.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/auth", a)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = a.srv.Serve(l) }()
	return a, nil
}

// Close stops the service.
func (a *authService) Close() { _ = a.srv.Shutdown(context.Background()) }

// mac signs one cookie payload.
func (a *authService) mac(payload string) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// sign returns the cookie value for session, valid until exp; the harness
// signs the cookie it sends, as the operator's login step would.
func (a *authService) sign(session string, exp time.Time) string {
	payload := session + "." + strconv.FormatInt(exp.Unix(), 10)
	return payload + "." + base64.RawURLEncoding.EncodeToString(a.mac(payload))
}

// verify checks a cookie value at now and returns its session's user.
func (a *authService) verify(value string, now time.Time) (string, bool) {
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return "", false
	}
	payload, sig := value[:i], value[i+1:]
	session, exp, ok := strings.Cut(payload, ".")
	if !ok {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	// hmac.Equal compares in constant time, so timing does not reveal how
	// much of a forged MAC was right.
	if err != nil || !hmac.Equal(got, a.mac(payload)) {
		return "", false
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() >= e {
		return "", false
	}
	user, ok := a.users[session]
	return user, ok
}

// ServeHTTP answers forward_auth's subrequest: 200 with the user header
// for a valid cookie, 401 otherwise (forward_auth hands that to the client).
func (a *authService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(authCookie)
	if err == nil {
		if user, ok := a.verify(c.Value, time.Now()); ok {
			w.Header().Set("X-Portal-User", user)
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	http.Error(w, "not signed in", http.StatusUnauthorized)
}

// forwardAuthSite is the Caddyfile site block of the forward_auth peer on
// port: the check, then the same reverse_proxy as the plain site.
func forwardAuthSite(port int, authAddr, upstream string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	forward_auth %s {
		uri /auth
		copy_headers X-Portal-User
	}
	reverse_proxy %s
}
`, port, authAddr, upstream)
}
