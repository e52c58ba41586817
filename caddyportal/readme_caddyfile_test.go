package caddyportal

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestReadmeCaddyfiles: the Caddyfile snippets README shows an operator
// parse as they are written. A whole config (global options or site blocks)
// adapts with Caddy's adapter, and every portal block in it whose options
// are all written out passes Validate; a fragment of a portal block (an
// option line, a workshop) parses and validates inside a minimal portal
// block. Options a snippet leaves out with a "# ..." comment are filled
// in with the required ones. The reference blocks, which list alternatives
// and placeholders rather than one config, are recognised by their
// placeholders; there are two, so a new one is not passed over unnoticed.
func TestReadmeCaddyfiles(t *testing.T) {
	// What a portal block needs besides its name, indented by indent.
	required := func(indent string) string {
		return strings.ReplaceAll("robot robot@portal robot-pass\nclient c c-secret\nworkshop base {\n\tupstream 127.0.0.1:9001\n}\n",
			"\n", "\n"+indent)
	}
	elided := regexp.MustCompile(`(?m)^(\t+)# (\.\.\.|same portal block).*$`)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d Caddyfile blocks in README", len(blocks))
	}
	var references, whole, fragments int
	for _, m := range blocks {
		block := m[1]
		first := strings.TrimSpace(strings.SplitN(strings.TrimSpace(block), "\n", 2)[0])
		switch {
		case strings.Contains(block, "[<") || strings.Contains(block, "vendor, authors"):
			references++
		case first == "{" || strings.HasSuffix(first, "{") && strings.ContainsAny(strings.Fields(first)[0], ".:"):
			whole++
			// A portal block that says it leaves options out ("# ...")
			// gets the required ones in their place.
			filled := elided.ReplaceAllStringFunc(block, func(line string) string {
				indent := line[:strings.IndexByte(line, '#')]
				return indent + required(indent)
			})
			raws := portalHandlers(t, filled)
			if len(raws) == 0 {
				t.Errorf("a README config without a portal block:\n%s", block)
			}
			for _, raw := range raws {
				if h := decodeHandler(t, raw); h.Validate() != nil {
					t.Errorf("a README config's portal block fails Validate: %v\n%s", h.Validate(), block)
				}
			}
		default:
			fragments++
			// A fragment's own workshop is named differently from base.
			wrapped := "portal {\n\tname demo\n" + block + "\t" + required("\t") + "}\n"
			var h Handler
			tokens, err := caddyfile.Tokenize([]byte(wrapped), "README")
			if err == nil {
				err = h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
			}
			if err == nil {
				err = h.Validate()
			}
			if err != nil {
				t.Errorf("a README fragment of a portal block: %v\n%s", err, block)
			}
		}
	}
	if references != 2 || whole == 0 || fragments == 0 {
		t.Errorf("README's Caddyfile blocks: %d references, %d whole configs, %d fragments; want 2 references and some of each other kind",
			references, whole, fragments)
	}
}
