package guard

import (
	"log/slog"

	"github.com/go-logr/logr"
)

// logrFor hands controller-runtime the guard's slog logger.
func logrFor(l *slog.Logger) logr.Logger { return logr.FromSlogHandler(l.Handler()) }
