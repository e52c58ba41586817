package etcdstore

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestErrorsOnly: the etcd client's retry warnings are dropped, its errors
// kept, and a core that drops everything (Caddy's discard) is accepted
// without complaint.
func TestErrorsOnly(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core).WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return errorsOnly{c} }))
	log.Warn("retrying")
	log.With(zap.String("k", "v")).Error("failed")
	if got := logs.All(); len(got) != 1 || got[0].Message != "failed" || got[0].ContextMap()["k"] != "v" {
		t.Fatalf("logged %v, want only the error with its field", got)
	}
	quiet := zap.New(zapcore.NewNopCore()).WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return errorsOnly{c} }))
	if quiet.Core().Enabled(zapcore.FatalLevel) {
		t.Fatal("a discarding core became enabled")
	}
}
