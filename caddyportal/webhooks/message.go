package webhooks

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// TimestampLayout is the event timestamp format: Python's isoformat() of an
// aware UTC datetime, which is what Educates receivers parse
// ("2025-01-02T03:04:05.123456+00:00").
const TimestampLayout = "2006-01-02T15:04:05.000000-07:00"

// Message is the JSON body of one webhook POST (reference §5.5). Its shape
// depends on the kind of event, as in Educates: user events carry only the
// user and a portal without uid and generation; environment events carry
// the environment and workshop; session events carry user (null for a
// reserve), session, environment and workshop.
type Message struct {
	Portal MessagePortal `json:"portal"`
	Event  MessageEvent  `json:"event"`
}

// MessagePortal is the "portal" object of a Message.
type MessagePortal struct {
	Name       string
	UID        string
	Generation int64
	URL        string
	// userEvent leaves uid and generation out, as Educates does.
	userEvent bool
}

// MarshalJSON writes the fields in Educates' order.
func (p MessagePortal) MarshalJSON() ([]byte, error) {
	if p.userEvent {
		return json.Marshal(struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		}{p.Name, p.URL})
	}
	return json.Marshal(struct {
		Name       string `json:"name"`
		UID        string `json:"uid"`
		Generation int64  `json:"generation"`
		URL        string `json:"url"`
	}{p.Name, p.UID, p.Generation, p.URL})
}

// MessageEvent is the "event" object of a Message.
type MessageEvent struct {
	Name        string
	Timestamp   time.Time
	User        string
	Session     string
	Environment string
	Workshop    string
	Data        map[string]any
	kind        kind
}

type kind int

const (
	kindSession kind = iota
	kindUser
	kindEnvironment
)

// MarshalJSON writes the fields of the event's kind in Educates' order.
func (e MessageEvent) MarshalJSON() ([]byte, error) {
	ts := e.Timestamp.UTC().Format(TimestampLayout)
	data := e.Data
	if data == nil {
		data = map[string]any{} // Educates sends {} when there is none
	}
	switch e.kind {
	case kindUser:
		return json.Marshal(struct {
			Name      string         `json:"name"`
			Timestamp string         `json:"timestamp"`
			User      string         `json:"user"`
			Data      map[string]any `json:"data"`
		}{e.Name, ts, e.User, data})
	case kindEnvironment:
		return json.Marshal(struct {
			Name        string         `json:"name"`
			Timestamp   string         `json:"timestamp"`
			Environment string         `json:"environment"`
			Workshop    string         `json:"workshop"`
			Data        map[string]any `json:"data"`
		}{e.Name, ts, e.Environment, e.Workshop, data})
	}
	var user *string
	if e.User != "" {
		user = &e.User
	}
	return json.Marshal(struct {
		Name        string         `json:"name"`
		Timestamp   string         `json:"timestamp"`
		User        *string        `json:"user"`
		Session     string         `json:"session"`
		Environment string         `json:"environment"`
		Workshop    string         `json:"workshop"`
		Data        map[string]any `json:"data"`
	}{e.Name, ts, user, e.Session, e.Environment, e.Workshop, data})
}

// NewMessage builds the payload of ev for portal p.
func NewMessage(p Portal, ev sessions.Event) Message {
	k := kindSession
	switch {
	case strings.HasPrefix(ev.Name, sessions.EventUserPrefix):
		k = kindUser
	case strings.HasPrefix(ev.Name, sessions.EventEnvironmentPrefix):
		k = kindEnvironment
	}
	return Message{
		Portal: MessagePortal{Name: p.Name, UID: p.UID, Generation: p.Generation, URL: p.URL, userEvent: k == kindUser},
		Event: MessageEvent{Name: ev.Name, Timestamp: ev.Time, User: ev.User, Session: ev.Session,
			Environment: ev.Environment, Workshop: ev.Workshop, Data: ev.Data, kind: k},
	}
}
