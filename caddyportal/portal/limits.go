package portal

import (
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/api"
	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
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

// shareIn makes the limits count in svc's store when replicas share it
// (etcd), so they count together, and in this process otherwise. Revokes
// stay per process: a revoke of an unknown token writes nothing, and
// sharing its bucket would make each one a write.
func (l *Limits) shareIn(svc *sessions.Service) {
	var logins loginlimit.Shared
	var rates loginlimit.SharedRate
	if svc.SharedStore() {
		logins, rates = svc, svc
	}
	l.Logins.Share(logins)
	l.Signups.Share(rates, "signup")
	l.Creates.Share(rates, "create")
}
