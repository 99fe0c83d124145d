//go:build !linux

package handlers

import "net"

// tryWritev writes nothing where no non-blocking writev is wired up: the
// caller writes the blocking way, marked as possibly blocking.
func tryWritev(net.Conn, [][]byte) (int, bool, error) { return 0, false, nil }
