// Command xcaddybuild builds a custom Caddy binary from an xcaddy build
// manifest: a JSON file in the form of xcaddy.Builder (caddy_version,
// plugins, replacements, build_flags, ...). The xcaddy CLI reads only flags
// and environment variables, so this small tool gives the project one
// reviewable file that pins how the release binary is built:
//
//	go run ./cmd/xcaddybuild [-manifest xcaddy.json] [-o caddyportal-bin]
//
// Relative replacement paths in the manifest are resolved against the
// manifest's directory, not the working directory, so the build gives the
// same binary wherever it is started from.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/xcaddy"
)

// defaultTimeoutBuild bounds a whole build when the manifest sets no
// timeout_build. A cold build of Caddy takes a few minutes on a small
// machine; the bound only stops a hung build from running forever.
const defaultTimeoutBuild = 30 * time.Minute

func main() {
	log.SetFlags(0)
	manifest := flag.String("manifest", "xcaddy.json", "path to the xcaddy build manifest (JSON form of xcaddy.Builder)")
	// Not "caddyportal": at the repository root that is the module's
	// package directory, and go build would write into it.
	output := flag.String("o", "caddyportal-bin", "path of the binary to write")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("xcaddybuild: unexpected arguments: %s", strings.Join(flag.Args(), " "))
	}
	if err := run(*manifest, *output); err != nil {
		log.Fatalf("xcaddybuild: %v", err)
	}
}

// run loads the manifest, builds the binary and, when the binary is for this
// platform, prints its version as the xcaddy CLI does to prove it runs.
func run(manifestPath, output string) error {
	builder, err := loadManifest(manifestPath)
	if err != nil {
		return err
	}
	applyDefaults(&builder)
	// go build -o into an existing directory writes a file named after the
	// temporary main module inside it; refuse instead of surprising.
	if fi, err := os.Stat(output); err == nil && fi.IsDir() {
		return fmt.Errorf("output %s is a directory; name the binary file", output)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := builder.Build(ctx, output); err != nil {
		return fmt.Errorf("building %s: %w", output, err)
	}
	if builder.SkipBuild || !nativeTarget(builder) {
		return nil
	}
	abs, err := filepath.Abs(output)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, abs, "version")
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running %s version: %w", output, err)
	}
	return nil
}

// loadManifest reads and decodes the manifest at path; relative replacement
// paths are resolved against the manifest's directory.
func loadManifest(path string) (xcaddy.Builder, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return xcaddy.Builder{}, fmt.Errorf("reading manifest: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return xcaddy.Builder{}, fmt.Errorf("manifest %s: %w", path, err)
	}
	b, err := decodeManifest(bytes.NewReader(data), dir)
	if err != nil {
		return xcaddy.Builder{}, fmt.Errorf("manifest %s: %w", path, err)
	}
	return b, nil
}

