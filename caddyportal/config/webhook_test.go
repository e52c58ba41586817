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
