package bench

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// procCPU is a process's CPU time so far.
type procCPU struct{ total time.Duration }

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// readProcCPU reads utime+stime of /proc/<pid>/stat.
func readProcCPU(pid int) (procCPU, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procCPU{}, err
	}
	s := string(raw)
	// The command name may contain spaces: fields start after the last ')'.
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return procCPU{}, os.ErrInvalid
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return procCPU{total: time.Duration(ut+st) * time.Second / clockTicks}, nil
}
