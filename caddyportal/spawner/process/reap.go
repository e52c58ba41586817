package process

import (
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// waitExited waits for cmd's process to exit and reaps it with cmd.Wait,
// without holding an OS thread while the process runs.
//
// cmd.Wait alone blocks a thread in waitid for the process's whole life:
// one thread per running environment (a class of 200 left the portal with
// 209 threads, each created during the start it slowed), and Go aborts the
// whole program at 10,000 threads. A pidfd becomes readable when its
// process exits, and the runtime's poller waits for that on threads it
// already has. Where that is missing (non-blocking pidfds came with Linux
// 5.10; a seccomp filter may refuse them) cmd.Wait waits as before.
func waitExited(cmd *exec.Cmd) error {
	if fd, err := unix.PidfdOpen(cmd.Process.Pid, unix.PIDFD_NONBLOCK); err == nil {
		// Non-blocking, so os.NewFile registers it with the poller.
		f := os.NewFile(uintptr(fd), "pidfd")
		awaitExit(f)
		f.Close()
	}
	return cmd.Wait()
}

// awaitExit returns once the process of pidfd f has exited (or f cannot
// tell), leaving it unreaped.
func awaitExit(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(fd uintptr) bool {
		// WNOWAIT leaves the zombie for cmd.Wait; WNOHANG answers a
		// zeroed Siginfo while the process runs. An error (P_PIDFD
		// unknown to the kernel) ends the wait: cmd.Wait then blocks.
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		return err != nil || info.Signo != 0
	})
}
