package hostlock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets the test binary hold a name as another process would:
// with HOSTLOCK_HOLD set it takes that name, says so, and waits to be
// killed.
func TestMain(m *testing.M) {
	if name := os.Getenv("HOSTLOCK_HOLD"); name != "" {
		if _, err := Acquire(name); err != nil {
			fmt.Println("refused:", err)
			os.Exit(1)
		}
		fmt.Println("held")
		select {}
	}
	os.Exit(m.Run())
}

// TestAnotherProcessHoldsTheName: a name another process holds is refused
// with that process's id, whether it is alive or just killed with
// SIGKILL, after which the name is free at once; one held here is freed
// by Close.
func TestAnotherProcessHoldsTheName(t *testing.T) {
	name := fmt.Sprintf("test-%d/replica", os.Getpid())
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "HOSTLOCK_HOLD="+name)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "held" {
		t.Fatalf("the holding process said %q, %v", line, err)
	}

	_, err = Acquire(name)
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("Acquire of a name another process holds: %v, want a HeldError", err)
	}
	if held.PID != child.Process.Pid || held.Name != name {
		t.Fatalf("refused with %+v, want the holder's pid %d", held, child.Process.Pid)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(child.Process.Pid)) {
		t.Fatalf("the error does not name the holder: %v", err)
	}
	if _, err := Acquire(name + "-other"); err != nil {
		t.Fatalf("another name: %v", err)
	}

	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	lk, err := Acquire(name)
	if err != nil {
		t.Fatalf("the name of a killed process: %v", err)
	}
	if _, err := Acquire(name); !errors.As(err, &held) || held.PID != os.Getpid() {
		t.Fatalf("a second Acquire in the holding process: %v", err)
	}
	if err := lk.Close(); err != nil {
		t.Fatal(err)
	}
	lk, err = Acquire(name)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	lk.Close()
}

// TestLongNames: names too long for a socket address still lock, each
// its own.
func TestLongNames(t *testing.T) {
	long := strings.Repeat("x", 300)
	a, err := Acquire(long + "a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Acquire(long + "b")
	if err != nil {
		t.Fatalf("a second long name that differs at its end: %v", err)
	}
	defer b.Close()
	var held *HeldError
	if _, err := Acquire(long + "a"); !errors.As(err, &held) {
		t.Fatalf("the first long name again: %v", err)
	}
}
