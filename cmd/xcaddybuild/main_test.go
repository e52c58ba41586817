package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/xcaddy"
	"github.com/google/shlex"
)

// The repository root and its files, relative to this package's directory
// (go test runs tests in the package directory).
var (
	repoRoot     = filepath.Join("..", "..")
	goModPath    = filepath.Join(repoRoot, "go.mod")
	manifestPath = filepath.Join(repoRoot, "xcaddy.json")
)

const (
	caddyModule = "github.com/caddyserver/caddy/v2"
	zeroVersion = "v0.0.0-00010101000000-000000000000"
)

// goModInfo is what the tests need from go.mod.
type goModInfo struct {
	module   string
	requires map[string]string
}

// parseGoMod reads the module path and the require directives (single-line
// and block form) of a go.mod file. A line parser is enough for the files
// the go command writes, and it avoids a dependency on golang.org/x/mod.
func parseGoMod(data []byte) (goModInfo, error) {
	info := goModInfo{requires: map[string]string{}}
	inRequire := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case inRequire && f[0] == ")":
			inRequire = false
		case inRequire:
			if len(f) != 2 {
				return goModInfo{}, fmt.Errorf("go.mod:%d: malformed require line", n)
			}
			info.requires[f[0]] = f[1]
		case f[0] == "module" && len(f) == 2:
			info.module = strings.Trim(f[1], `"`)
		case f[0] == "require" && len(f) == 2 && f[1] == "(":
			inRequire = true
		case f[0] == "require" && len(f) == 3:
			info.requires[f[1]] = f[2]
		}
	}
	if err := sc.Err(); err != nil {
		return goModInfo{}, err
	}
	if info.module == "" {
		return goModInfo{}, fmt.Errorf("go.mod has no module directive")
	}
	return info, nil
}

