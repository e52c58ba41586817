package config

import (
	"strings"
	"testing"
)

// TestReplicaNames: host names (the default) are accepted as replica names;
// what could make one replica's mark a prefix of another's, or break a
// label or a log line, is refused with the rule.
func TestReplicaNames(t *testing.T) {
	base := Portal{Name: "p", Robot: Credentials{Password: "pw"}, Client: Client{ID: "c", Secret: "s"}, Workshops: []Workshop{{Name: "w", Upstreams: []string{"127.0.0.1:9001"}}}}
	if err := base.Validate(); err != nil {
		t.Fatalf("the base portal is invalid: %v", err)
	}
	for _, ok := range []string{"node-a", "Node_1", "ip-10-0-0-1.eu-west-1.compute.internal", "a", strings.Repeat("a", 253)} {
		p := base
		p.Replica = ok
		if err := p.Validate(); err != nil {
			t.Errorf("replica %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"node/a", "a/", "../x", "node a", "a=b", "-a", "a.", "nul\x00", "é", strings.Repeat("a", 254)} {
		p := base
		p.Replica = bad
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), "use letters, digits, dots, dashes and underscores") {
			t.Errorf("replica %q: %v, want the rule", bad, err)
		}
	}
}
