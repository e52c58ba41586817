package clientip_test

import (
	"net/http"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/clientip"
)

func TestRemote(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:51234", "192.0.2.7"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"@", "@"},                       // a unix socket's peer
		{"192.0.2.7", "192.0.2.7"},       // no port
		{"", ""},                         // none at all
		{"[2001:db8::1", "[2001:db8::1"}, // malformed: kept whole, not dropped
	} {
		r := &http.Request{RemoteAddr: tc.remote}
		if got := clientip.Remote(r); got != tc.want {
			t.Errorf("Remote(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}
