// Package e2e holds the end-to-end tests: a real Caddy serving the portal,
// real dashboards behind the gate (HTTP, WebSocket, event streams), a real
// etcd for replicas, real child processes that are killed or run out of
// disk, and a headless Chromium. The harness they share is
// internal/e2etest; the package has no code of its own.
//
// Tests that run the portal only as separate processes (the replica tests
// on etcd, the kill -9 storms) call t.Parallel: much of their time is spent
// waiting (for the replicas' background passes, for restarts), and they run
// beside each other once the tests that use this process's one Caddy have
// finished. Each tells its own dashboards apart by a marker of its own.
package e2e
