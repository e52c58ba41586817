package config

import (
	"strings"
	"testing"
)

func TestValidateWebhookURL(t *testing.T) {
	long := "https://hooks.example.com/" + strings.Repeat("a", maxWebhookURL)
	for _, bad := range []string{"", "/relative", "ftp://hooks.example.com/", "https://user:pw@hooks.example.com/", long} {
		if ValidateWebhookURL(bad) == nil {
			t.Errorf("accepted %.60q (%d bytes)", bad, len(bad))
		}
	}
	for _, ok := range []string{"https://hooks.example.com/x?secret=1", "http://127.0.0.1:9000/"} {
		if err := ValidateWebhookURL(ok); err != nil {
			t.Errorf("refused %q: %v", ok, err)
		}
	}
}

func TestValidateWebhookAllow(t *testing.T) {
	for _, ok := range []string{"127.0.0.0/8", "10.1.2.3", "::1", "fd00::/8", "http://hooks.internal",
		"https://hooks.internal:8443", "http://10.0.0.5:9000/", "http://[::1]:9000"} {
		if err := ValidateWebhookAllow(ok); err != nil {
			t.Errorf("refused %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "hooks.internal", "10.0.0.0/33", "10.0.0.1/8/8", "ftp://x", "http://",
		"http://x/path", "http://x?q=1", "http://u:p@x", "http://x:0", "http://x:65536", "localhost"} {
		if ValidateWebhookAllow(bad) == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	p := Portal{Robot: Credentials{Password: "p"}, Client: Client{ID: "i", Secret: "s"},
		AnalyticsAllow: []string{"10.0.0.0/8", "nonsense"}}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `analytics_allow: "nonsense"`) {
		t.Errorf("Validate = %v, want the bad analytics_allow entry named", err)
	}
}
