// Package hostlock lets one process of a machine hold a name: a portal
// replica whose spawners mark their dashboards with its portal and replica
// names holds them, so that a second portal process with the same names
// (the quick start run twice, two portals called alike with separate
// stores) is refused at its start instead of taking the first one's
// dashboards for strays and stopping them.
//
// A lock is an abstract Unix socket (Linux): the kernel frees it when its
// process ends, however it ends, and it needs no file anyone could leave
// behind or lack the right to create. A refused caller learns the holder's
// process id from the socket's peer credentials.
package hostlock

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Lock is a held name. Close frees it.
type Lock struct {
	l    net.Listener
	done chan struct{}
}

// HeldError says another process holds the name.
type HeldError struct {
	Name string
	// PID is the holder's process id, 0 when it could not be learned.
	PID int
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by %s on this machine", e.Name, e.Holder())
}

// Holder names the holder for a message: "process 4242", or "another
// process" when its id is not known.
func (e *HeldError) Holder() string {
	if e.PID > 0 {
		return fmt.Sprintf("process %d", e.PID)
	}
	return "another process"
}

// socketName is the abstract socket that stands for name (`ss -xl` lists
// them); the prefix keeps other programs' names apart. A name too long
// for a socket address stands for itself by its hash.
func socketName(name string) string {
	const prefix = "@caddyportal-hostlock/"
	if len(prefix)+len(name) > maxSocketName {
		sum := sha256.Sum256([]byte(name))
		return prefix + hex.EncodeToString(sum[:])
	}
	return prefix + name
}

// maxSocketName keeps an address, its leading "@" (a NUL) included,
// inside sun_path's 108 bytes.
const maxSocketName = 107

// Acquire takes name for this process, or returns a *HeldError when
// another process holds it.
func Acquire(name string) (*Lock, error) {
	l, err := net.Listen("unix", socketName(name))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, &HeldError{Name: name, PID: holder(name)}
		}
		return nil, fmt.Errorf("hostlock: %w", err)
	}
	lk := &Lock{l: l, done: make(chan struct{})}
	// A refused Acquire connects to learn who holds the name: answer by
	// accepting and closing.
	go func() {
		defer close(lk.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return lk, nil
}

// Close frees the name.
func (lk *Lock) Close() error {
	err := lk.l.Close()
	<-lk.done
	return err
}

// holder returns the process id of name's holder, or 0.
func holder(name string) int {
	c, err := net.DialTimeout("unix", socketName(name), time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	var cred *syscall.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, _ = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if cred == nil {
		return 0
	}
	return int(cred.Pid)
}
