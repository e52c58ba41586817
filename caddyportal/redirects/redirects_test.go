package redirects_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/redirects"
)

const self = "https://portal.example.com"

func policy(t testing.TB) *redirects.Policy {
	t.Helper()
	p, err := redirects.NewPolicy("https://hub.example.com/workshops/", "", "http://lms.example.org:8080", "http://[::1]:9000")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewPolicyRefusesNonHTTP(t *testing.T) {
	for _, u := range []string{"ftp://x.example.com", "hub.example.com", "/relative", "https://", "javascript:alert(1)"} {
		if _, err := redirects.NewPolicy(u); err == nil {
			t.Errorf("NewPolicy(%q) accepted", u)
		}
	}
}

func TestCheckAllowed(t *testing.T) {
	p := policy(t)
	for _, target := range []string{
		"https://hub.example.com",
		"https://hub.example.com/",
		"https://hub.example.com/other/page?x=1#frag",
		"https://hub.example.com:443/",
		"HTTPS://HUB.EXAMPLE.COM/Path",
		"https://Hub.Example.Com/",
		"https://hub.example.com./",
		"http://lms.example.org:8080/course",
		"http://[::1]:9000/",
		// The portal's own origin.
		"https://portal.example.com/workshops/catalog/",
		"https://portal.example.com:443/x",
		// Same-origin paths.
		"/",
		"/workshops/catalog/",
		"/index?a=b&c=%2F%2Fevil.com",
		"/a/%2F/evil.com",
	} {
		if err := p.Check(target, self); err != nil {
			t.Errorf("Check(%q) = %v, want allowed", target, err)
		}
	}
	// A nil policy still allows the request's own origin and paths.
	var nilPolicy *redirects.Policy
	for _, target := range []string{"/x", "https://portal.example.com/"} {
		if err := nilPolicy.Check(target, self); err != nil {
			t.Errorf("nil policy Check(%q) = %v", target, err)
		}
	}
}

func TestCheckRefused(t *testing.T) {
	p := policy(t)
	for _, target := range []string{
		"",
		"//evil.com",
		"//evil.com/path",
		"///evil.com",
		`\\evil.com`,
		`/\evil.com`,
		`\/evil.com`,
		"https:evil.com",
		"https:/evil.com",
		"https:hub.example.com",
		"https://hub.example.com@evil.com",
		"https://user:pw@hub.example.com/",
		`https://evil.com\@hub.example.com`,
		`https://hub.example.com\.evil.com`,
		"HTTPS://EVIL.COM",
		"https://evil.com",
		"https://hub.example.com.evil.com",
		"http://hub.example.com.evil.com",
		"http://hub.example.com",      // scheme differs
		"https://hub.example.com:444", // port differs
		"http://lms.example.org",      // port 80 is not 8080
		"https://hub%2Eexample.com/",
		"https://%68ub.example.com/",
		"https://hub.example.com%2F@evil.com",
		"https://evil.com%2F@hub.example.com",
		"https://hub.example.com%E3%80%82evil.com/",
		"https://hub。example。com/",
		"https://hub．example．com/",
		"https://xn--hub-example.com/",
		"javascript:alert(1)",
		"JavaScript:alert(1)",
		"javascript://hub.example.com/%0aalert(1)",
		"data:text/html,<script>alert(1)</script>",
		"data:text/html;base64,PHNjcmlwdD4=",
		"vbscript:msgbox",
		"ftp://hub.example.com/",
		"https://hub.exa\tmple.com/",
		"https://hub.example.com/\n",
		"/\t/evil.com",
		"/\n/evil.com",
		" https://hub.example.com/",
		"https://hub.example.com/ x",
		"\x00https://hub.example.com/",
		"/path\x7f",
		"hub.example.com",
		"workshops/catalog",
		"?next=x",
		"#frag",
		"https://",
		"https:///evil.com",
		"https://:443/",
		"https://portal.example.com.evil.com/",
		"/" + strings.Repeat("a", 5000),
	} {
		if err := p.Check(target, self); err == nil {
			t.Errorf("Check(%q) allowed, want refused", target)
		}
	}
}

func TestCheckWithoutSelf(t *testing.T) {
	p := policy(t)
	if err := p.Check("https://portal.example.com/", ""); err == nil {
		t.Errorf("own origin allowed with no self")
	}
	if err := p.Check("https://portal.example.com/", "not a url"); err == nil {
		t.Errorf("own origin allowed with a bad self")
	}
	if err := p.Check("/x", ""); err != nil {
		t.Errorf("path refused with no self: %v", err)
	}
}

func TestWithNotification(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://hub.example.com/", "https://hub.example.com/?notification=session-deleted"},
		{"https://hub.example.com/?a=1", "https://hub.example.com/?a=1&notification=session-deleted"},
		{"https://hub.example.com/?notification=old&b=2", "https://hub.example.com/?b=2&notification=session-deleted"},
		{"https://hub.example.com/?notification=a&notification=b", "https://hub.example.com/?notification=session-deleted"},
		{"https://hub.example.com/p#frag", "https://hub.example.com/p?notification=session-deleted#frag"},
		{"/workshops/catalog/", "/workshops/catalog/?notification=session-deleted"},
		{"/x?y=a+b", "/x?notification=session-deleted&y=a+b"},
		{"://bad", "://bad"},
	}
	for _, tt := range tests {
		got := redirects.WithNotification(tt.in, "session-deleted")
		if got != tt.want {
			t.Errorf("WithNotification(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"https://hub.example.com/", "//evil.com", `/\evil.com`, "https://hub.example.com@evil.com",
		"/ok", "http://[::1]:9000/", "https://hub。example。com", "javascript:alert(1)", "HTTPS://HUB.EXAMPLE.COM:443"} {
		f.Add(s)
	}
	p := policy(f)
	allowed := map[string]bool{"https://hub.example.com": true, "http://lms.example.org:8080": true,
		"http://[::1]:9000": true, "https://portal.example.com": true}
	f.Fuzz(func(t *testing.T, target string) {
		_ = redirects.WithNotification(target, "session-deleted")
		if p.Check(target, self) != nil {
			return
		}
		if strings.ContainsAny(target, "\\\t\r\n ") {
			t.Fatalf("accepted %q with a backslash or whitespace", target)
		}
		if strings.HasPrefix(target, "/") {
			if strings.HasPrefix(target, "//") {
				t.Fatalf("accepted protocol-relative %q", target)
			}
			return
		}
		u, err := url.Parse(target)
		if err != nil || u.User != nil || u.Opaque != "" {
			t.Fatalf("accepted %q: %+v %v", target, u, err)
		}
		host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		port := u.Port()
		scheme := strings.ToLower(u.Scheme)
		if port == "443" && scheme == "https" || port == "80" && scheme == "http" {
			port = ""
		}
		origin := scheme + "://" + host
		if port != "" {
			origin += ":" + port
		}
		if !allowed[origin] {
			t.Fatalf("accepted %q with origin %q", target, origin)
		}
		// What a browser would see must agree: the host it connects to.
		for i := 0; i < len(u.Host); i++ {
			if u.Host[i] >= 0x80 || u.Host[i] == '%' {
				t.Fatalf("accepted %q with an escaped or non-ASCII host", target)
			}
		}
	})
}

// tricks are targets a browser may read as another host, or as no URL at
// all: refused under every policy, Any included.
var tricks = []string{
	"", "//evil.com", "//evil.com/path", "///evil.com", `\\evil.com`, `/\evil.com`, `\/evil.com`,
	"https:evil.com", "https:/evil.com", "https://hub.example.com@evil.com", "https://user:pw@evil.com/",
	`https://evil.com\@hub.example.com`, `https://hub.example.com\.evil.com`, "https://hub%2Eexample.com/",
	"https://hub.example.com%2F@evil.com", "https://hub.example.com%E3%80%82evil.com/", "https://hub。example。com/",
	"javascript:alert(1)", "JavaScript:alert(1)", "javascript://evil.com/%0aalert(1)",
	"data:text/html,<script>alert(1)</script>", "vbscript:msgbox", "ftp://evil.com/", "file:///etc/passwd",
	"https://evil.exa\tmple.com/", "https://evil.com/\n", "/\t/evil.com", " https://evil.com/", "\x00https://evil.com/",
	"evil.com", "https://", "https:///evil.com", "https://:443/", "/" + strings.Repeat("a", 5000),
}

// TestAnyAdmitsEveryHTTPOrigin: `redirects any` is Educates' behaviour,
// every absolute http(s) URL, and still refuses the tricks.
func TestAnyAdmitsEveryHTTPOrigin(t *testing.T) {
	p, err := redirects.NewPolicy("https://hub.example.com", redirects.Any)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"https://evil.com", "http://lms.example.net:8080/course?x=1", "HTTPS://Other.Example/",
		"http://[::1]:9000/", "https://hub.example.com/", "/workshops/catalog/"} {
		if err := p.Check(target, self); err != nil {
			t.Errorf("any: Check(%q) = %v, want allowed", target, err)
		}
	}
	for _, target := range tricks {
		if err := p.Check(target, self); err == nil {
			t.Errorf("any: Check(%q) allowed, want refused", target)
		}
		if err := policy(t).Check(target, self); err == nil {
			t.Errorf("allow list: Check(%q) allowed, want refused", target)
		}
	}
	// Without Any the same origins are refused.
	if err := policy(t).Check("https://evil.com/x", self); err == nil {
		t.Error("allow list admits another origin")
	}
}

// TestNotAllowedSaysWhatAdmitsIt: the refusal names the origin and the
// Caddyfile lines that would admit it.
func TestNotAllowedSaysWhatAdmitsIt(t *testing.T) {
	err := policy(t).Check("HTTPS://Evil.Example:443/path?q=1", self)
	var na *redirects.NotAllowedError
	if !errors.As(err, &na) || !errors.Is(err, redirects.ErrNotAllowed) || na.Origin != "https://evil.example" {
		t.Fatalf("Check = %#v", err)
	}
	for _, want := range []string{"https://evil.example", `"redirects https://evil.example"`, `"redirects any"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %s", err, want)
		}
	}
	if err := policy(t).Check("//evil.com", self); !errors.Is(err, redirects.ErrNotAllowed) {
		t.Errorf("scheme-relative: %v", err)
	}
}
