package loginlimit

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := New(func() time.Time { return now })
	for i := range Burst {
		if w := l.Blocked("a"); w != 0 {
			t.Fatalf("blocked after %d failures", i)
		}
		l.Fail("a")
	}
	if w := l.Blocked("a"); w != Window {
		t.Fatalf("after %d failures: wait %v, want %v", Burst, w, Window)
	}
	if l.Blocked("b") != 0 {
		t.Fatal("another address is blocked too")
	}
	now = now.Add(Window / 2)
	if w := l.Blocked("a"); w != Window/2 {
		t.Fatalf("half a window later: wait %v", w)
	}
	now = now.Add(Window / 2)
	if l.Blocked("a") != 0 {
		t.Fatal("still blocked a window after the last failure")
	}
	for range Burst {
		l.Fail("c")
	}
	l.Succeed("c")
	if l.Blocked("c") != 0 {
		t.Fatal("a success did not clear the failures")
	}
}

func TestLimiterBounded(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := New(func() time.Time { return now })
	for i := range maxTracked + 10 {
		l.Fail(fmt.Sprint("addr-", i))
	}
	if n := len(l.fails); n > maxTracked {
		t.Fatalf("%d addresses tracked, limit %d", n, maxTracked)
	}
}
