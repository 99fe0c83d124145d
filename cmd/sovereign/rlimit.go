//go:build unix

package main

import (
	"log/slog"
	"syscall"

	"github.com/sovereign-im/sovereign/config"
)

// raiseFileLimit lifts the soft limit on open files to the hard limit: each
// event stream holds a connection, and --streams-total may be in the
// thousands. It warns when even the hard limit is too low for the
// configured streams.
func raiseFileLimit(cfg config.Config, log *slog.Logger) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("read open-file limit", "err", err)
		return
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			log.Warn("raise open-file limit", "err", err)
			_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
		}
	}
	// Streams plus ordinary requests, the database and its WAL, listeners.
	need := uint64(cfg.Limits.StreamsTotal) + 256
	if rl.Cur < need {
		log.Warn("the open-file limit is below --streams-total plus room for requests: raise it (ulimit -n, LimitNOFILE=)",
			"limit", rl.Cur, "streams_total", cfg.Limits.StreamsTotal)
	} else {
		log.Debug("open-file limit", "limit", rl.Cur)
	}
}
