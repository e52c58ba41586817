package portal

import (
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/api"
	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/webui"
)

// Limits are a portal's abuse limits, counted per client address (and,
// for logins, per account).
type Limits struct {
	// Logins counts failed logins at both doors, the REST API's token
	// endpoint and the web login, so guesses at one count at the other.
	Logins *loginlimit.Limiter
	// Signups, Revokes and Creates limit sign-ups, token revocations and
	// anonymous starts.
	Signups, Revokes, Creates *loginlimit.Rate
}

// NewLimits returns fresh limits at the portal's fixed rates.
func NewLimits(now func() time.Time) *Limits {
	return &Limits{
		Logins:  loginlimit.New(now),
		Signups: loginlimit.NewRate(now, webui.SignupBurst, webui.SignupEvery),
		Revokes: loginlimit.NewRate(now, api.RevokeBurst, api.RevokeEvery),
		Creates: loginlimit.NewRate(now, gate.CreateBurst, gate.CreateEvery),
	}
}
