package sessions

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// TestKeySpace: the schema's keys and prefixes are prefix-free (a scan of
// one never visits another's keys) and none is the store's own.
func TestKeySpace(t *testing.T) {
	if err := checkKeySpace(keySpace); err != "" {
		t.Fatal(err)
	}
	// The check itself catches what it is for.
	for _, bad := range [][]string{{"s/", "s/x/"}, {"u", "ue/"}, {"secret", "se"}, {store.ReservedPrefix + "x/"}, {""}} {
		if checkKeySpace(bad) == "" {
			t.Errorf("checkKeySpace(%q) found nothing wrong", bad)
		}
	}
}

func checkKeySpace(keys []string) string {
	for i, a := range keys {
		if a == "" || strings.HasPrefix(a, store.ReservedPrefix) {
			return fmt.Sprintf("key %q is empty or reserved to the store", a)
		}
		for j, b := range keys {
			if i != j && strings.HasPrefix(b, a) {
				return fmt.Sprintf("%q is a prefix of %q", a, b)
			}
		}
	}
	return ""
}

// TestKeyBytes pins the keys' bytes: stored data directories and etcd
// prefixes hold them, so they must never change.
func TestKeyBytes(t *testing.T) {
	for got, want := range map[string]string{
		keyAlloc:                          "alloc",
		keySecret:                         "secret",
		keyReplica:                        "replica",
		keyBeat("node-a"):                 "p/node-a",
		keyEnv("demo-w01"):                "env/demo-w01",
		keySeq("demo-w01"):                "seq/demo-w01",
		keyUser("a b/c"):                  "u/a%20b%2Fc",
		keyUserEmail(" Ann@Example.COM "): "ue/ann@example.com",
		keyUserEmail("a/b@x"):             "ue/a%2Fb@x",
		keySession("demo-w01-s001"):       "s/demo-w01-s001",
		keyLive("demo-w01", "s1"):         "l/demo-w01/s1",
		prefixLive("demo-w01"):            "l/demo-w01/",
		keyCount("demo-w01"):              "c/demo-w01",
		keyOwned("a b", "s1"):             "o/a%20b/s1",
		prefixOwned("a/b"):                "o/a%2Fb/",
		keyQuiet("demo-w01", 7):           "q/demo-w01/7",
		keyOnce(OnceTicket + "n1"):        "n/" + tokens.Hash("ticket:n1"),
		TokenPrefix + "a/" + "h":          "t/a/h",
	} {
		if got != want {
			t.Errorf("key %q, want %q", got, want)
		}
	}
}
