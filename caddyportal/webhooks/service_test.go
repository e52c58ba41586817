package webhooks_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/webhooks"
)

// TestServiceEventsReachReceiverWithoutDelayingIt wires a real sessions
// service on an in-memory Badger store to a dispatcher whose receiver
// hangs: every service call returns while the receiver is blocked, and once
// it answers, the session's events arrive in commit order.
func TestServiceEventsReachReceiverWithoutDelayingIt(t *testing.T) {
	entered, cutoff, release := make(chan struct{}, 64), make(chan struct{}, 64), make(chan struct{})
	rc := newReceiver(t, hanging(entered, cutoff, release))
	// One worker, so the blocked delivery holds up every other one too.
	d := newDispatcher(t, webhooks.Options{URL: rc.URL, Portal: testPortal, Timeout: time.Hour, Workers: 1})

	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, SweepInterval: -1})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	one, none := 1, 0
	cfg := config.Portal{Name: "demo", Robot: config.Credentials{Password: "robot-pw"},
		Client: config.Client{ID: "client", Secret: "secret"},
		Workshops: []config.Workshop{{Name: "lab", Title: "Lab", Capacity: &one, Reserved: &none,
			Upstreams: []string{"dash-{session}.svc:8080"}}}}
	svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{ReconcileInterval: time.Hour,
		OnEvent: func(ev sessions.Event) { d.Send(ev, "") }})
	if err != nil {
		t.Fatalf("sessions.New: %v", err)
	}
	t.Cleanup(svc.Close)

	ctx := context.Background()
	res, err := svc.RequestSession(ctx, sessions.Request{Environment: "demo-w01", User: "alice", IndexURL: "https://hub.example.com/"})
	if err != nil {
		t.Fatalf("RequestSession: %v", err)
	}
	recv(t, entered, "the first event at the receiver")
	// The receiver now holds the first delivery until release is closed;
	// the service goes on regardless.
	if _, err := svc.Activate(ctx, res.Session.Name, res.Token); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if _, err := svc.Terminate(ctx, res.Session.Name, ""); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if got := rc.hits.Load(); got != 1 {
		t.Fatalf("receiver hits = %d, want 1 (blocked)", got)
	}
	close(release)

	want := []string{"User/Create", "Session/Created", "Session/Pending", "Session/Started", "Session/Terminate", "Session/Stopping"}
	var got []string
	for range want {
		var m struct {
			Portal map[string]any `json:"portal"`
			Event  struct {
				Name        string  `json:"name"`
				User        *string `json:"user"`
				Session     string  `json:"session"`
				Environment string  `json:"environment"`
				Workshop    string  `json:"workshop"`
			} `json:"event"`
		}
		if err := json.Unmarshal(recv(t, rc.got, "an event").body, &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Event.Name)
		if m.Event.Name != "User/Create" && (m.Event.Session != res.Session.Name || m.Event.Environment != "demo-w01" ||
			m.Event.Workshop != "lab" || m.Portal["uid"] != testPortal.UID) {
			t.Errorf("%s payload = %+v, portal %v", m.Event.Name, m.Event, m.Portal)
		}
	}
	// Events of different keys (the user, the session) may interleave;
	// the session's own events must keep commit order.
	var sessionEvents []string
	for _, n := range got {
		if n != "User/Create" {
			sessionEvents = append(sessionEvents, n)
		}
	}
	if len(got) != len(want) || !equal(sessionEvents, want[1:]) {
		t.Errorf("events = %v, want %v (session events in this order)", got, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
