package spawner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestExpand(t *testing.T) {
	spec := Spec{Session: "p-w01-s001", User: "alice", Workshop: "lab", Environment: "p-w01",
		Prefix: "/workshops/session/p-w01-s001/", URL: "https://p-w01-s001.example.test/"}
	v := NewVars(spec, "127.0.0.1", 8080, "/srv/s/p-w01-s001")
	got, err := ExpandAll([]string{
		"--bind={host}:{port}", "{dir}/{session}", "{user}@{workshop}/{environment}", "{prefix}", "{url}",
		"f() { echo; }", `{"a":1}`, "{}", "{http.request.host}", "{PORT}",
	}, v)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"--bind=127.0.0.1:8080", "/srv/s/p-w01-s001/p-w01-s001", "alice@lab/p-w01", "/workshops/session/p-w01-s001/",
		"https://p-w01-s001.example.test/",
		// Not placeholders: left exactly as written.
		"f() { echo; }", `{"a":1}`, "{}", "{http.request.host}", "{PORT}",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	// A value containing a placeholder is not expanded again.
	spec.User = "{port}"
	if s, _ := Expand("{user}", NewVars(spec, "", 1, "")); s != "{port}" {
		t.Fatalf("expanded twice: %q", s)
	}
	if _, err := Expand("--port {prot}", v); err == nil || !strings.Contains(err.Error(), "{prot}") {
		t.Fatalf("unknown placeholder: %v", err)
	}
	if err := CheckTemplate("x {sessionn}"); err == nil {
		t.Fatal("CheckTemplate accepted a typo")
	}
	if err := CheckTemplate("{port} {host} {dir} {session} {user} {workshop} {environment} {prefix} {url}"); err != nil {
		t.Fatal(err)
	}
}

func TestEnvironment(t *testing.T) {
	spec := Spec{Portal: "p", Session: "p-w01-s001", User: "alice", Workshop: "lab", Environment: "p-w01",
		Prefix: "/workshops/session/p-w01-s001/", URL: "https://p-w01-s001.example.test:8443/",
		Domain: "example.test", Protocol: "https", Parameters: map[string]string{"B": "2", "A_1": "x y"}}
	env, err := Environment(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"TRAINING_PORTAL=p", "WORKSHOP_NAME=lab", "ENVIRONMENT_NAME=p-w01", "SESSION_NAME=p-w01-s001",
		"SESSION_URL=https://p-w01-s001.example.test:8443/", "SESSION_HOSTNAME=p-w01-s001.example.test",
		"INGRESS_DOMAIN=example.test", "INGRESS_PROTOCOL=https", "PORTAL_USER=alice",
		"PORTAL_PREFIX=/workshops/session/p-w01-s001/", "A_1=x y", "B=2"}
	if strings.Join(env, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q\nwant %q", env, want)
	}
	// A login client adds Educates' variables for it, after the others.
	spec.Login = &PortalClient{ID: "p-w01-s001", Secret: "s3cret", URL: "https://p-w01-s001.example.test:8443", APIURL: "http://portal.internal"}
	env, err = Environment(spec)
	if err != nil {
		t.Fatal(err)
	}
	login := []string{"PORTAL_CLIENT_ID=p-w01-s001", "PORTAL_CLIENT_SECRET=s3cret",
		"PORTAL_URL=https://p-w01-s001.example.test:8443", "PORTAL_API_URL=http://portal.internal"}
	if got := strings.Join(env[10:14], "\n"); got != strings.Join(login, "\n") {
		t.Fatalf("login variables %q, want %q", env[10:14], login)
	}
	for _, bad := range []string{"", "1A", "A-B", "A B", "SESSION_NAME", "session_name", "PATH", "LD_PRELOAD",
		"PORTAL_CLIENT_SECRET", "portal_api_url",
		"ld_library_path", "BASH_FUNC_x%%", "CADDYPORTAL_ENV", strings.Repeat("A", 129)} {
		if validParameterName(bad) == nil || ValidParameter(bad, "v") == nil {
			t.Errorf("validParameterName or ValidParameter accepted %q", bad)
		}
		spec.Parameters = map[string]string{bad: "v"}
		if _, err := Environment(spec); err == nil {
			t.Errorf("Environment accepted parameter %q", bad)
		}
	}
	spec.Parameters = map[string]string{"OK": "a\x00b"}
	if _, err := Environment(spec); err == nil {
		t.Error("Environment accepted a NUL byte")
	}
	if ValidParameter("OK", "a\x00b") == nil {
		t.Error("ValidParameter accepted a NUL byte")
	}
	// Any other value is the learner's: spaces, newlines, '=' and Unicode.
	if err := ValidParameter("OK", "a b\nc=d ü"); err != nil {
		t.Errorf("ValidParameter refused an ordinary value: %v", err)
	}
}

func TestProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		// Following it would fail: a 3xx is an answer on its own.
		http.Redirect(w, r, "http://127.0.0.1:1/", http.StatusFound)
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		// An interim answer first: the probe waits for the real one.
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	hang := make(chan struct{})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(hang)
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	for path, ok := range map[string]bool{"/ok": true, "ok": true, "/redirect": true, "/missing": false, "/broken": false, "/early": false} {
		if err := Probe(ctx, addr, path); (err == nil) != ok {
			t.Errorf("Probe %s = %v", path, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := Probe(short, addr, "/hang"); err == nil || time.Since(began) > ProbeTimeout {
		t.Fatalf("Probe of a hanging dashboard = %v after %v", err, time.Since(began))
	}
	if err := Probe(ctx, addr, "/early"); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("Probe past an interim answer = %v, want the final HTTP 503", err)
	}
	// A start given up cancels its probe: a hanging one ends at once.
	gone, giveUp := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, giveUp)
	began = time.Now()
	// Without the cancellation reaching the connection, the probe would
	// last its whole ProbeTimeout.
	if err := Probe(gone, addr, "/hang"); !errors.Is(err, context.Canceled) || time.Since(began) >= ProbeTimeout {
		t.Fatalf("Probe cancelled while the dashboard hangs = %v after %v", err, time.Since(began))
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	if err := Probe(ctx, closed, "/"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Probe of a closed port = %v", err)
	}
}

// fake is a Spawner whose Ready answers from a script, to test WaitReady.
// Past the script it answers "not yet", or with hang set it holds each
// probe until the deadline cuts it short, as a loaded machine can.
type fake struct {
	answers []error
	timeout time.Duration
	hang    bool
	// late: once the answers are used up, a probe ends with "i/o timeout"
	// when the clock reaches ctx's deadline, whether or not ctx says so
	// yet (a connection deadline firing before the context's timer).
	late bool
}

func (f *fake) Start(context.Context, Spec, func(Progress)) (Env, error) { return Env{}, nil }
func (f *fake) Ready(ctx context.Context, _ Env) error {
	if len(f.answers) == 0 && f.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if len(f.answers) == 0 && f.late {
		d, _ := ctx.Deadline()
		time.Sleep(time.Until(d))
		return errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout")
	}
	if len(f.answers) == 0 {
		return errors.New("not yet")
	}
	err := f.answers[0]
	f.answers = f.answers[1:]
	return err
}
func (f *fake) ReadyTimeout() time.Duration         { return f.timeout }
func (f *fake) Stop(context.Context, Env) error     { return nil }
func (f *fake) List(context.Context) ([]Env, error) { return nil, nil }
func (f *fake) Alive(context.Context, Env) error    { return nil }

func TestWaitReady(t *testing.T) {
	ctx := context.Background()
	var steps []string
	report := func(p Progress) { steps = append(steps, p.Step) }
	f := &fake{answers: []error{errors.New("refused"), errors.New("refused"), nil}, timeout: 10 * time.Second}
	if err := WaitReady(ctx, f, Env{}, report); err != nil || strings.Join(steps, ",") != "waiting,ready" {
		t.Fatalf("WaitReady = %v, steps %v", err, steps)
	}
	gone := &fake{answers: []error{errors.New("refused"), errors.Join(ErrGone, errors.New("exit status 1"))}, timeout: 10 * time.Second}
	began := time.Now()
	if err := WaitReady(ctx, gone, Env{}, nil); !errors.Is(err, ErrGone) || time.Since(began) > 5*time.Second {
		t.Fatalf("WaitReady of a gone environment = %v", err)
	}
	never := &fake{timeout: 100 * time.Millisecond}
	var te *TimeoutError
	if err := WaitReady(ctx, never, Env{}, nil); !errors.As(err, &te) || !strings.Contains(err.Error(), "not yet") {
		t.Fatalf("WaitReady timeout = %v", err)
	}
}

// A probe cut short by the deadline does not hide why the dashboard was
// not ready: the timeout names the last probe that got an answer.
func TestWaitReadyTimeoutKeepsLastAnswer(t *testing.T) {
	f := &fake{answers: []error{errors.New("HTTP 503")}, timeout: 100 * time.Millisecond, hang: true}
	var te *TimeoutError
	if err := WaitReady(context.Background(), f, Env{}, nil); !errors.As(err, &te) || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("WaitReady timeout after a cut-short probe = %v", err)
	}
}

