package gate_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/gate"
)

func req(host string, hdr map[string]string) *http.Request {
	r, _ := http.NewRequest("GET", "http://"+host+"/workshops/session/s1/x", nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

func TestCheckPathDashboard(t *testing.T) {
	o := gate.NewOrigins("https://portal.example")
	const own, other = "http://127.0.0.1:8080/workshops/session/s1/page", "http://127.0.0.1:8080/workshops/session/s2/page"
	fetch := func(ref string) map[string]string {
		return map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Referer": ref}
	}
	nav := func(site, ref string) map[string]string {
		return map[string]string{"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Referer": ref}
	}
	for _, c := range []struct {
		name string
		hdr  map[string]string
		want error
	}{
		{"non-browser client", nil, nil},
		{"own page's fetch", fetch(own), nil},
		{"own page behind the public URL", fetch("https://portal.example/workshops/session/s1/"), nil},
		{"other session's fetch", fetch(other), gate.ErrOtherSession},
		{"other session, escaped address", fetch("http://127.0.0.1:8080/workshops/%73ession/s2/page"), gate.ErrOtherSession},
		{"other session via the public URL", fetch("https://portal.example/workshops/session/s2/"), gate.ErrOtherSession},
		{"fetch without a Referer", fetch(""), gate.ErrUnattributed},
		{"fetch from a portal page", fetch("http://127.0.0.1:8080/workshops/catalog/"), gate.ErrUnattributed},
		{"iframe without a Referer", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}, gate.ErrUnattributed},
		{"navigation from another session", nav("same-origin", other), gate.ErrOtherSession},
		{"navigation from a portal page", nav("same-origin", "http://127.0.0.1:8080/workshops/catalog/"), nil},
		{"activation redirect from the hub", nav("cross-site", "https://hub.example.com/"), nil},
		{"typed address", nav("none", ""), nil},
		{"own WebSocket", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "websocket", "Origin": "http://127.0.0.1:8080", "Upgrade": "websocket"}, nil},
		{"old browser, other session's Referer", map[string]string{"Referer": other}, gate.ErrOtherSession},
		{"Referer of another host with a session path", fetch("http://elsewhere.example/workshops/session/s2/"), gate.ErrUnattributed},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := o.CheckPathDashboard(req("127.0.0.1:8080", c.hdr), "s1"); !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
				t.Fatalf("CheckPathDashboard: %v, want %v", err, c.want)
			}
		})
	}
}

func TestCheckPortal(t *testing.T) {
	o := gate.NewOrigins("")
	const dash = "http://p.example/workshops/session/s2/page"
	for _, c := range []struct {
		name string
		hdr  map[string]string
		want error
	}{
		{"API client", nil, nil},
		{"dashboard fetch", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Referer": dash}, gate.ErrFromDashboard},
		{"dashboard link to the catalog", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Referer": dash}, nil},
		{"portal page fetch", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Referer": "http://p.example/"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := o.CheckPortal(req("p.example", c.hdr)); !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
				t.Fatalf("CheckPortal: %v, want %v", err, c.want)
			}
		})
	}
}