func readGoMod(t *testing.T) goModInfo {
	t.Helper()
	data, err := os.ReadFile(goModPath)
	if err != nil {
		t.Fatal(err)
	}
	info, err := parseGoMod(data)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// checkCaddyVersion reports whether the manifest builds the Caddy version
// that go.mod requires, so `go build ./cmd/caddyportal` and an xcaddy build
// from the manifest give the same Caddy.
func checkCaddyVersion(b xcaddy.Builder, mod goModInfo) error {
	want, ok := mod.requires[caddyModule]
	if !ok {
		return fmt.Errorf("go.mod does not require %s", caddyModule)
	}
	if b.CaddyVersion != want {
		return fmt.Errorf("xcaddy.json caddy_version is %q but go.mod requires %s %s", b.CaddyVersion, caddyModule, want)
	}
	return nil
}

func TestManifestCaddyVersionMatchesGoMod(t *testing.T) {
	b, err := loadManifest(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCaddyVersion(b, readGoMod(t)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckCaddyVersion(t *testing.T) {
	mod := func(req map[string]string) goModInfo { return goModInfo{module: "example.com/x", requires: req} }
	tests := []struct {
		name    string
		version string
		mod     goModInfo
		wantErr string
	}{
		{"equal", "v2.11.9", mod(map[string]string{caddyModule: "v2.11.9"}), ""},
		{"manifest older", "v2.11.8", mod(map[string]string{caddyModule: "v2.11.9"}), `caddy_version is "v2.11.8"`},
		{"manifest newer", "v2.12.0", mod(map[string]string{caddyModule: "v2.11.9"}), `caddy_version is "v2.12.0"`},
		{"go.mod without caddy", "v2.11.9", mod(map[string]string{}), "does not require"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCaddyVersion(xcaddy.Builder{CaddyVersion: tt.version}, tt.mod)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseGoMod(t *testing.T) {
	data := []byte(`module github.com/example/plugin // the plugin

go 1.26.0

require github.com/single/line v1.2.3

require (
	github.com/caddyserver/caddy/v2 v2.11.9
	go.uber.org/zap v1.28.0 // indirect
)

replace github.com/caddyserver/caddy/v2 => ../caddy
`)
	got, err := parseGoMod(data)
	if err != nil {
		t.Fatal(err)
	}
	want := goModInfo{
		module: "github.com/example/plugin",
		requires: map[string]string{
			"github.com/single/line": "v1.2.3",
			caddyModule:              "v2.11.9",
			"go.uber.org/zap":        "v1.28.0",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseGoMod = %+v, want %+v", got, want)
	}
	if _, err := parseGoMod([]byte("go 1.26.0\n")); err == nil {
		t.Fatal("parseGoMod accepted a go.mod without a module directive")
	}
}

// TestManifest checks the project's xcaddy.json: strict decoding, the
// plugin is this module, its replacement is this checkout, and the build
// flags are xcaddy's defaults (setting build_flags replaces them, so they
// must be spelled out in full).
func TestManifest(t *testing.T) {
	mod := readGoMod(t)
	b, err := loadManifest(manifestPath)
	if err != nil {
		t.Fatal(err)
	}

	var plugin bool
	for _, p := range b.Plugins {
		if p.PackagePath == mod.module {
			plugin = true
			// The manifest names no version; the local replacement is
			// what gets built, so the zero pseudo-version is filled in.
			if p.Version != zeroVersion {
				t.Errorf("plugin %s has version %q, want %q from its local replacement", p.PackagePath, p.Version, zeroVersion)
			}
		}
	}
	if !plugin {
		t.Errorf("manifest plugins %+v do not include the module %s", b.Plugins, mod.module)
	}

	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var replaced bool
	for _, r := range b.Replacements {
		if string(r.Old) != mod.module {
			continue
		}
		replaced = true
		if string(r.New) != root {
			t.Errorf("replacement for %s resolves to %s, want the repository root %s", mod.module, r.New, root)
		}
	}
	if !replaced {
		t.Errorf("manifest has no replacement for %s", mod.module)
	}

	// xcaddy splits build_flags with shlex; compare what `go build` gets.
	got, err := shlex.Split(b.BuildFlags)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-ldflags", "-w -s", "-trimpath", "-tags", "nobadger,nomysql,nopgx"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("build_flags %q split into %q, want %q", b.BuildFlags, got, want)
	}
}

func TestDecodeManifest(t *testing.T) {
	base := t.TempDir()
	// A module directory next to the manifest, and one that is not a module.
	for _, d := range []string{"plugin", "notmodule"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "plugin", "go.mod"), []byte("module example.com/plugin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "go.mod"), []byte("module example.com/root\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		manifest string
		wantErr  string
		check    func(t *testing.T, b xcaddy.Builder)
	}{
		{
			name: "relative replacements become absolute",
			manifest: `{"caddy_version":"v2.11.9",
				"plugins":[{"module_path":"example.com/plugin"},{"module_path":"example.com/root"}],
				"replacements":[
					{"old":"example.com/plugin","new":"./plugin"},
					{"old":"example.com/root","new":"."},
					{"old":"example.com/other","new":"example.com/fork v1.0.0"}
				],
				"timeout_build":60000000000}`,
			check: func(t *testing.T, b xcaddy.Builder) {
				want := []xcaddy.Replace{
					xcaddy.NewReplace("example.com/plugin", filepath.Join(base, "plugin")),
					xcaddy.NewReplace("example.com/root", base),
					xcaddy.NewReplace("example.com/other", "example.com/fork v1.0.0"),
				}
				if !reflect.DeepEqual(b.Replacements, want) {
					t.Errorf("replacements = %+v, want %+v", b.Replacements, want)
				}
				if b.TimeoutBuild != time.Minute {
					t.Errorf("timeout_build = %v, want 1m", b.TimeoutBuild)
				}
				want2 := []xcaddy.Dependency{
					{PackagePath: "example.com/plugin", Version: zeroVersion},
					{PackagePath: "example.com/root", Version: zeroVersion},
				}
				if !reflect.DeepEqual(b.Plugins, want2) {
					t.Errorf("plugins = %+v, want %+v", b.Plugins, want2)
				}
			},
		},
		{
			name: "only unversioned plugins with a directory replacement are pinned",
			manifest: `{"caddy_version":"v2.11.9",
				"plugins":[
					{"module_path":"example.com/plugin/v3"},
					{"module_path":"example.com/tagged","version":"v1.2.3"},
					{"module_path":"example.com/remote"},
					{"module_path":"example.com/versioned"},
					{"module_path":"example.com/other"}
				],
				"replacements":[
					{"old":"example.com/plugin/v3","new":"./plugin"},
					{"old":"example.com/tagged","new":"./plugin"},
					{"old":"example.com/remote","new":"example.com/fork v1.0.0"},
					{"old":"example.com/versioned v1.0.0","new":"./plugin"}
				]}`,
			check: func(t *testing.T, b xcaddy.Builder) {
				want := []xcaddy.Dependency{
					{PackagePath: "example.com/plugin/v3", Version: "v3.0.0-00010101000000-000000000000"},
					{PackagePath: "example.com/tagged", Version: "v1.2.3"},
					{PackagePath: "example.com/remote"},
					{PackagePath: "example.com/versioned"},
					{PackagePath: "example.com/other"},
				}
				if !reflect.DeepEqual(b.Plugins, want) {
					t.Errorf("plugins = %+v, want %+v", b.Plugins, want)
				}
			},
		},
		{
			name:     "absolute replacement kept",
			manifest: fmt.Sprintf(`{"caddy_version":"v2.11.9","replacements":[{"old":"example.com/plugin","new":%q}]}`, filepath.Join(base, "plugin")),
			check: func(t *testing.T, b xcaddy.Builder) {
				if got := string(b.Replacements[0].New); got != filepath.Join(base, "plugin") {
					t.Errorf("replacement = %s", got)
				}
			},
		},
		{
			name:     "unknown top-level field",
			manifest: `{"caddy_version":"v2.11.9","caddy_verison":"v2.11.8"}`,
			wantErr:  `unknown field "caddy_verison"`,
		},
		{
			name:     "unknown nested field",
			manifest: `{"caddy_version":"v2.11.9","plugins":[{"module":"example.com/plugin"}]}`,
			wantErr:  `unknown field "module"`,
		},
		{
			name:     "syntax error names the line",
			manifest: "{\n\t\"caddy_version\": \"v2.11.9\",\n\t\"plugins\": [,]\n}",
			wantErr:  "invalid JSON at line 3",
		},
		{
			name:     "wrong type",
			manifest: `{"caddy_version":2}`,
			wantErr:  "invalid manifest at line 1",
		},
		{
			name:     "empty",
			manifest: "",
			wantErr:  "the manifest is empty",
		},
		{
			name:     "truncated",
			manifest: `{"caddy_version":"v2.11.9"`,
			wantErr:  "unexpected end of the manifest",
		},
		{
			name:     "trailing data",
			manifest: `{"caddy_version":"v2.11.9"} {"caddy_version":"v2.11.8"}`,
			wantErr:  "unexpected data after the manifest object",
		},
		{
			name:     "trailing garbage",
			manifest: `{"caddy_version":"v2.11.9"}x`,
			wantErr:  "unexpected data after the manifest object",
		},
		{
			name:     "missing caddy_version",
			manifest: `{"plugins":[{"module_path":"example.com/plugin"}]}`,
			wantErr:  "caddy_version is required",
		},
		{
			name:     "plugin without module_path",
			manifest: `{"caddy_version":"v2.11.9","plugins":[{"version":"v1.0.0"}]}`,
			wantErr:  "plugins[0]: module_path is required",
		},
		{
			name:     "replacement without new",
			manifest: `{"caddy_version":"v2.11.9","replacements":[{"old":"example.com/plugin"}]}`,
			wantErr:  "replacements[0]: both old and new are required",
		},
		{
			name:     "replacement directory without go.mod",
			manifest: `{"caddy_version":"v2.11.9","replacements":[{"old":"example.com/plugin","new":"./notmodule"}]}`,
			wantErr:  "has no go.mod",
		},
		{
			name:     "replacement directory missing",
			manifest: `{"caddy_version":"v2.11.9","replacements":[{"old":"example.com/plugin","new":"../nowhere"}]}`,
			wantErr:  "has no go.mod",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := decodeManifest(strings.NewReader(tt.manifest), base)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tt.check(t, b)
		})
	}
}

func TestLoadManifestErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	if _, err := loadManifest(missing); err == nil || !strings.Contains(err.Error(), "reading manifest") || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing manifest: error = %v, want one saying it cannot read %s", err, missing)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"caddy_version": "v2.11.9", "bogus": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadManifest(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), `unknown field "bogus"`) {
		t.Errorf("bad manifest: error = %v, want one naming %s and the field", err, bad)
	}
}

func TestApplyDefaults(t *testing.T) {
	t.Setenv("CGO_ENABLED", "1")
	b := xcaddy.Builder{}
	applyDefaults(&b)
	if b.TimeoutBuild != defaultTimeoutBuild {
		t.Errorf("TimeoutBuild = %v, want %v", b.TimeoutBuild, defaultTimeoutBuild)
	}
	if !b.Cgo {
		t.Error("Cgo not taken from CGO_ENABLED=1")
	}
	if b.TimeoutGet != 0 {
		t.Errorf("TimeoutGet = %v, want 0 (see applyDefaults)", b.TimeoutGet)
	}

	t.Setenv("CGO_ENABLED", "0")
	b = xcaddy.Builder{TimeoutBuild: time.Minute}
	applyDefaults(&b)
	if b.TimeoutBuild != time.Minute {
		t.Errorf("TimeoutBuild = %v, want the manifest's 1m", b.TimeoutBuild)
	}
	if b.Cgo {
		t.Error("Cgo set although CGO_ENABLED=0")
	}
}
