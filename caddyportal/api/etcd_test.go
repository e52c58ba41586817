package api_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
)

// TestSuiteOnEtcd runs every other test of this package again, in a child
// process of the same test binary, on a real etcd instead of Badger: the
// REST API must behave the same on both stores.
func TestSuiteOnEtcd(t *testing.T) {
	if os.Getenv(etcdEnv) != "" {
		t.Fatal("TestSuiteOnEtcd must not run inside the suite it starts")
	}
	srv := etcdtest.Start(t)
	cmd := exec.Command(os.Args[0], "-test.run", "^Test", "-test.skip", "^TestSuiteOnEtcd$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), etcdEnv+"="+srv.Endpoints()[0])
	out, err := cmd.CombinedOutput()
	passed := len(regexp.MustCompile(`(?m)^--- PASS: Test`).FindAll(out, -1))
	if err != nil || strings.Contains(string(out), "--- FAIL") {
		t.Fatalf("the API suite failed on etcd (%v):\n%s", err, out)
	}
	// The suite has more than 25 top-level tests; far fewer means the child
	// did not run what it should have.
	if passed < 25 {
		t.Fatalf("only %d tests passed on etcd:\n%s", passed, out)
	}
	t.Logf("%d API tests passed on etcd", passed)
}
