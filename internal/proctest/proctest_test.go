package proctest

import (
	"bufio"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A marked child and the grandchild it started are found; an unmarked
// child is not, and nothing is once they are gone.
func TestMarkedFindsDescendants(t *testing.T) {
	const name = "PROCTEST_MARK"
	marked := exec.Command("/bin/sh", "-c", "sleep 60 & echo $!; wait")
	marked.Env = append(os.Environ(), name+"=a")
	out, err := marked.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	plain := exec.Command("sleep", "60")
	for _, c := range []*exec.Cmd{marked, plain} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = plain.Process.Kill(); _ = plain.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}

	got := Marked(name)
	slices.Sort(got)
	want := []int{marked.Process.Pid, grandchild}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Marked = %v, want the shell and its sleep %v (not the unmarked %d)", got, want, plain.Process.Pid)
	}

	_ = syscall.Kill(grandchild, syscall.SIGKILL)
	_ = marked.Process.Kill()
	_ = marked.Wait()
	deadline := time.Now().Add(time.Minute)
	for len(Marked(name)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still marked after the kill: %v", Marked(name))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
