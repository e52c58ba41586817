package config

import (
	"strings"
	"testing"
)

// TestOrigin: one normalization for every origin the portal compares
// (redirect policy, gate hosts, the pages' Origin check), and one
// strictness, so validation refuses what the redirect policy would.
func TestOrigin(t *testing.T) {
	for raw, want := range map[string]string{
		"https://Hub.Example.com/workshops/?x=1": "https://hub.example.com",
		"HTTP://hub.example.com:80/":             "http://hub.example.com",
		"https://hub.example.com:443":            "https://hub.example.com",
		"http://hub.example.com:443":             "http://hub.example.com:443",
		"https://hub.example.com.:8443/":         "https://hub.example.com:8443",
		"http://[::1]:9000/x":                    "http://[::1]:9000",
		"http://[::1]/":                          "http://[::1]",
	} {
		if got, err := Origin(raw); err != nil || got != want {
			t.Errorf("Origin(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for raw, msg := range map[string]string{
		"example.com":                    "is not an absolute http(s) URL",
		"/relative":                      "is not an absolute http(s) URL",
		"ftp://example.com/":             "is not an absolute http(s) URL",
		"https://u:p@example.com/":       "is not an absolute http(s) URL",
		"https:opaque":                   "is not an absolute http(s) URL",
		"https://exa%41mple.com/":        "is not an absolute http(s) URL",
		"https://bücher.example/":        "the host must be a plain ASCII name",
		"https://:443/":                  "the host must be a plain ASCII name",
		"https://a.example%2F@b.example": "is not an absolute http(s) URL",
	} {
		if _, err := Origin(raw); err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), raw) {
			t.Errorf("Origin(%q) error %v, want one naming the URL with %q", raw, err, msg)
		}
	}
	// A workshop's home page is only a link: any absolute http(s) URL.
	if err := CheckLink("https://bücher.example/kurs"); err != nil {
		t.Errorf("CheckLink refused an IDN link: %v", err)
	}
	if err := CheckLink("/lab"); err == nil || !strings.Contains(err.Error(), `"/lab" is not an absolute http(s) URL`) {
		t.Errorf("CheckLink(/lab) = %v", err)
	}
}

// TestRedactURL: secrets in user info, query and fragment stay out of
// messages.
func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://u:pw@hooks.example.com/p?token=s#f": "https://hooks.example.com/p",
		"https://hooks.example.com/p?":               "https://hooks.example.com/p",
		"http://bad host/?secret=1":                  "http://bad host/",
	} {
		if got := RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
	if err := ValidateWebhookURL("ftp://hooks.example.com/?token=secret"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("ValidateWebhookURL error %v shows the query", err)
	}
}

// TestValidateRedirects: a redirects entry is an http(s) origin or "any"
// (Educates' acceptance of every index_url), nothing else.
func TestValidateRedirects(t *testing.T) {
	base := Portal{Robot: Credentials{Password: "p"}, Client: Client{ID: "i", Secret: "s"}}
	for _, ok := range [][]string{{RedirectsAny}, {"https://hub.example.com", RedirectsAny}, {"https://hub.example.com"}} {
		p := base
		p.Redirects = ok
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(redirects %v) = %v", ok, err)
		}
	}
	for _, bad := range []string{"anything", "ANY", "*", "javascript:alert(1)"} {
		p := base
		p.Redirects = []string{bad}
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `"any"`) {
			t.Errorf("Validate(redirects %q) = %v, want refused with the any hint", bad, err)
		}
	}
}

// TestCheckBaseURL: the portal's url is an origin; a path or query would
// put every activation link where no route of the portal answers.
func TestCheckBaseURL(t *testing.T) {
	for _, ok := range []string{"https://portal.example.com", "https://portal.example.com/", "http://localhost:8080"} {
		if err := CheckBaseURL(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for raw, msg := range map[string]string{
		"https://portal.example.com/sub/": "served at the root of its host",
		"https://portal.example.com/sub":  "served at the root of its host",
		"https://portal.example.com/?x=1": "served at the root of its host",
		"https://portal.example.com/#top": "served at the root of its host",
		"https://portal.example.com?":     "served at the root of its host",
		"portal.example.com":              "is not an absolute http(s) URL",
		"https://u:p@portal.example.com/": "is not an absolute http(s) URL",
	} {
		if err := CheckBaseURL(raw); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("CheckBaseURL(%q) error %v, want %q", raw, err, msg)
		}
	}
	p := Portal{Name: "p", URL: "https://portal.example.com/sub/"}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `url: "https://portal.example.com/sub/": the portal is served at the root`) {
		t.Errorf("a JSON config's url with a path: %v", err)
	}
}
