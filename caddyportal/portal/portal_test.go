package portal_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/portal"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// proxy is a gate.Proxy over the standard library: the portal runs
// without Caddy.
type proxy struct{}

func (proxy) Forward(w http.ResponseWriter, r *http.Request, upstream string) error {
	var perr error
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(&url.URL{Scheme: "http", Host: upstream})
	}}
	rp.ErrorHandler = func(_ http.ResponseWriter, _ *http.Request, err error) {
		perr = &gate.ProxyError{Status: http.StatusBadGateway, Err: err}
	}
	rp.ServeHTTP(w, r)
	return perr
}

func newPortal(t *testing.T, upstream string) (*portal.Portal, *httptest.Server) {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	capacity := 1
	cfg := config.Portal{Name: "demo", Index: "https://hub.example.com/", Robot: config.Credentials{Username: "robot@portal", Password: "robot-pass"},
		Client: config.Client{ID: "cid", Secret: "csecret"},
		Workshops: []config.Workshop{{Name: "lab", Capacity: &capacity, Upstreams: []string{upstream},
			HealthCheck: &config.HealthCheck{Disabled: true}}}}
	p, err := portal.New(context.Background(), cfg, st, portal.Deps{Proxy: proxy{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := p.Route(r); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusTeapot) // the next handler
	}))
	t.Cleanup(srv.Close)
	return p, srv
}

// TestPortalWithoutCaddy runs a whole portal behind a plain net/http
// server: a robot token, a session request, the activation link and the
// dashboard behind it; what is not the portal's goes to the next handler.
func TestPortalWithoutCaddy(t *testing.T) {
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("dashboard at " + r.URL.Path))
	}))
	t.Cleanup(dash.Close)
	_, srv := newPortal(t, strings.TrimPrefix(dash.URL, "http://"))
	c := &http.Client{Timeout: 30 * time.Second}
	c.Jar = newJar(t)

	link := requestLink(t, c, srv.URL, "alice")
	res, err := c.Get(srv.URL + link)
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = readAll(body, res)
	if res.StatusCode != 200 || body.String() != "dashboard at /" {
		t.Fatalf("activation into the dashboard: %d %q", res.StatusCode, body)
	}
	res, err = c.Get(srv.URL + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTeapot {
		t.Fatalf("a path that is not the portal's: %d, want the next handler", res.StatusCode)
	}
}

// TestNewRefusesBadConfig: a config the portal cannot run is an error,
// not a half-started portal.
func TestNewRefusesBadConfig(t *testing.T) {
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := portal.New(context.Background(), config.Portal{Name: "x"}, st, portal.Deps{Proxy: proxy{}}); err == nil {
		t.Fatal("a portal without robot, client or workshops started")
	}
	capacity := 1
	cfg := config.Portal{Name: "demo", Robot: config.Credentials{Username: "r", Password: "p"},
		Client:    config.Client{ID: "c", Secret: "s"},
		Workshops: []config.Workshop{{Name: "lab", Capacity: &capacity, Upstreams: []string{"127.0.0.1:1"}}}}
	if _, err := portal.New(context.Background(), cfg, st, portal.Deps{}); err == nil {
		t.Fatal("a portal without a dashboard proxy started")
	}
}

func readAll(b *strings.Builder, res *http.Response) (int64, error) {
	defer res.Body.Close()
	return io.Copy(b, res.Body)
}

func newJar(t *testing.T) http.CookieJar {
	j, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// requestLink gets the robot's token and requests a session of demo-w01
// for user through the REST API; it returns the activation link.
func requestLink(t *testing.T, c *http.Client, base, user string) string {
	t.Helper()
	res, err := c.PostForm(base+"/oauth2/token/", url.Values{"grant_type": {"password"},
		"username": {"robot@portal"}, "password": {"robot-pass"}, "client_id": {"cid"}, "client_secret": {"csecret"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if res.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("token: %d", res.StatusCode)
	}
	req, _ := http.NewRequest("POST", base+"/workshops/environment/demo-w01/request/?user="+url.QueryEscape(user), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if res, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	var got struct{ URL string }
	json.NewDecoder(res.Body).Decode(&got)
	res.Body.Close()
	if res.StatusCode != 200 || got.URL == "" {
		t.Fatalf("request: %d %+v", res.StatusCode, got)
	}
	return got.URL
}
