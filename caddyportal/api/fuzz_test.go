package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/api"
	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// FuzzRequestParsing drives the request route with fuzzed query strings and
// bodies. The status must never be a 5xx, except the 503s the reference
// prescribes for allocation outcomes (a reacquire-only miss is one), and the
// body must always be JSON.
func FuzzRequestParsing(f *testing.F) {
	seeds := []struct{ method, q, body string }{
		{"GET", "user=alice", ""},
		{"POST", "user=alice&index_url=https%3A%2F%2Fhub.example.com%2F", `{"parameters":[{"name":"a","value":"b"}]}`},
		{"GET", "timeout=abc", ""},
		{"GET", "email=x%40y.com&firstname=A&lastname=B", "{}"},
		{"GET", "session=demo-w01-s001&user=bob", ""},
		{"POST", "user=%zz", "{"},
		{"GET", "a=b=c&&=&index_url=//evil.com", `{"parameters":[1]}`},
		{"GET", "redirect_url=javascript:alert(1)", `[]`},
		{"POST", "user=admin", `{"parameters":null}`},
		{"GET", "timeout=0&analytics_url=http://x", `{"parameters":[{"name":"a","value":null}]}`},
	}
	for _, s := range seeds {
		f.Add(s.method == "POST", s.q, []byte(s.body))
	}

	t0 := time.Now().UTC().Truncate(time.Second)
	clk := storetest.NewClock(t0)
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	cfg := testPortal()
	cfg.Workshops[1].Capacity = intp(1) // small, so the capacity path runs too
	svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{Now: clk.Now, StopGrace: time.Nanosecond, ReconcileInterval: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	defer svc.Close()
	is := oauth.NewIssuer(sessions.WrapStore(st), 1000*time.Hour, 1000*time.Hour, clk.Now)
	pol, err := redirects.NewPolicy(cfg.Index, lmsOrigin)
	if err != nil {
		f.Fatal(err)
	}
	a := api.New(api.Options{Service: svc, Issuer: is, Redirects: pol})
	g, err := is.Issue(context.Background(), oauth.Principal{User: robotUser, Group: sessions.GroupRobot})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, post bool, rawQuery string, body []byte) {
		method := "GET"
		if post {
			method = "POST"
		}
		for _, env := range []string{"demo-w01", "demo-w02"} {
			req, err := http.NewRequest(method, "http://portal.test/workshops/environment/"+env+"/request/", strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			req.URL.RawQuery = rawQuery
			req.RemoteAddr = "127.0.0.1:1234"
			req.Header.Set("Authorization", "Bearer "+g.AccessToken)
			h := apiRoute(a, req)
			if h == nil {
				t.Fatal("request route not matched")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			res := w.Result()
			b, _ := io.ReadAll(res.Body)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s ?%q body %q: status %d, non-JSON body %q", method, rawQuery, body, res.StatusCode, b)
			}
			if res.StatusCode >= 500 {
				if e := m["error"]; res.StatusCode != 503 || e != "No session available" && e != "Cannot be reacquired" {
					t.Fatalf("%s ?%q body %q: status %d %s", method, rawQuery, body, res.StatusCode, b)
				}
			}
			if res.StatusCode == 200 {
				// Free the capacity again so later inputs reach allocation.
				name, _ := m["name"].(string)
				if _, err := svc.Terminate(context.Background(), name, ""); err != nil {
					t.Fatalf("terminate %s: %v", name, err)
				}
				clk.Advance(time.Nanosecond)
			}
		}
	})
}
