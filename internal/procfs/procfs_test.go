package procfs

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The fields read from stat are this process's own, as the system calls
// report them; a process whose command name holds spaces and parentheses
// is read as well.
func TestReadStat(t *testing.T) {
	p, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	pgid := syscall.Getpgrp()
	if p.PID != os.Getpid() || p.PPID != os.Getppid() || p.PGID != pgid || p.Start == 0 || p.Dead() {
		t.Fatalf("ReadStat(self) = %+v; want pid %d, ppid %d, pgid %d, a start time, alive", p, os.Getpid(), os.Getppid(), pgid)
	}

	odd := t.TempDir() + "/a) b (c"
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c, err := ReadStat(cmd.Process.Pid)
	if err != nil || c.PPID != os.Getpid() || c.Start < p.Start {
		t.Fatalf("ReadStat(child named %q) = %+v, %v; want parent %d", odd, c, err, os.Getpid())
	}
}

// Env finds a variable of a child's environment, and "" for one not set.
func TestEnv(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "60")
	cmd.Env = []string{"A=1", "PROCFS_TEST=marked", "B=2"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// The kernel fills environ in at the end of the exec, a moment after
	// Start returns.
	var v string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if v, _ = Env(cmd.Process.Pid, "PROCFS_TEST", nil); v != "" {
			break
		}
	}
	if v != "marked" {
		t.Fatalf("Env = %q, want marked", v)
	}
	if v, _ := Env(cmd.Process.Pid, "PROCFS", nil); v != "" {
		t.Fatalf("Env of a prefix of a name = %q, want empty", v)
	}
}

// TestNetworkID: the ID is this boot's and this network namespace's, the
// same each time, and a process in another network namespace has another.
func TestNetworkID(t *testing.T) {
	id := NetworkID()
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, strings.TrimSpace(string(boot))+"/net:[") || NetworkID() != id {
		t.Fatalf("NetworkID() = %q, want this boot's ID and a network namespace", id)
	}
	other, err := exec.Command("unshare", "--net", "readlink", "/proc/self/ns/net").Output()
	if err != nil {
		t.Fatalf("unshare --net (util-linux, as root): %v", err)
	}
	if ns := strings.TrimSpace(string(other)); strings.HasSuffix(id, "/"+ns) {
		t.Fatalf("another network namespace (%s) has this process's ID %q", ns, id)
	}
}
