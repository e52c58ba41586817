package webui_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
	"github.com/caddyportal/caddyportal/internal/proctest"
)

// dashboardVar makes the test binary a dashboard for the process spawner
// (the helper-process pattern), run as `<binary> <host:port>`: "serve"
// serves a page there until it is killed, "exit" fails at once with a
// message, "hang" never listens (a start that stays waiting).
const dashboardVar = "WEBUI_TEST_DASHBOARD"

func TestMain(m *testing.M) {
	switch os.Getenv(dashboardVar) {
	case "serve":
		page := "dashboard of " + os.Getenv(spawner.EnvSessionName)
		err := http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, page)
		}))
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	case "exit":
		fmt.Fprintln(os.Stderr, "dashboard: no workshop content")
		os.Exit(3)
	case "hang":
		time.Sleep(time.Hour)
		os.Exit(1)
	}
	// Every dashboard a test started must be gone when the package ends.
	proctest.Exit(m.Run(), process.MarkerVar)
}
