//go:build unix

package handlers

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// peerGone reports whether the client closed or reset the connection,
// without reading from it: a non-blocking MSG_PEEK of one byte returns 0
// at end of stream and an error on a reset; pending bytes (a client should
// send none on a stream) count as still there. It needs no goroutine
// parked in a read, which is what keeps a detached stream at one goroutine.
func peerGone(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var b [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			gone = n == 0
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		default:
			gone = true
		}
		return true // never wait for readability
	})
	return gone
}
