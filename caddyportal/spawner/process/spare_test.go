package process

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// inode returns the inode number of path, failing the test when it is missing.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestStoppedFilesAreReused: a stopped environment's state file and output
// pipe are kept (the state file blanked), and the next start uses them instead of creating
// files (the same inodes), in the same Spawner value and in a new one on
// the same directory; the next environment's state and output go through
// them as through new ones, and nothing of the stopped record remains.
func TestStoppedFilesAreReused(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	s, logs := newSpawner(t, cfg)
	ctx := context.Background()
	a := start(t, s, specFor("reuse-a"))
	stateIno, pipeIno := inode(t, s.stateFile("reuse-a")), inode(t, s.pipeFile("reuse-a"))
	if err := s.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	spareDir := filepath.Join(s.stateDir, spareDirName)
	if b, err := os.ReadFile(filepath.Join(spareDir, "reuse-a.json")); err != nil || len(b) == 0 || len(bytes.TrimSpace(b)) != 0 {
		t.Fatalf("spare state file: %q, %v; want only spaces, as long as the record was", b, err)
	}
	if exists(s.stateFile("reuse-a")) || exists(s.pipeFile("reuse-a")) || exists(s.sessionDir("reuse-a")) {
		t.Fatal("Stop left the session's files in place")
	}

	b := start(t, s, specFor("reuse-b"))
	if got := inode(t, s.stateFile("reuse-b")); got != stateIno {
		t.Errorf("state file inode %d, want the spare's %d", got, stateIno)
	}
	if got := inode(t, s.pipeFile("reuse-b")); got != pipeIno {
		t.Errorf("pipe inode %d, want the spare's %d", got, pipeIno)
	}
	if entries, _ := os.ReadDir(spareDir); len(entries) != 0 {
		t.Errorf("spares left after the start took them: %d", len(entries))
	}
	if st := stateOf(t, b); st.PID <= 0 || st.Dir != s.sessionDir("reuse-b") {
		t.Fatalf("state of the reused file: %+v", st)
	}
	envs, err := s.List(ctx)
	if err != nil || len(envs) != 1 || envs[0].Session != "reuse-b" || stateOf(t, envs[0]).PID != stateOf(t, b).PID {
		t.Fatalf("List = %+v, %v; want reuse-b's record alone", envs, err)
	}
	if code, _ := get(t, b, "/through-the-reused-pipe"); code != 200 {
		t.Fatalf("GET = %d", code)
	}
	eventually(t, "the new environment's output logged through the reused pipe", func() bool {
		for _, e := range logs.FilterMessage("environment output").All() {
			if e.ContextMap()["session"] == "reuse-b" && strings.Contains(e.ContextMap()["line"].(string), "/through-the-reused-pipe") {
				return true
			}
		}
		return false
	})
	if err := s.Stop(ctx, b); err != nil {
		t.Fatal(err)
	}

	// A new value on the same directory (a restart or a config reload)
	// finds the spares the last one left.
	s2, _ := newSpawner(t, cfg)
	c := start(t, s2, specFor("reuse-c"))
	if got := inode(t, s2.stateFile("reuse-c")); got != stateIno {
		t.Errorf("after a restart: state file inode %d, want the spare's %d", got, stateIno)
	}
	if err := s2.Stop(ctx, c); err != nil {
		t.Fatal(err)
	}
}

