package main

// The portal login of Educates' workshop gateway
// (workshop-images/base-environment/opt/gateway/src/backend/modules/access.ts
// and session.ts in Educates 3.7), followed request by request, so tests
// can show a stock Educates image would log its learner in through the
// portal: with PORTAL_CLIENT_ID set (and TESTDASH_NO_LOGIN not), every request without a login goes to
// /oauth_handshake, which sends the browser to PORTAL_URL/oauth2/authorize/;
// /oauth_callback exchanges the code at PORTAL_API_URL/oauth2/token/ (client
// credentials in the form body) and asks PORTAL_API_URL/workshops/session/
// <SESSION_NAME>/authorize/ who the learner is. /session/schedule and
// /session/extend relay the session's routes with the token, as the
// dashboard's countdown and Extend button do.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
)

// login is the gateway's state: handshakes under way and logged-in
// browsers, in memory (the gateway keeps them in memory too).
type login struct {
	clientID, secret, portalURL, apiURL, session, protocol string

	mu     sync.Mutex
	states map[string]string // state -> where to go after the login
	logins map[string]*identity
}

type identity struct {
	Owner, User string
	Staff       bool
	token       string
}

const loginCookie = "workshop-session-id"

func newLogin() *login {
	if os.Getenv("PORTAL_CLIENT_ID") == "" || os.Getenv("TESTDASH_NO_LOGIN") != "" {
		return nil
	}
	return &login{clientID: os.Getenv("PORTAL_CLIENT_ID"), secret: os.Getenv("PORTAL_CLIENT_SECRET"),
		portalURL: os.Getenv("PORTAL_URL"), apiURL: os.Getenv("PORTAL_API_URL"),
		session: os.Getenv("SESSION_NAME"), protocol: os.Getenv("INGRESS_PROTOCOL"),
		states: map[string]string{}, logins: map[string]*identity{}}
}

func random() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// wrap puts the login in front of next.
func (l *login) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/session/activity":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"idle-time":0,"last-view":0}`)
			return
		case "/oauth_handshake":
			l.handshake(w, r)
			return
		case "/oauth_callback":
			l.callback(w, r)
			return
		}
		id := l.identity(r)
		if id == nil {
			http.Redirect(w, r, "/oauth_handshake?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		switch r.URL.Path {
		case "/session/identity":
			_ = json.NewEncoder(w).Encode(id)
		case "/session/schedule":
			l.relay(w, id, "schedule")
		case "/session/extend":
			l.relay(w, id, "extend")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (l *login) identity(r *http.Request) *identity {
	c, err := r.Cookie(loginCookie)
	if err != nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.logins[c.Value]
}

func (l *login) callbackURL(r *http.Request) string {
	return l.protocol + "://" + r.Host + "/oauth_callback"
}

func (l *login) handshake(w http.ResponseWriter, r *http.Request) {
	state := random()
	l.mu.Lock()
	l.states[state] = r.URL.Query().Get("next")
	l.mu.Unlock()
	q := url.Values{"response_type": {"code"}, "client_id": {l.clientID}, "redirect_uri": {l.callbackURL(r)},
		"scope": {"user:info"}, "state": {state}}
	http.Redirect(w, r, l.portalURL+"/oauth2/authorize/?"+q.Encode(), http.StatusFound)
}

func (l *login) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	l.mu.Lock()
	next, ok := l.states[q.Get("state")]
	delete(l.states, q.Get("state"))
	l.mu.Unlock()
	if !ok {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {l.callbackURL(r)},
		"scope": {"user:info"}, "client_id": {l.clientID}, "client_secret": {l.secret}}
	req, _ := http.NewRequest(http.MethodPost, l.apiURL+"/oauth2/token/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var tok struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		RefreshToken string `json:"refresh_token"`
	}
	if status, err := call(req, &tok); err != nil || status != http.StatusOK || tok.AccessToken == "" {
		http.Error(w, "Authentication failed", http.StatusInternalServerError)
		return
	}
	req, _ = http.NewRequest(http.MethodGet, l.apiURL+"/workshops/session/"+l.session+"/authorize/", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	var id identity
	if status, err := call(req, &id); err != nil || status != http.StatusOK {
		http.Error(w, "Authentication failed", http.StatusInternalServerError)
		return
	}
	if id.User == "" {
		http.Error(w, "Access forbidden", http.StatusForbidden)
		return
	}
	id.token = tok.AccessToken
	sid := random()
	l.mu.Lock()
	l.logins[sid] = &id
	l.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if next == "" {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusFound)
}

// relay answers the dashboard's own /session/<what> from the portal's
// /workshops/session/<s>/<what>/, as session.ts does.
func (l *login) relay(w http.ResponseWriter, id *identity, what string) {
	req, _ := http.NewRequest(http.MethodGet, l.apiURL+"/workshops/session/"+l.session+"/"+what+"/", nil)
	req.Header.Set("Authorization", "Bearer "+id.token)
	var body json.RawMessage
	status, err := call(req, &body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func call(req *http.Request, v any) (int, error) {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode == http.StatusOK {
		err = json.Unmarshal(b, v)
	} else if raw, ok := v.(*json.RawMessage); ok {
		*raw = b
	}
	return res.StatusCode, err
}
