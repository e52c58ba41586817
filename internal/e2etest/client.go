package e2etest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Resp is a response read to the end.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object; anything else fails the test.
func (r Resp) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

// NoRedirect is the harness's client: it shows redirects instead of
// following them, and bounds every request so a hang fails the test.
var NoRedirect = HTTPClient(10 * time.Second)

// HTTPClient is a client that does not follow redirects, with a bound on
// every request.
func HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// DoWith sends a request with client and returns the response, or an error
// for a transport failure (unlike Portal.Do, which fails the test). A
// non-empty token is sent as a bearer token.
func DoWith(client *http.Client, method, rawURL, token string, body io.Reader, hdr map[string]string) (Resp, error) {
	req, err := newRequest(method, rawURL, token, body, hdr)
	if err != nil {
		return Resp{}, err
	}
	res, err := client.Do(req)
	if err != nil {
		return Resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return Resp{}, err
	}
	return Resp{res.StatusCode, res.Header, b}, nil
}

// newRequest is a request with a bearer token (if not empty) and the
// headers hdr.
func newRequest(method, rawURL, token string, body io.Reader, hdr map[string]string) (*http.Request, error) {
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return req, nil
}

// Do sends a request to path on the portal with NoRedirect; a transport
// failure fails the test, a body read error does not.
func (p *Portal) Do(method, path, token string, body io.Reader, hdr map[string]string) Resp {
	p.T.Helper()
	req, err := newRequest(method, p.Base+path, token, body, hdr)
	if err != nil {
		p.T.Fatal(err)
	}
	res, err := NoRedirect.Do(req)
	if err != nil {
		p.T.Fatal(err)
	}
	defer res.Body.Close()
	// A body cut short is returned as far as it came: fault tests look at
	// what a client gets from a dashboard that breaks off.
	b, _ := io.ReadAll(res.Body)
	return Resp{res.StatusCode, res.Header, b}
}

// Token gets an access token for user with the password grant.
func (p *Portal) Token(user, pass string) string {
	p.T.Helper()
	return Token(p.T, NoRedirect, p.Base, user, pass)
}

// Token gets an access token from the portal at base with the password
// grant of the test client, through client.
func Token(t testing.TB, client *http.Client, base, user, pass string) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}
	req, err := http.NewRequest(http.MethodPost, base+"/oauth2/token/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(ClientID, ClientSecret)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %v", res.StatusCode, out)
	}
	tok, _ := out["access_token"].(string)
	return tok
}

// Request asks the REST API for a session of env with the query string
// query.
func (p *Portal) Request(token, env, query string) Resp {
	p.T.Helper()
	return p.Do(http.MethodGet, "/workshops/environment/"+env+"/request/?"+query, token, nil, nil)
}

// Activate requests a session for user in env through the REST API and
// opens its activation link; it returns the session name, the dashboard
// cookie and where the activation sent the browser. The portal is named
// demo (its cookies are portal-demo-<session>).
func (p *Portal) Activate(tok, env, user string) (string, *http.Cookie, string) {
	p.T.Helper()
	r := p.Request(tok, env, url.Values{"user": {user}, "index_url": {HubOrigin + "/" + user}}.Encode())
	if r.Status != http.StatusOK {
		p.T.Fatalf("request for %s: %d %s", user, r.Status, r.Body)
	}
	m := r.JSON(p.T)
	name := m["name"].(string)
	act := p.Do(http.MethodGet, m["url"].(string), "", nil, nil)
	if act.Status != http.StatusFound {
		p.T.Fatalf("activation of %s: %d %s", name, act.Status, act.Body)
	}
	var ck *http.Cookie
	for _, c := range (&http.Response{Header: act.Header}).Cookies() {
		if c.Name == "portal-demo-"+name {
			ck = c
		}
	}
	return name, ck, act.Header.Get("Location")
}
