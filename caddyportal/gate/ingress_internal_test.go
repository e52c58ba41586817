package gate

import "testing"

// A host label is an ingress host only for a listed ingress name followed
// by a name of this portal's sessions; the longest listed name wins, and
// an ingress named like the portal does not take its sessions' own hosts.
func TestHostLabel(t *testing.T) {
	g := &Gate{ingresses: []string{"app-x", "demo", "app"}, portal: "demo"}
	for label, want := range map[string][2]string{
		"demo-w01-s001":        {"demo-w01-s001", ""},
		"app-demo-w01-s001":    {"demo-w01-s001", "app"},
		"app-x-demo-w01-s001":  {"demo-w01-s001", "app-x"},
		"demo-demo-w01-s001":   {"demo-w01-s001", "demo"},
		"editor-demo-w01-s001": {"editor-demo-w01-s001", ""},
		"app-other-w01-s001":   {"app-other-w01-s001", ""},
		"app-":                 {"app-", ""},
		// Educates' older suffixed form.
		"demo-w01-s001-app":     {"demo-w01-s001", "app"},
		"demo-w01-s001-app-x":   {"demo-w01-s001", "app-x"},
		"demo-w01-s001-demo":    {"demo-w01-s001", "demo"},
		"demo-w1234-s10000-app": {"demo-w1234-s10000", "app"},
		"demo-w01-s001-editor":  {"demo-w01-s001-editor", ""},
		"demo-w01-s001-":        {"demo-w01-s001-", ""},
		"demo-wx-s001-app":      {"demo-wx-s001-app", ""},
		"demo-w01-s-app":        {"demo-w01-s-app", ""},
		"app-demo-w01-s001-app": {"app-demo-w01-s001-app", ""},
		// Only a whole session name follows an ingress prefix.
		"app-demo-w01-s001x": {"app-demo-w01-s001x", ""},
		"app-demo-w01":       {"app-demo-w01", ""},
	} {
		if name, ingress := g.hostLabel(label); name != want[0] || ingress != want[1] {
			t.Errorf("hostLabel(%q) = %q, %q; want %q, %q", label, name, ingress, want[0], want[1])
		}
	}
}
