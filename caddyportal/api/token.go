package api

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// tokenResponse is the OAuth2 token response (reference §1.3), keys in order.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	writeJSON(w, status, body)
}

// token serves POST /oauth2/token/ (password and refresh_token grants).
func (a *API) token(w http.ResponseWriter, r *http.Request, _ string) {
	// The outcome is reported once on every exit; the grant is read from
	// the form once it is parsed.
	var grant string
	result := "server_error"
	defer func() {
		if a.opts.OnToken != nil {
			a.opts.OnToken(grant, result)
		}
	}()
	fail := func(status int, code, desc string) {
		result = code
		oauthError(w, status, code, desc)
	}
	ip := a.clientIP(r)
	if wait := a.limiter.blocked(ip); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		fail(http.StatusTooManyRequests, "slow_down", "Too many failed attempts; try again later.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", "Malformed form body.")
		return
	}
	form := r.PostForm
	grant = form.Get("grant_type")
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	clientGiven := id != "" || secret != ""
	clientOK := a.clientMatches(id, secret)
	switch grant {
	case "password":
		if !clientOK {
			a.limiter.fail(ip)
			fail(http.StatusUnauthorized, "invalid_client", "")
			return
		}
		p, ok := a.checkPassword(form.Get("username"), form.Get("password"))
		if !ok {
			a.limiter.fail(ip)
			fail(http.StatusBadRequest, "invalid_grant", "Invalid credentials given.")
			return
		}
		g, err := a.issuer.Issue(r.Context(), p)
		if err != nil {
			a.unavailable(w, err)
			return
		}
		a.limiter.succeed(ip)
		result = "ok"
		writeJSON(w, http.StatusOK, grantResponse(g))
	case "refresh_token":
		// educates-hub refreshes without client credentials (reference
		// §1.4); the refresh token is itself a secret, so accept that, but
		// wrong credentials when given are still refused.
		if clientGiven && !clientOK {
			a.limiter.fail(ip)
			fail(http.StatusUnauthorized, "invalid_client", "")
			return
		}
		g, _, err := a.issuer.Refresh(r.Context(), form.Get("refresh_token"))
		if err == oauth.ErrInvalid {
			a.limiter.fail(ip)
			fail(http.StatusBadRequest, "invalid_grant", "Invalid refresh token.")
			return
		}
		if err != nil {
			a.unavailable(w, err)
			return
		}
		result = "ok"
		writeJSON(w, http.StatusOK, grantResponse(g))
	default:
		fail(http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

func grantResponse(g oauth.Grant) tokenResponse {
	return tokenResponse{AccessToken: g.AccessToken, ExpiresIn: g.ExpiresIn, TokenType: "Bearer",
		Scope: "user:info", RefreshToken: g.RefreshToken}
}

// revoke serves POST /oauth2/revoke-token/: 200 for any token (RFC 7009).
func (a *API) revoke(w http.ResponseWriter, r *http.Request, _ string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Malformed form body.")
		return
	}
	if err := a.issuer.Revoke(r.Context(), r.PostForm.Get("token")); err != nil {
		a.unavailable(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (a *API) clientMatches(id, secret string) bool {
	// Evaluate both comparisons so timing does not reveal which failed.
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(a.cfg.Client.ID))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(a.cfg.Client.Secret))
	return idOK&secretOK == 1 && id != ""
}

// checkPassword checks the robot and admin credentials in constant time.
func (a *API) checkPassword(user, pass string) (oauth.Principal, bool) {
	type account struct {
		user, pass, group string
	}
	accounts := []account{{a.cfg.Robot.Username, a.cfg.Robot.Password, sessions.GroupRobot}}
	if a.cfg.Admin != nil {
		accounts = append(accounts, account{a.cfg.Admin.Username, a.cfg.Admin.Password, sessions.GroupStaff})
	}
	var found oauth.Principal
	ok := false
	for _, acc := range accounts {
		u := subtle.ConstantTimeCompare([]byte(user), []byte(acc.user))
		p := subtle.ConstantTimeCompare([]byte(pass), []byte(acc.pass))
		if u&p == 1 && acc.pass != "" {
			found, ok = oauth.Principal{User: acc.user, Group: acc.group}, true
		}
	}
	return found, ok
}

// loginLimiter slows down repeated failed logins from one client address:
// after loginBurst failures within loginWindow, further attempts get 429
// until the window has passed since the last failure.
type loginLimiter struct {
	mu    sync.Mutex
	now   func() time.Time
	fails map[string]*failures
}

type failures struct {
	count int
	last  time.Time
}

const (
	loginBurst  = 10
	loginWindow = time.Minute
	maxTracked  = 100000
)

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, fails: map[string]*failures{}}
}

func (l *loginLimiter) blocked(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[ip]
	if f == nil || f.count < loginBurst {
		return 0
	}
	wait := f.last.Add(loginWindow).Sub(l.now())
	if wait <= 0 {
		delete(l.fails, ip)
		return 0
	}
	return wait
}

func (l *loginLimiter) fail(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.fails[ip]
	if f == nil || now.Sub(f.last) > loginWindow {
		if len(l.fails) >= maxTracked {
			l.prune(now)
		}
		f = &failures{}
		l.fails[ip] = f
	}
	f.count++
	f.last = now
}

func (l *loginLimiter) succeed(ip string) {
	l.mu.Lock()
	delete(l.fails, ip)
	l.mu.Unlock()
}

// prune drops stale entries so a flood of addresses cannot grow the map
// without bound.
func (l *loginLimiter) prune(now time.Time) {
	for k, f := range l.fails {
		if now.Sub(f.last) > loginWindow {
			delete(l.fails, k)
		}
	}
	if len(l.fails) >= maxTracked {
		for k := range l.fails {
			delete(l.fails, k)
			if len(l.fails) < maxTracked/2 {
				break
			}
		}
	}
}
