package caddyportal

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCaddyfileMutations runs FuzzUnmarshalCaddyfile's checks on a fixed,
// seeded stream of mutations of every adapt test's portal block: words
// deleted, repeated, swapped, or replaced by words of the other blocks,
// which between them hold every option, spawner and sub-block the parser
// knows. CI runs this on every change under the race detector; the fuzz
// target, which needs all of Caddy compiled again with coverage
// instrumentation (about two and a half minutes here), is for longer runs
// by hand (see .ci/run).
func TestCaddyfileMutations(t *testing.T) {
	blocks := portalBlocks(t)
	var vocab []string
	seen := map[string]bool{}
	for _, b := range blocks {
		for _, w := range b {
			if !seen[w] {
				seen[w] = true
				vocab = append(vocab, w)
			}
		}
	}
	// The adapt tests are mostly errors; mutations of a refused block are
	// mostly refused too, so three in four start from an accepted one.
	var good [][]string
	for _, b := range blocks {
		if checkCaddyfile(t, []byte(strings.Join(b, " "))) {
			good = append(good, b)
		}
	}
	if len(good) == 0 {
		t.Fatal("the parser accepted none of the adapt tests' portal blocks")
	}
	// Seeded, so a failure is repeated by running the test again.
	r := rand.New(rand.NewPCG(14, 40))
	const n = 20000
	accepted := 0
	for range n {
		from := blocks
		if r.IntN(4) > 0 {
			from = good
		}
		words := mutate(r, from[r.IntN(len(from))], vocab)
		if checkCaddyfile(t, []byte(strings.Join(words, " "))) {
			accepted++
		}
	}
	// Mutations that the parser always refused, or never did, would
	// check nothing of the accepting side, or of the refusing one.
	t.Logf("%d portal blocks (%d accepted), %d words; the parser accepted %d of %d mutations", len(blocks), len(good), len(vocab), accepted, n)
	if accepted < n/20 || accepted > n-n/20 {
		t.Fatalf("the parser accepted %d of %d mutations: they do not exercise both sides", accepted, n)
	}
}

// portalBlocks returns the portal block of every adapt test as words, a
// line break being the word "\n".
func portalBlocks(t *testing.T) [][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "caddyfile_adapt", "*.caddyfiletest"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests: %v", err)
	}
	var blocks [][]string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		caddyfile, _, _ := strings.Cut(string(b), "\n----------")
		var words []string
		depth := -1
		for _, line := range strings.Split(caddyfile, "\n") {
			fields := strings.Fields(line)
			if depth < 0 {
				if len(fields) == 0 || fields[0] != "portal" {
					continue
				}
				depth = 0
			}
			for _, w := range fields {
				depth += strings.Count(w, "{") - strings.Count(w, "}")
			}
			words = append(append(words, fields...), "\n")
			if depth <= 0 {
				break
			}
		}
		if len(words) > 0 {
			blocks = append(blocks, words)
		}
	}
	if len(blocks) < len(files)/2 {
		t.Fatalf("found %d portal blocks in %d adapt tests", len(blocks), len(files))
	}
	return blocks
}

// mutate returns a copy of words with one to three random edits.
func mutate(r *rand.Rand, words, vocab []string) []string {
	out := append([]string(nil), words...)
	for range 1 + r.IntN(3) {
		i := r.IntN(len(out))
		switch r.IntN(5) {
		case 0: // delete
			if len(out) > 1 {
				out = append(out[:i], out[i+1:]...)
			}
		case 1: // repeat
			out = append(out[:i+1], out[i:]...)
		case 2: // swap
			j := r.IntN(len(out))
			out[i], out[j] = out[j], out[i]
		case 3: // replace
			out[i] = vocab[r.IntN(len(vocab))]
		case 4: // insert
			out = append(out[:i], append([]string{vocab[r.IntN(len(vocab))]}, out[i:]...)...)
		}
	}
	return out
}