// The same when the context's timer runs late: a probe that ended at the
// deadline by the clock, while ctx did not say so yet, is cut short too.
func TestWaitReadyTimeoutKeepsLastAnswerWhenTheTimerIsLate(t *testing.T) {
	ctx := newLateContext(100*time.Millisecond, 500*time.Millisecond)
	f := &fake{answers: []error{errors.New("HTTP 404")}, timeout: time.Minute, late: true}
	var te *TimeoutError
	if err := WaitReady(ctx, f, Env{}, nil); !errors.As(err, &te) || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("WaitReady timeout after a probe cut short before ctx said so = %v", err)
	}
}

// lateContext has a deadline but reports it only lag after it, as a
// context whose timer a busy machine has not run yet does.
type lateContext struct {
	deadline time.Time
	done     chan struct{}
}

func newLateContext(after, lag time.Duration) *lateContext {
	c := &lateContext{deadline: time.Now().Add(after), done: make(chan struct{})}
	time.AfterFunc(after+lag, func() { close(c.done) })
	return c
}

func (c *lateContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *lateContext) Done() <-chan struct{}       { return c.done }
func (c *lateContext) Value(any) any               { return nil }
func (c *lateContext) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// Gone's error is ErrGone for errors.Is and says only why, so the learner's
// page shows no jargon in front of it; wrapping keeps both.
func TestGone(t *testing.T) {
	err := Gone("the dashboard process exited with status 1")
	if !errors.Is(err, ErrGone) || err.Error() != "the dashboard process exited with status 1" {
		t.Fatalf("Gone = %q (is ErrGone: %v)", err, errors.Is(err, ErrGone))
	}
	if w := fmt.Errorf("checking s-1: %w", err); !errors.Is(w, ErrGone) {
		t.Fatal("a wrapped Gone is not ErrGone")
	}
	if errors.Is(errors.New("engine unreachable"), ErrGone) {
		t.Fatal("any error is ErrGone")
	}
}

// TestProbeSchedule: probes come every 5 ms while a quick dashboard is
// expected (the first 100 ms), then at doubling intervals that stop
// growing at 250 ms; over 30 s that is a few hundred probes, not thousands.
func TestProbeSchedule(t *testing.T) {
	var waits []time.Duration
	elapsed, interval := time.Duration(0), fastProbe
	for elapsed < 30*time.Second {
		waits = append(waits, interval)
		elapsed += interval
		interval = nextProbe(elapsed, interval)
	}
	for i, w := range waits {
		at := time.Duration(0)
		for _, p := range waits[:i] {
			at += p
		}
		switch {
		case at < 100*time.Millisecond && w != 5*time.Millisecond:
			t.Fatalf("probe %d at %s waits %s: want 5ms in the first 100 ms", i, at, w)
		case w > 250*time.Millisecond:
			t.Fatalf("probe %d at %s waits %s: more than 250ms", i, at, w)
		case i > 0 && at >= 100*time.Millisecond && w < waits[i-1]:
			t.Fatalf("probe %d at %s waits %s, less than the one before", i, at, w)
		}
	}
	if n := len(waits); n < 20 || n > 200 {
		t.Fatalf("%d probes in 30 s", n)
	}
	if last := waits[len(waits)-1]; last != 250*time.Millisecond {
		t.Fatalf("the wait settles at %s, want 250ms", last)
	}
}
