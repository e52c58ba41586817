package proctest

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// DashboardVar makes a test binary a dashboard for the process spawner
// (the helper-process pattern): with the command `<binary> {host}:{port}`
// and DashboardVar set to one of the Dashboard modes in its environment.
const DashboardVar = "CADDYPORTAL_TEST_DASHBOARD"

// The modes of a test dashboard.
const (
	// DashboardServe serves "dashboard of <SESSION_NAME>" until killed.
	DashboardServe = "serve"
	// DashboardExit fails at once with exit status 3 and a message.
	DashboardExit = "exit"
	// DashboardHang never listens: a start that stays waiting.
	DashboardHang = "hang"
)

// Dashboard runs this process as a test dashboard and never returns when
// DashboardVar is set; otherwise it returns at once. Call it first in
// TestMain.
func Dashboard() {
	switch os.Getenv(DashboardVar) {
	case "":
		return
	case DashboardServe:
		page := "dashboard of " + os.Getenv(spawner.EnvSessionName)
		err := http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, page)
		}))
		fmt.Fprintln(os.Stderr, "dashboard:", err)
	case DashboardExit:
		fmt.Fprintln(os.Stderr, "dashboard: no workshop content")
		os.Exit(3)
	case DashboardHang:
		time.Sleep(time.Hour)
	default:
		fmt.Fprintf(os.Stderr, "dashboard: unknown mode %q\n", os.Getenv(DashboardVar))
	}
	os.Exit(1)
}
