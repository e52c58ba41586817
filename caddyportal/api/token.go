package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
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
	// The attempt takes its slot before anything secret is checked, so
	// concurrent guesses count; refresh grants name no account.
	account := ""
	if grant == "password" {
		account = form.Get("username")
	}
	attempt, wait := a.logins.Reserve(account, a.clientIP(r))
	if attempt == nil {
		w.Header().Set("Retry-After", loginlimit.RetryAfter(wait))
		fail(http.StatusTooManyRequests, "slow_down", "Too many failed attempts; try again later.")
		return
	}
	// Whatever is not decided below (a bad request, the store down) gives
	// the slot back.
	defer attempt.Release()
	clientGiven := id != "" || secret != ""
	clientOK := a.clientMatches(id, secret)
	switch grant {
	case "password":
		if !clientOK {
			attempt.Fail()
			fail(http.StatusUnauthorized, "invalid_client", "")
			return
		}
		p, ok := a.checkPassword(form.Get("username"), form.Get("password"))
		if !ok {
			attempt.Fail()
			fail(http.StatusBadRequest, "invalid_grant", "Invalid credentials given.")
			return
		}
		g, err := a.issuer.Issue(r.Context(), p)
		if err != nil {
			a.unavailable(w, err)
			return
		}
		attempt.Succeed()
		result = "ok"
		writeJSON(w, http.StatusOK, grantResponse(g))
	case "authorization_code":
		sess, ok := a.sessionClient(w, r, id, secret, attempt, fail)
		if !ok {
			return
		}
		code, err := a.issuer.Redeem(r.Context(), form.Get("code"), func(c oauth.CodeGrant) bool {
			return c.Session == sess.Name && c.User == sess.Owner && c.RedirectURI == form.Get("redirect_uri") &&
				oauth.VerifyPKCE(c, form.Get("code_verifier"))
		})
		if errors.Is(err, oauth.ErrInvalid) {
			attempt.Fail()
			fail(http.StatusBadRequest, "invalid_grant", "Invalid authorization code.")
			return
		}
		if err != nil {
			a.unavailable(w, err)
			return
		}
		g, err := a.issuer.Issue(r.Context(), oauth.Principal{User: code.User, Group: code.Group, Session: sess.Name})
		if err != nil {
			a.unavailable(w, err)
			return
		}
		attempt.Succeed()
		result = "ok"
		writeJSON(w, http.StatusOK, grantResponse(g))
	case "refresh_token":
		// educates-hub refreshes without client credentials (reference
		// §1.4); the refresh token is itself a secret, so accept that, but
		// wrong credentials when given are still refused. A session's
		// dashboard refreshes with its own client, and only its own tokens.
		var allow func(oauth.Principal) bool
		if clientGiven && !clientOK {
			sess, ok := a.sessionClient(w, r, id, secret, attempt, fail)
			if !ok {
				return
			}
			allow = func(p oauth.Principal) bool { return p.Session == sess.Name }
		}
		g, _, err := a.issuer.RefreshIf(r.Context(), form.Get("refresh_token"), allow)
		if err == oauth.ErrInvalid {
			attempt.Fail()
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

// sessionClient authenticates a session's own OAuth client (the client id
// is the session name), failing the attempt as invalid_client otherwise.
func (a *API) sessionClient(w http.ResponseWriter, r *http.Request, id, secret string, attempt *loginlimit.Attempt, fail func(int, string, string)) (*sessions.Session, bool) {
	sess, err := a.svc.CheckClient(r.Context(), id, secret)
	if errors.Is(err, sessions.ErrUnavailable) {
		a.unavailable(w, err)
		return nil, false
	}
	if err != nil {
		attempt.Fail()
		fail(http.StatusUnauthorized, "invalid_client", "")
		return nil, false
	}
	return sess, true
}

func grantResponse(g oauth.Grant) tokenResponse {
	return tokenResponse{AccessToken: g.AccessToken, ExpiresIn: g.ExpiresIn, TokenType: "Bearer",
		Scope: "user:info", RefreshToken: g.RefreshToken}
}

// Limits on the unauthenticated revoke endpoint per client address:
// RevokeBurst calls at once, then one every RevokeEvery. A client revokes
// a token or two when it signs out; a flood costs reads, never writes, and
// is cut off here.
const (
	RevokeBurst = 30
	RevokeEvery = time.Second
)

// revoke serves POST /oauth2/revoke-token/: 200 for any token (RFC 7009).
func (a *API) revoke(w http.ResponseWriter, r *http.Request, _ string) {
	if wait := a.revokes.Allow(a.clientIP(r)); wait > 0 {
		w.Header().Set("Retry-After", loginlimit.RetryAfter(wait))
		oauthError(w, http.StatusTooManyRequests, "slow_down", "Too many requests; try again later.")
		return
	}
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

// Credentials returns the fingerprint function that binds the robot's and
// the admin's tokens to their passwords (oauth.BindTo), as the web pages
// bind their login cookies: an HMAC keyed with key of the account's group,
// username and password in cfg, or "" for anyone who is not cfg's robot or
// admin. A token survives a config reload that keeps the account's
// username and password, and ends with either. key must stay the same
// across reloads (the glue derives it from the portal's stored secret).
func Credentials(cfg config.Portal, key []byte) func(oauth.Principal) string {
	// The accounts are fixed for a config: fingerprint them once, not on
	// every token check.
	type account struct{ user, group, fingerprint string }
	var accounts []account
	add := func(user, pass, group string) {
		if pass == "" {
			return
		}
		m := hmac.New(sha256.New, key)
		// Length-prefixed, so no two accounts hash the same input.
		for _, s := range []string{group, user, pass} {
			fmt.Fprintf(m, "%d:%s", len(s), s)
		}
		accounts = append(accounts, account{user, group, hex.EncodeToString(m.Sum(nil))})
	}
	add(cfg.Robot.Username, cfg.Robot.Password, sessions.GroupRobot)
	if cfg.Admin != nil {
		add(cfg.Admin.Username, cfg.Admin.Password, sessions.GroupStaff)
	}
	return func(p oauth.Principal) string {
		if p.Session != "" {
			// A dashboard's token is bound to its session and learner;
			// it dies with the session (its routes refuse an ended one).
			m := hmac.New(sha256.New, key)
			for _, s := range []string{"session", p.Session, p.User} {
				fmt.Fprintf(m, "%d:%s", len(s), s)
			}
			return hex.EncodeToString(m.Sum(nil))
		}
		for _, acc := range accounts {
			if p.User == acc.user && p.Group == acc.group {
				return acc.fingerprint
			}
		}
		return ""
	}
}
