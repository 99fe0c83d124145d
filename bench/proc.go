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

// machineCPU is the whole machine's CPU time so far, from /proc/stat.
type machineCPU struct {
	busy, steal, total int64 // jiffies over every CPU
}

// readMachineCPU reads the first ("cpu") line of /proc/stat. Busy is
// everything but idle and iowait (steal included: the hypervisor gave the
// time away, it was not free).
func readMachineCPU() (machineCPU, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, err
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineCPU{}, os.ErrInvalid
	}
	var v [8]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	var m machineCPU
	for _, x := range v {
		m.total += x
	}
	m.busy = m.total - v[3] - v[4]
	m.steal = v[7]
	return m, nil
}

// machineLoad measures the machine's CPU use over an interval.
type machineLoad struct{ start machineCPU }

func startMachineLoad() machineLoad {
	m, _ := readMachineCPU()
	return machineLoad{start: m}
}

// add reports the machine's CPU busy and steal shares since start.
func (l machineLoad) add(r *Result) {
	end, err := readMachineCPU()
	d := end.total - l.start.total
	if err != nil || l.start.total == 0 || d <= 0 {
		return
	}
	r.Add("machine CPU busy (all CPUs, steal included)", float64(end.busy-l.start.busy)/float64(d)*100, "%", "")
	r.Add("machine CPU steal", float64(end.steal-l.start.steal)/float64(d)*100, "%", "")
}
