package httperr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// TestStatus is the table every face relies on: refusals keep their own
// status and text, outages and unknown errors are a 503 without detail.
func TestStatus(t *testing.T) {
	outage := fmt.Errorf("allocating: %w", sessions.ErrUnavailable)
	for _, c := range []struct {
		err       error
		status    int
		msg       string
		refusal   bool
		temporary bool
	}{
		{nil, http.StatusOK, httperr.UnavailableMessage, false, false},
		{sessions.ErrSessionNotFound, http.StatusNotFound, "Session not found", true, false},
		{fmt.Errorf("wrapped: %w", sessions.ErrSessionNotFound), http.StatusNotFound, "Session not found", true, false},
		{sessions.ErrUserNotFound, http.StatusNotFound, "user not found", true, false},
		{sessions.ErrNoEnvironment, http.StatusNotFound, "Environment does not exist", true, false},
		{sessions.ErrNotInUse, http.StatusConflict, "Session is not currently in use", true, false},
		{sessions.ErrReplicaNotFound, http.StatusNotFound, "replica not found", true, false},
		{sessions.ErrReplicaRunning, http.StatusConflict, "replica is running", true, false},
		{sessions.ErrSessionEnded, http.StatusConflict, "Session has ended", true, false},
		{sessions.ErrUserExists, http.StatusConflict, sessions.ErrUserExists.Error(), true, false},
		{sessions.ErrUserNotPermitted, http.StatusForbidden, "Session requests not permitted for user", true, false},
		{sessions.ErrBadToken, http.StatusBadRequest, "Invalid access token for session", true, false},
		{sessions.ErrNoSession, http.StatusServiceUnavailable, "No session available", true, false},
		{sessions.ErrCannotReacquire, http.StatusServiceUnavailable, "Cannot be reacquired", true, false},
		{outage, http.StatusServiceUnavailable, httperr.UnavailableMessage, false, true},
		{sessions.ErrClosed, http.StatusServiceUnavailable, httperr.UnavailableMessage, false, true},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, httperr.UnavailableMessage, false, true},
		{errors.New("disk on fire"), http.StatusServiceUnavailable, httperr.UnavailableMessage, false, false},
	} {
		if got := httperr.Status(c.err); got != c.status {
			t.Errorf("Status(%v) = %d, want %d", c.err, got, c.status)
		}
		if c.err == nil {
			continue
		}
		if got := httperr.Message(c.err); got != c.msg {
			t.Errorf("Message(%v) = %q, want %q", c.err, got, c.msg)
		}
		if got := httperr.Refusal(c.err); got != c.refusal {
			t.Errorf("Refusal(%v) = %v, want %v", c.err, got, c.refusal)
		}
		if got := httperr.Temporary(c.err); got != c.temporary {
			t.Errorf("Temporary(%v) = %v, want %v", c.err, got, c.temporary)
		}
	}
}

// TestWrite pins the REST API's wire format, which Educates clients read:
// & < > unescaped, one JSON object and a newline, no caching.
func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	httperr.Write(w, http.StatusBadRequest, `bad "x" <a&b>`)
	if w.Code != http.StatusBadRequest || w.Body.String() != `{"error":"bad \"x\" <a&b>"}`+"\n" ||
		w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("Write: %d %v %q", w.Code, w.Header(), w.Body.String())
	}
	w = httptest.NewRecorder()
	httperr.WriteJSON(w, http.StatusOK, map[string]any{"f": func() {}})
	if w.Code != http.StatusInternalServerError || w.Body.String() != `{"error":"internal error"}`+"\n" {
		t.Fatalf("unencodable value: %d %q", w.Code, w.Body.String())
	}
}

// TestStatusOverride: a face's override wins for its refusal only.
func TestStatusOverride(t *testing.T) {
	educates := []httperr.Override{{Err: sessions.ErrNoEnvironment, Status: http.StatusForbidden}}
	if got := httperr.Status(fmt.Errorf("x: %w", sessions.ErrNoEnvironment), educates...); got != http.StatusForbidden {
		t.Errorf("overridden refusal: %d, want 403", got)
	}
	if got := httperr.Status(sessions.ErrSessionNotFound, educates...); got != http.StatusNotFound {
		t.Errorf("other refusal: %d, want 404", got)
	}
	if got := httperr.Status(nil, educates...); got != http.StatusOK {
		t.Errorf("nil: %d, want 200", got)
	}
}