// decodeManifest decodes a manifest strictly (unknown fields and trailing
// data are errors, because a misspelled key would otherwise be silently
// ignored and build something else), checks that it names what a build
// needs, and turns relative replacement paths into absolute paths under
// baseDir: xcaddy builds in a temporary directory, where a relative path
// would point nowhere.
func decodeManifest(r io.Reader, baseDir string) (xcaddy.Builder, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return xcaddy.Builder{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b xcaddy.Builder
	if err := dec.Decode(&b); err != nil {
		return xcaddy.Builder{}, describeJSONError(data, err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return xcaddy.Builder{}, fmt.Errorf("invalid JSON after %s: unexpected data after the manifest object", position(data, end))
	}

	// Without a pinned version xcaddy builds whatever Caddy is latest,
	// which is not a reproducible build.
	if strings.TrimSpace(b.CaddyVersion) == "" {
		return xcaddy.Builder{}, errors.New("caddy_version is required")
	}
	for i, p := range b.Plugins {
		if strings.TrimSpace(p.PackagePath) == "" {
			return xcaddy.Builder{}, fmt.Errorf("plugins[%d]: module_path is required", i)
		}
	}
	for i := range b.Replacements {
		rp := &b.Replacements[i]
		if rp.Old == "" || rp.New == "" {
			return xcaddy.Builder{}, fmt.Errorf("replacements[%d]: both old and new are required", i)
		}
		resolved, err := resolveReplacement(string(rp.New), baseDir)
		if err != nil {
			return xcaddy.Builder{}, fmt.Errorf("replacements[%d] (%s): %w", i, rp.Old, err)
		}
		rp.New = xcaddy.ReplacementPath(resolved)
	}
	pinLocalPlugins(&b)
	return b, nil
}

// pinLocalPlugins gives each unversioned plugin that a directory replaces
// (for all its versions) the zero pseudo-version. xcaddy runs `go get` on
// every plugin, and without a version that asks the module proxy for the
// plugin's version list although the code comes from disk: an unpublished
// module, or a proxy that refuses listings, fails the build. A specific
// version is resolved through the replacement without any lookup, and the
// go command itself uses the zero pseudo-version for such replacements.
// majorSuffix matches the major version suffix of a module path
// (".../v2"); v0 and v1 modules have none.
var majorSuffix = regexp.MustCompile(`/v([2-9]|[1-9][0-9]+)$`)

func pinLocalPlugins(b *xcaddy.Builder) {
	local := make(map[string]bool)
	for _, r := range b.Replacements {
		if !strings.Contains(string(r.Old), " ") && !strings.Contains(string(r.Old), "@") && filepath.IsAbs(string(r.New)) {
			local[string(r.Old)] = true
		}
	}
	for i := range b.Plugins {
		p := &b.Plugins[i]
		if p.Version != "" || !local[p.PackagePath] {
			continue
		}
		major := "v0"
		if m := majorSuffix.FindStringSubmatch(p.PackagePath); m != nil {
			major = "v" + m[1]
		}
		p.Version = major + ".0.0-00010101000000-000000000000"
	}
}

// resolveReplacement returns the replacement target to hand to `go mod edit
// -replace`. Filesystem paths (absolute, or relative as go.mod spells them:
// ".", "..", "./x", "../x") become absolute paths and must be a module
// directory; anything else is a module path with an optional version and is
// returned unchanged.
func resolveReplacement(target, baseDir string) (string, error) {
	if !isFilePath(target) {
		return target, nil
	}
	p := target
	if !filepath.IsAbs(p) {
		p = filepath.Join(baseDir, p)
	}
	p = filepath.Clean(p)
	// The go command wants a go.mod in a directory replacement; checking
	// here gives a clear error now instead of an obscure one minutes into
	// the build.
	if _, err := os.Stat(filepath.Join(p, "go.mod")); err != nil {
		return "", fmt.Errorf("replacement directory %s has no go.mod: %w", p, err)
	}
	return p, nil
}

// isFilePath reports whether a replacement target names a directory rather
// than a module.
func isFilePath(s string) bool {
	if filepath.IsAbs(s) {
		return true
	}
	s = filepath.ToSlash(s)
	return s == "." || s == ".." || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../")
}

// applyDefaults fills in what the manifest leaves open, as the xcaddy CLI
// would. TimeoutGet is left alone on purpose: xcaddy derives the `go get`
// context from context.Background when it is set, which would detach that
// phase from Ctrl-C.
func applyDefaults(b *xcaddy.Builder) {
	if b.TimeoutBuild <= 0 {
		b.TimeoutBuild = defaultTimeoutBuild
	}
	// Builder.Build always sets CGO_ENABLED from Cgo; the xcaddy CLI takes
	// it from the environment, so do the same unless the manifest says so.
	if !b.Cgo && os.Getenv("CGO_ENABLED") == "1" {
		b.Cgo = true
	}
}

// nativeTarget reports whether the built binary can run on this machine.
func nativeTarget(b xcaddy.Builder) bool {
	goos, goarch := b.OS, b.Arch
	if goos == "" {
		goos = envOr("GOOS", runtime.GOOS)
	}
	if goarch == "" {
		goarch = envOr("GOARCH", runtime.GOARCH)
	}
	return goos == runtime.GOOS && goarch == runtime.GOARCH
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// describeJSONError adds the line and column to JSON decoding errors that
// carry a byte offset, so a broken manifest points at the broken spot.
func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("invalid JSON: the manifest is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: unexpected end of the manifest")
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at %s: %w", position(data, syn.Offset), err)
	case errors.As(err, &typ):
		return fmt.Errorf("invalid manifest at %s: %w", position(data, typ.Offset), err)
	default:
		// Unknown fields land here: encoding/json reports them without an
		// offset, but its message names the field.
		return fmt.Errorf("invalid manifest: %w", err)
	}
}

// position renders the place of the last of the first offset bytes of data
// (where encoding/json's offsets point) as "line L, column C", 1-based.
func position(data []byte, offset int64) string {
	if len(data) == 0 {
		return "line 1, column 1"
	}
	offset = min(max(offset, 1), int64(len(data)))
	before := data[:offset-1]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}
