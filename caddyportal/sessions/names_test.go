package sessions_test

import (
	"fmt"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// TestNameLen reads back the names the service gives sessions (here of a
// portal whose name has a dash, in its first and eleventh workshop), and
// only those: the gate splits host names by it.
func TestNameLen(t *testing.T) {
	var ws []config.Workshop
	for i := range 11 {
		ws = append(ws, workshop(fmt.Sprintf("lab-%d", i), 2, 0))
	}
	cfg := portal(ws...)
	cfg.Name = "my-lab"
	svc, _, _ := setup(t, cfg)
	var names []string
	for _, env := range []string{"my-lab-w01", "my-lab-w11"} {
		for _, user := range []string{"u1", "u2"} {
			names = append(names, request(t, svc, env, user+env).Session.Name)
		}
	}
	if len(names) != 4 || names[3] != "my-lab-w11-s002" {
		t.Fatalf("session names %v", names)
	}
	for _, name := range names {
		for s, want := range map[string]int{
			name:             len(name),
			name + "-editor": len(name),
			name + "x":       len(name), // the caller checks what follows
			"app-" + name:    0,
		} {
			if got := sessions.NameLen("my-lab", s); got != want {
				t.Errorf("NameLen(my-lab, %q) = %d, want %d", s, got, want)
			}
		}
		if got := sessions.NameLen("my", name); got != 0 {
			t.Errorf("NameLen(my, %q) = %d, want 0", name, got)
		}
	}
	for _, s := range []string{"", "my-lab", "my-lab-w01", "my-lab-w01-s", "my-lab-wx-s001", "my-lab-w-s001", "my-lab-w01s001", "my-lab-w01-sx"} {
		if got := sessions.NameLen("my-lab", s); got != 0 {
			t.Errorf("NameLen(my-lab, %q) = %d, want 0", s, got)
		}
	}
}
