// Package e2e holds the end-to-end tests: a real Caddy serving the portal,
// real dashboards behind the gate (HTTP, WebSocket, event streams), a real
// etcd for replicas, real child processes that are killed or run out of
// disk, and a headless Chromium. The harness they share is
// internal/e2etest; the package has no code of its own.
package e2e
