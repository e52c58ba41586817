package badgerstore

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapLogger adapts zap to badger.Logger. Badger logs every compaction and
// table flush at Info, which would drown Caddy's own Info log, so Info goes
// to Debug. Many Badger messages end in a newline, which zap would keep.
type zapLogger struct{ l *zap.Logger }

func (z zapLogger) Errorf(format string, args ...any) { z.log(zapcore.ErrorLevel, format, args) }

func (z zapLogger) Warningf(format string, args ...any) { z.log(zapcore.WarnLevel, format, args) }

func (z zapLogger) Infof(format string, args ...any) { z.log(zapcore.DebugLevel, format, args) }

func (z zapLogger) Debugf(format string, args ...any) { z.log(zapcore.DebugLevel, format, args) }

func (z zapLogger) log(lvl zapcore.Level, format string, args []any) {
	// Skip formatting when the level is off: Badger's messages are frequent.
	if ce := z.l.Check(lvl, ""); ce != nil {
		ce.Message = strings.TrimRight(fmt.Sprintf(format, args...), " \t\r\n")
		ce.Write()
	}
}