func TestCheckSessionHost(t *testing.T) {
	for _, c := range []struct {
		name string
		hdr  map[string]string
		ok   bool
	}{
		{"no Origin", nil, true},
		{"own WebSocket", map[string]string{"Origin": "http://s1.demo.test:8080", "Upgrade": "websocket"}, true},
		{"other session's WebSocket", map[string]string{"Origin": "http://s2.demo.test:8080", "Upgrade": "websocket"}, false},
		{"other session's fetch", map[string]string{"Origin": "http://s2.demo.test:8080", "Sec-Fetch-Mode": "cors"}, false},
		{"form navigation from elsewhere", map[string]string{"Origin": "https://hub.example.com", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}, true},
		{"null Origin", map[string]string{"Origin": "null", "Sec-Fetch-Mode": "cors"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := gate.CheckSessionHost(req("s1.demo.test:8080", c.hdr)); (err == nil) != c.ok {
				t.Fatalf("CheckSessionHost: %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestFilterSetCookies(t *testing.T) {
	h := http.Header{"Set-Cookie": {
		"portal-demo-login=forged; Path=/",
		"portal-demo-s2=x; Path=/workshops/session/s2/",
		"app=1",
		"app2=1; Path=/workshops/session/s1",
		"app3=1; Path=/workshops/session/s1/lab/",
		"up=1; Path=/",
		"sibling=1; Path=/workshops/session/s10/",
		"relative=1; Path=lab",
		"wide=1; Domain=demo.test",
		"exact=1; Domain=P.example",
		"not a cookie",
	}}
	if n := gate.FilterSetCookies(h, "portal-demo-", "p.example:8080", "/workshops/session/s1"); n != 6 {
		t.Fatalf("dropped %d, kept %q", n, h.Values("Set-Cookie"))
	}
	want := []string{"app=1", "app2=1; Path=/workshops/session/s1", "app3=1; Path=/workshops/session/s1/lab/", "relative=1; Path=lab", "exact=1; Domain=P.example"}
	if got := h.Values("Set-Cookie"); len(got) != len(want) {
		t.Fatalf("kept %q, want %q", got, want)
	}
	// Host mode: any path, still no portal cookie and no wider domain.
	h = http.Header{"Set-Cookie": {"up=1; Path=/", "portal-demo-login=x", "wide=1; Domain=.demo.test"}}
	gate.FilterSetCookies(h, "portal-demo-", "s1.demo.test", "")
	if got := h.Values("Set-Cookie"); len(got) != 1 || got[0] != "up=1; Path=/" {
		t.Fatalf("host mode kept %q", got)
	}
}

func TestDashboardReferrerPolicy(t *testing.T) {
	for in, want := range map[string]string{
		"no-referrer":                     "same-origin",
		"origin":                          "strict-origin-when-cross-origin",
		"unsafe-url, strict-origin":       "strict-origin-when-cross-origin",
		"no-referrer, same-origin":        "no-referrer, same-origin",
		"strict-origin-when-cross-origin": "strict-origin-when-cross-origin",
	} {
		h := http.Header{"Referrer-Policy": {in}}
		gate.DashboardReferrerPolicy(h)
		if got := h.Get("Referrer-Policy"); got != want {
			t.Errorf("%q became %q, want %q", in, got, want)
		}
	}
}

func TestSameOriginNavigation(t *testing.T) {
	nav := func(method, site string, more ...string) *http.Request {
		r, _ := http.NewRequest(method, "http://p.example/workshops/session/s1/delete/", nil)
		r.Header.Set("Sec-Fetch-Site", site)
		r.Header.Set("Sec-Fetch-Mode", "navigate")
		for i := 0; i+1 < len(more); i += 2 {
			r.Header.Set(more[i], more[i+1])
		}
		return r
	}
	plain, _ := http.NewRequest("GET", "http://p.example/x", nil)
	for _, c := range []struct {
		name string
		r    *http.Request
		ok   bool
	}{
		{"non-browser client", plain, true},
		{"dashboard link", nav("GET", "same-origin"), true},
		{"typed address", nav("GET", "none"), true},
		{"confirmation form", nav("POST", "same-origin", "Origin", "http://p.example"), true},
		{"cross-site link", nav("GET", "cross-site"), false},
		{"same-site link", nav("GET", "same-site"), false},
		{"cross-site form", nav("POST", "cross-site", "Origin", "https://evil.example"), false},
		{"form with a foreign Origin", nav("POST", "same-origin", "Origin", "https://evil.example"), false},
		{"HEAD", nav("HEAD", "same-origin"), false},
		{"prefetch", nav("GET", "same-origin", "Sec-Purpose", "prefetch"), false},
		{"fetch", nav("GET", "same-origin", "Sec-Fetch-Mode", "cors"), false},
	} {
		if got := gate.SameOriginNavigation(c.r); got != c.ok {
			t.Errorf("%s: %v, want %v", c.name, got, c.ok)
		}
	}
}

// TestNewOriginsNormalizes: a public URL written with its default port or
// in capitals is the origin browsers send in Referers (config.Origin).
func TestNewOriginsNormalizes(t *testing.T) {
	o := gate.NewOrigins("https://Portal.Example:443/")
	hdr := map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty",
		"Referer": "https://portal.example/workshops/session/s1/"}
	if err := o.CheckPathDashboard(req("127.0.0.1:8080", hdr), "s1"); err != nil {
		t.Fatalf("own page behind https://portal.example: %v", err)
	}
}
