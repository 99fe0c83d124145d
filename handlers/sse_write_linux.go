//go:build linux

package handlers

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tryWritev writes bufs to c with one non-blocking writev and reports how
// many bytes went out and whether that was all of them. A full socket
// (EAGAIN) is n = 0 and no error; a connection that is not a plain socket
// (TLS) reports nothing written, and the caller writes it the blocking way.
func tryWritev(c net.Conn, bufs [][]byte) (n int, all bool, err error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	var werr error
	if err := raw.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), bufs)
			if !errors.Is(werr, unix.EINTR) {
				return true // one attempt: never wait for the socket here
			}
		}
	}); err != nil {
		return 0, false, err // closed, or past its write deadline
	}
	switch {
	case errors.Is(werr, unix.EAGAIN):
		return 0, false, nil
	case werr != nil:
		return 0, false, werr
	}
	return n, n == total, nil
}
