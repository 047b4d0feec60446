package command

import (
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/delegation"
)

// Coded is implemented by errors that know their CNI error code. Packages
// below the command layer implement it on their own error types instead of
// building *types.Error themselves.
type Coded interface {
	error
	CNICode() uint
}

// toCNIError turns any error into a *types.Error with the right code: a
// config error is 7, a Coded error keeps its code, a delegate's own CNI
// error keeps its code (with ratchet's context in the message), anything
// else is 999.
func toCNIError(err error) *types.Error {
	var cerr *config.Error
	if errors.As(err, &cerr) {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	var coded Coded
	if errors.As(err, &coded) {
		return types.NewError(coded.CNICode(), err.Error(), "")
	}
	var derr *delegation.Error
	var terr *types.Error
	if errors.As(err, &derr) && errors.As(derr.Err, &terr) {
		return types.NewError(terr.Code, err.Error(), terr.Details)
	}
	if errors.As(err, &terr) {
		return types.NewError(terr.Code, err.Error(), terr.Details)
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}

// openLog returns the logger of the config: JSON lines appended to logFile
// at logLevel, or a discarding logger without a logFile. Logs never go to
// stdout, which carries the Result.
func openLog(conf *config.NetConf) (*slog.Logger, func()) {
	if conf.LogFile == "" {
		return slog.New(slog.DiscardHandler), func() {}
	}
	f, err := os.OpenFile(conf.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		// Without the log file, stderr (which the runtime records) is the
		// only place left to say so.
		return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("logFileError", err.Error()), func() {}
	}
	return NewLogger(f, conf.LogLevel), func() { f.Close() }
}

// NewLogger returns a JSON slog logger writing to w at level (debug, info,
// warn or error).
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("pid", os.Getpid())
}
