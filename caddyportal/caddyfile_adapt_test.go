package caddyportal

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

// goldenDir holds the Caddyfile adapt golden files beside the Caddyfile
// code, as Caddy keeps its own in caddytest/integration/caddyfile_adapt.
// Caddy's format: a Caddyfile, a line `----------`, then either the expected
// tab-indented JSON or, when it does not start with `{`, a substring of the
// expected error.
const goldenDir = "testdata/caddyfile_adapt"

type golden struct {
	name      string
	caddyfile string
	expected  string
}

var winNewlines = regexp.MustCompile(`\r?\n`)

func readGoldens(t *testing.T) []golden {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no golden files in %s", goldenDir)
	}
	var gs []golden
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(string(data), "----------")
		if len(parts) != 2 {
			t.Fatalf("%s: want exactly one line of ---------- separating the Caddyfile and the expectation", f)
		}
		gs = append(gs, golden{
			name: filepath.Base(f),
			// The newline matches what Caddy's own runner does for the formatter.
			caddyfile: strings.TrimSpace(parts[0]) + "\n",
			expected:  winNewlines.ReplaceAllString(strings.TrimSpace(parts[1]), "\n"),
		})
	}
	return gs
}

// TestCaddyfileAdaptToJSON is Caddy's own adapt golden runner
// (caddytest/integration/caddyfile_adapt_test.go), pointed at our testdata.
func TestCaddyfileAdaptToJSON(t *testing.T) {
	// Golden files rely on this being unset to exercise {$VAR} expansion.
	t.Setenv("CADDYPORTAL_TEST_UNSET_VARIABLE", "")
	os.Unsetenv("CADDYPORTAL_TEST_UNSET_VARIABLE")

	for _, g := range readGoldens(t) {
		t.Run(g.name, func(t *testing.T) {
			if strings.HasPrefix(g.expected, "{") {
				if !caddytest.CompareAdapt(t, g.name, g.caddyfile, "caddyfile", g.expected) {
					t.Errorf("failed to adapt %s", g.name)
				}
				return
			}
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(g.caddyfile), nil)
			if err == nil {
				t.Fatalf("expected an error containing %q, got none", g.expected)
			}
			if got := winNewlines.ReplaceAllString(err.Error(), "\n"); !strings.Contains(got, g.expected) {
				t.Errorf("expected error to contain:\n%s\nbut got:\n%s", g.expected, got)
			}
		})
	}
}

// portalHandlers adapts a Caddyfile and returns the JSON of every portal
// handler in it, without the "handler" module key.
func portalHandlers(t *testing.T, caddyfile string) []json.RawMessage {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	var tree any
	if err := json.Unmarshal(out, &tree); err != nil {
		t.Fatal(err)
	}
	var found []json.RawMessage
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "portal" {
				delete(v, "handler")
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				found = append(found, b)
				return
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(tree)
	return found
}

// decodeHandler decodes handler JSON the way Caddy loads a module: strictly,
// so a field the parser writes but the struct does not know fails here.
func decodeHandler(t *testing.T, raw json.RawMessage) *Handler {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	h := new(Handler)
	if err := dec.Decode(h); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return h
}

// TestAdaptedJSONDecodes checks that the JSON of every valid golden file
// decodes back into a Handler, passes Validate, and encodes to the same JSON.
func TestAdaptedJSONDecodes(t *testing.T) {
	for _, g := range readGoldens(t) {
		if !strings.HasPrefix(g.expected, "{") {
			continue
		}
		t.Run(g.name, func(t *testing.T) {
			raws := portalHandlers(t, g.caddyfile)
			if len(raws) != 1 {
				t.Fatalf("want one portal handler, got %d", len(raws))
			}
			h := decodeHandler(t, raws[0])
			if err := h.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			again, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			_ = json.Unmarshal(raws[0], &a)
			_ = json.Unmarshal(again, &b)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("JSON does not survive a decode/encode round trip:\nadapted: %s\nagain:   %s", raws[0], again)
			}
		})
	}
}

// TestCaddyfileExample checks that Caddyfile.example adapts, that its portal
// is valid and matches example.caddyfiletest, and that every dashboard
// address it names is served by the example itself on the loopback interface.
func TestCaddyfileExample(t *testing.T) {
	data, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	raws := portalHandlers(t, string(data))
	if len(raws) != 1 {
		t.Fatalf("want one portal handler in Caddyfile.example, got %d", len(raws))
	}
	h := decodeHandler(t, raws[0])
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	// The golden copy of the portal site must not drift from the example.
	var copyOf golden
	for _, g := range readGoldens(t) {
		if g.name == "example.caddyfiletest" {
			copyOf = g
		}
	}
	if copyOf.name == "" {
		t.Fatal(goldenDir + "/example.caddyfiletest is missing")
	}
	fromCopy := portalHandlers(t, copyOf.caddyfile)
	if len(fromCopy) != 1 || !bytes.Equal(fromCopy[0], raws[0]) {
		t.Errorf(goldenDir+"/example.caddyfiletest is out of step with Caddyfile.example:\nexample: %s\ngolden:  %s", raws[0], fromCopy)
	}

	envs := h.Environments()
	var names []string
	for _, e := range envs {
		names = append(names, e.Name+"="+e.Workshop.Name)
		if !e.Workshop.Spawned() && e.Capacity != len(e.Workshop.Upstreams) || e.Capacity == 0 {
			t.Errorf("%s: capacity %d, pool of %d", e.Name, e.Capacity, len(e.Workshop.Upstreams))
		}
		if e.Expires == 0 || e.Overtime == 0 || e.Deadline < e.Expires || e.Orphaned == 0 {
			t.Errorf("%s: expires/overtime/deadline/orphaned not set sensibly: %+v", e.Name, e)
		}
	}
	if want := "demo-w01=lab-k8s demo-w02=lab-python demo-w03=lab-files"; strings.Join(names, " ") != want {
		t.Errorf("environments %q, want %q", strings.Join(names, " "), want)
	}

	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	listening := map[string]bool{}
	for _, s := range cfg.Apps.HTTP.Servers {
		for _, l := range s.Listen {
			if !strings.HasPrefix(l, "127.0.0.1:") {
				t.Errorf("Caddyfile.example listens on %q; the demo must bind to 127.0.0.1 only", l)
			}
			listening[l] = true
		}
	}
	for _, w := range h.Workshops {
		for _, u := range w.Upstreams {
			if !listening[u] {
				t.Errorf("workshop %s: upstream %s is not served by Caddyfile.example", w.Name, u)
			}
		}
	}
	if h.Robot.Password == "" || h.Client.Secret == "" || h.Admin == nil {
		t.Error("the example should carry demo robot, client and admin credentials")
	}
	if h.URL == "" || h.Index == "" {
		t.Error("the example should set url and index")
	}
	if h.Dashboards.Mode != config.DashboardsPath {
		t.Errorf("dashboards %q, want path", h.Dashboards.Mode)
	}
}
