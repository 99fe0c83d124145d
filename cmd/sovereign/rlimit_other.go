//go:build !unix

package main

import (
	"log/slog"

	"github.com/sovereign-im/sovereign/config"
)

func raiseFileLimit(config.Config, *slog.Logger) {}