// TestSparesPreparedAhead: with Prepare set, New makes that many spare
// state files, pipes and session directories in the background; the first
// start takes one of each (their inodes) instead of creating them, its
// stop makes a new directory in place of the one it removed, and a new
// value on the same directory (a restart) makes only what is missing.
func TestSparesPreparedAhead(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	cfg.Prepare = 3
	s, _ := newSpawner(t, cfg)
	t.Cleanup(s.Close)
	kept := filepath.Join(s.stateDir, spareDirName)
	// spareInodes returns the inodes of the spares of each kind.
	spareInodes := func() map[string]map[uint64]bool {
		out := map[string]map[uint64]bool{spareState: {}, sparePipe: {}, spareDir: {}}
		entries, _ := os.ReadDir(kept)
		for _, e := range entries {
			ino := inode(t, filepath.Join(kept, e.Name()))
			switch {
			case strings.HasSuffix(e.Name(), spareState) && e.Type().IsRegular():
				out[spareState][ino] = true
			case strings.HasSuffix(e.Name(), sparePipe) && e.Type() == os.ModeNamedPipe:
				out[sparePipe][ino] = true
			case strings.HasSuffix(e.Name(), spareDir) && e.IsDir():
				out[spareDir][ino] = true
			}
		}
		return out
	}
	counts := func(want int) func() bool {
		return func() bool {
			for _, inodes := range spareInodes() {
				if len(inodes) != want {
					return false
				}
			}
			return true
		}
	}
	eventually(t, "three spares of each kind prepared", counts(3))
	prepared := spareInodes()
	a := start(t, s, specFor("prep-a"))
	for kind, path := range map[string]string{spareState: s.stateFile("prep-a"), sparePipe: s.pipeFile("prep-a"), spareDir: s.sessionDir("prep-a")} {
		if !prepared[kind][inode(t, path)] {
			t.Errorf("the start made %s instead of taking a prepared one", path)
		}
	}
	if fi, err := os.Stat(s.sessionDir("prep-a")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("session directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	if st := stateOf(t, a); st.PID <= 0 {
		t.Fatalf("state in the prepared file: %+v", st)
	}
	if code, _ := get(t, a, "/"); code != 200 {
		t.Fatalf("GET = %d", code)
	}
	if !counts(2)() {
		t.Fatalf("spares left after one start: %v; want two of each kind", spareInodes())
	}
	if err := s.Stop(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	// The state file and pipe came back; the directory was removed and a
	// new one made in its place.
	if !counts(3)() {
		t.Fatalf("spares after the stop: %v; want three of each kind", spareInodes())
	}

	// A restart: one spare of each kind is taken, then a new value makes
	// only that one of each kind.
	b := start(t, s, specFor("prep-b"))
	s2, logs := newSpawner(t, cfg)
	eventually(t, "the new value's preparation logged", func() bool {
		return logs.FilterMessage("prepared spare state files, output pipes and session directories").Len() == 1
	})
	s2.Close()
	if made := logs.FilterMessage("prepared spare state files, output pipes and session directories").All()[0].ContextMap()["prepared"]; made != int64(3) {
		t.Errorf("the new value prepared %v spares, want 3 (one of each kind missing)", made)
	}
	if !counts(3)() {
		t.Fatalf("spares after the new value prepared: %v; want three of each kind", spareInodes())
	}
	if err := s.Stop(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestHeldPipeIsNotReused: a pipe that something still holds open when its
// environment stops (a process that escaped the stop could read the next
// environment's output through it) is removed, not kept for a later start.
func TestHeldPipeIsNotReused(t *testing.T) {
	s, _ := newSpawner(t, helperConfig(t, "dashboard", "{host}:{port}"))
	ctx := context.Background()
	env := start(t, s, specFor("held-1"))
	pipe := s.pipeFile("held-1")
	held, err := os.OpenFile(pipe, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := s.Stop(ctx, env); err != nil {
		t.Fatal(err)
	}
	if exists(pipe) || exists(filepath.Join(s.stateDir, spareDirName, "held-1.out")) {
		t.Fatal("a pipe still held open was kept")
	}
	// The state file was free to keep, and the next start still works.
	if !exists(filepath.Join(s.stateDir, spareDirName, "held-1.json")) {
		t.Fatal("the state file was not kept")
	}
	next := start(t, s, specFor("held-2"))
	if code, _ := get(t, next, "/"); code != 200 {
		t.Fatalf("GET = %d", code)
	}
}

// BenchmarkSessionFiles: the files a start creates and its stop removes
// beside the session's directory (the state file and the output pipe),
// taken from and put back into the spares, against created and removed
// each time (spares off). Run it where sessions live: on ext4 without a
// journal the cost of a create grows with the inodes freed in the last
// minutes, which the second variant itself keeps freeing.
func BenchmarkSessionFiles(b *testing.B) {
	for _, recycle := range []bool{true, false} {
		name := "recycled"
		if !recycle {
			name = "created"
		}
		b.Run(name, func(b *testing.B) {
			s, _ := newSpawner(b, helperConfig(b, "sleeper"))
			s.spare.off = !recycle
			b.ReportAllocs()
			for i := range b.N {
				session := "bench-" + strconv.Itoa(i)
				if _, err := s.createState(session, State{Port: 40000, Dir: s.sessionDir(session), Portal: s.cfg.Portal, Replica: s.cfg.Replica}); err != nil {
					b.Fatal(err)
				}
				out, in, err := s.openPipe(session)
				if err != nil {
					b.Fatal(err)
				}
				out.Close()
				in.Close()
				if err := s.spare.put(sparePipe, s.pipeFile(session)); err != nil {
					b.Fatal(err)
				}
				if err := s.spare.put(spareState, s.stateFile(session)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestUnwrittenSpareIsCleanedUp: a portal killed after a start took a spare
// state file but before it wrote the record leaves the blanked file under
// the new session's name; the next run lists it as the torn file it is,
// without anything of the stopped record, and Stop cleans it up.
func TestUnwrittenSpareIsCleanedUp(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	s, _ := newSpawner(t, cfg)
	ctx := context.Background()
	if err := s.Stop(ctx, start(t, s, specFor("gone-1"))); err != nil {
		t.Fatal(err)
	}
	took, err := s.spare.take(spareState, s.stateFile("torn-2"))
	if err != nil || !took {
		t.Fatalf("take = %v, %v", took, err)
	}
	s2, _ := newSpawner(t, cfg)
	envs, err := s2.List(ctx)
	if err != nil || len(envs) != 1 || envs[0].Session != "torn-2" {
		t.Fatalf("List = %+v, %v; want torn-2", envs, err)
	}
	if st := stateOf(t, envs[0]); st.PID != 0 || st.Port != 0 {
		t.Fatalf("the torn file reads as %+v: the stopped record survived", st)
	}
	if err := s2.Stop(ctx, envs[0]); err != nil || exists(s2.stateFile("torn-2")) {
		t.Fatalf("Stop = %v, state file left: %v", err, exists(s2.stateFile("torn-2")))
	}
}
