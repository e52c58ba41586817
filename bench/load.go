package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// newClient returns an HTTP/1.1 keep-alive client that keeps up to conns
// idle connections to the portal and never follows redirects: the
// activation answer is a 302 whose cookie is the point.
func newClient(conns int) *http.Client {
	return &http.Client{
		// A bound on a hung request, not a measurement.
		Timeout: time.Minute,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     2 * time.Minute,
			// HTTP/1.1 only, like a browser talking to a plain-HTTP site.
			ForceAttemptHTTP2: false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// rest calls the portal's REST API as a front end (hub) with the robot
// account, and follows activation links as a learner's browser.
type rest struct {
	base  string
	c     *http.Client
	token string
}

// login gets an access token with the OAuth2 password grant.
func (r *rest) login(ctx context.Context) error {
	form := url.Values{"grant_type": {"password"}, "username": {robotUser}, "password": {robotPass}}
	req, err := http.NewRequestWithContext(ctx, "POST", r.base+"/oauth2/token/", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	res, err := r.c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.AccessToken == "" {
		return fmt.Errorf("token: %d %s", res.StatusCode, body)
	}
	r.token = out.AccessToken
	return nil
}

// requestSession asks for a session for user and returns its name and
// activation link.
func (r *rest) requestSession(ctx context.Context, user string) (name, link string, err error) {
	q := url.Values{"user": {user}, "index_url": {hubIndex}}
	req, err := http.NewRequestWithContext(ctx, "POST", r.base+"/workshops/environment/"+envName+"/request/?"+q.Encode(), nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	res, err := r.c.Do(req)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.Name == "" || out.URL == "" {
		return "", "", fmt.Errorf("request for %s: %d %s", user, res.StatusCode, body)
	}
	if !strings.HasPrefix(out.URL, "http") {
		out.URL = r.base + out.URL
	}
	return out.Name, out.URL, nil
}

// activate opens an activation link as a browser would and returns the
// dashboard cookie it sets ("name=value").
func (r *rest) activate(ctx context.Context, name, link string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", link, nil)
	if err != nil {
		return "", err
	}
	res, err := r.c.Do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		return "", fmt.Errorf("activation of %s: %d %s", name, res.StatusCode, body)
	}
	for _, c := range res.Cookies() {
		if c.Name == "portal-"+portalName+"-"+name {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("activation of %s set no dashboard cookie (Location %q)", name, res.Header.Get("Location"))
}

// progress returns the session's progress route's answer (state, step,
// reason, message) as text, for an error message.
func (r *rest) progress(ctx context.Context, name string) string {
	req, err := http.NewRequestWithContext(ctx, "GET", r.base+"/workshops/session/"+name+"/progress/", nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	res, err := r.c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 2000))
	return fmt.Sprintf("%d %s", res.StatusCode, strings.TrimSpace(string(body)))
}

// flowResult is one request + activate flow.
type flowResult struct {
	request, activate time.Duration
	err               error
}

// flow runs request then activate for user.
func (r *rest) flow(ctx context.Context, user string) flowResult {
	var fr flowResult
	t0 := time.Now()
	name, link, err := r.requestSession(ctx, user)
	fr.request = time.Since(t0)
	if err != nil {
		fr.err = err
		return fr
	}
	t1 := time.Now()
	_, err = r.activate(ctx, name, link)
	fr.activate = time.Since(t1)
	fr.err = err
	return fr
}

// flowStats summarises many flows.
type flowStats struct {
	n, errors         int
	firstErr          error
	request, activate []time.Duration
	total             []time.Duration
	wall              time.Duration
}

func summarise(results []flowResult, wall time.Duration) flowStats {
	s := flowStats{n: len(results), wall: wall}
	for _, r := range results {
		if r.err != nil {
			s.errors++
			if s.firstErr == nil {
				s.firstErr = r.err
			}
			continue
		}
		s.request = append(s.request, r.request)
		s.activate = append(s.activate, r.activate)
		s.total = append(s.total, r.request+r.activate)
	}
	return s
}

// add pools o's flows into s, as if one run had made them all (walls add
// up, so the rate stays flows per second of load).
func (s *flowStats) add(o flowStats) {
	s.n, s.errors, s.wall = s.n+o.n, s.errors+o.errors, s.wall+o.wall
	s.firstErr = cmp.Or(s.firstErr, o.firstErr)
	s.request = append(s.request, o.request...)
	s.activate = append(s.activate, o.activate...)
	s.total = append(s.total, o.total...)
}

// runFlows runs n flows for users prefix0..prefix(n-1) with conc clients
// in parallel (conc >= n: all at once, released together).
func runFlows(ctx context.Context, r *rest, prefix string, n, conc int) flowStats {
	results := make([]flowResult, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range next {
				results[i] = r.flow(ctx, fmt.Sprintf("%s%d", prefix, i))
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return summarise(results, time.Since(t0))
}

// pct returns the q-quantile (0..1) of ds by the nearest-rank method.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// latencies formats "p50 / p99" of ds.
func latencies(ds []time.Duration) string {
	return fmt.Sprintf("%s / %s", fmtDur(pct(ds, 0.5)), fmtDur(pct(ds, 0.99)))
}
