// Package lifecycle holds the session state names and the expiry and
// extension arithmetic of the Educates training portal (reference §4.1,
// §4.4), plus the portal's datetime wire format (reference §2.1). Every
// function that depends on the current time takes it as an argument, so the
// clock is injectable by construction and the maths is exact and testable.
package lifecycle

import "strings"

// State is a session state name as it appears on the wire ("RUNNING").
type State string

// Session states, in lifecycle order (reference §4.1).
const (
	// Starting is a session whose dashboard is being created.
	Starting State = "STARTING"
	// Waiting is a session whose dashboard is ready but which has not been
	// activated: a reserved session (no owner) or a pending one (owner set).
	Waiting State = "WAITING"
	// Running is an activated session.
	Running State = "RUNNING"
	// Stopping is a session being torn down.
	Stopping State = "STOPPING"
	// Stopped is a finished session; its record is kept only for history.
	Stopped State = "STOPPED"
)

// States lists every session state in lifecycle order.
var States = []State{Starting, Waiting, Running, Stopping, Stopped}

// Live reports whether the session still exists from a client's point of
// view, that is anything but STOPPED. An unknown state counts as live so a
// corrupt record is never silently treated as finished.
func (s State) Live() bool { return s != Stopped }

// Ending reports whether the session is on its way out (STOPPING or STOPPED).
func (s State) Ending() bool { return s == Stopping || s == Stopped }

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	_, ok := ParseState(string(s))
	return ok
}

// String returns the wire name of the state.
func (s State) String() string { return string(s) }

// ParseState parses a state name case-insensitively, as the catalog's
// state= query parameter requires. It reports false for unknown names.
func ParseState(s string) (State, bool) {
	for _, st := range States {
		if strings.EqualFold(s, string(st)) {
			return st, true
		}
	}
	return "", false
}
