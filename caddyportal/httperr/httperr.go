// Package httperr is where the portal's HTTP faces (api, webui, adminapi,
// and the gate) turn an error of the session service into a status and a
// text a client may see, and where the JSON faces write their
// {"error": ...} body. It decides "503 or not" once, on the service's
// error vocabulary (package sessions), so no face needs to know the store.
// It does not import Caddy.
package httperr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// UnavailableMessage is the public text of a 503 for an outage, or for an
// error the service does not name: clients get no internal detail.
const UnavailableMessage = "Portal is temporarily unavailable, try again"

// Override is a face's own status for one refusal (errors.Is err).
type Override struct {
	Err    error
	Status int
}

// refusals are the service's answers that are not failures: the request
// cannot be served as asked, and trying the same again will not help
// (except ErrNoSession, once capacity frees up). Their texts are public.
var refusals = []Override{
	{sessions.ErrSessionNotFound, http.StatusNotFound},
	{sessions.ErrUserNotFound, http.StatusNotFound},
	{sessions.ErrNoEnvironment, http.StatusNotFound},
	{sessions.ErrReplicaNotFound, http.StatusNotFound},
	{sessions.ErrReplicaRunning, http.StatusConflict},
	{sessions.ErrNotInUse, http.StatusConflict},
	{sessions.ErrSessionEnded, http.StatusConflict},
	{sessions.ErrUserExists, http.StatusConflict},
	{sessions.ErrUserNotPermitted, http.StatusForbidden},
	{sessions.ErrBadToken, http.StatusBadRequest},
	{sessions.ErrNoSession, http.StatusServiceUnavailable},
	{sessions.ErrCannotReacquire, http.StatusServiceUnavailable},
}

func refusal(err error) (sentinel error, status int, ok bool) {
	for _, r := range refusals {
		if errors.Is(err, r.Err) {
			return r.Err, r.Status, true
		}
	}
	return nil, 0, false
}

// Status is the HTTP status for err: 200 for nil, the refusal's status for
// an error the service names (404 not found, 409 wrong state, 403 not
// permitted, 503 no session free), and 503 for everything else, outages
// and unknown errors alike. A face whose wire format fixes another status
// for a refusal (the REST API follows Educates) passes it as an override.
func Status(err error, overrides ...Override) int {
	if err == nil {
		return http.StatusOK
	}
	for _, o := range overrides {
		if errors.Is(err, o.Err) {
			return o.Status
		}
	}
	if _, status, ok := refusal(err); ok {
		return status
	}
	return http.StatusServiceUnavailable
}

// Message is the public text for err: a refusal's own text (the Educates
// portal's wording for the session errors), UnavailableMessage for any
// other error.
func Message(err error) string {
	if sentinel, _, ok := refusal(err); ok {
		return sentinel.Error()
	}
	return UnavailableMessage
}

// Refusal reports whether err is one of the service's refusals: an answer
// to the request, not a failure worth logging.
func Refusal(err error) bool {
	_, _, ok := refusal(err)
	return ok
}

// Temporary reports whether err means the backend could not answer now
// (sessions.ErrUnavailable, which shutting down is too, or a deadline
// that passed): the face answers 503 with a Retry-After, since the same
// request may succeed in a moment.
func Temporary(err error) bool {
	return errors.Is(err, sessions.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// WriteJSON writes v as a JSON response with status in the REST API's wire
// format, which Educates clients read: &, < and > unescaped (like Django's
// JsonResponse; URLs carry &), Cache-Control: no-store, and a 500
// {"error":"internal error"} if v cannot be encoded.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal error"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Write writes the JSON error body {"error": msg} with status.
func Write(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, map[string]string{"error": msg})
}
