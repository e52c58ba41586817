package webui

import "testing"

func TestCatalogStatus(t *testing.T) {
	for _, tc := range []struct {
		spawned                        bool
		available, allocated, capacity int
		queued                         bool
		want                           string
	}{
		{false, 0, 0, 3, false, "ready"}, // fixed dashboards wait
		{false, 0, 3, 3, false, "full"},
		{true, 1, 3, 3, false, "ready"}, // a ready reserve is handed over even when full
		{true, 0, 1, 3, false, "starts"},
		{true, 0, 1, 3, true, "queued"},
		{true, 0, 3, 3, true, "full"},
		{true, 0, 5, 0, false, "starts"}, // no capacity limit
	} {
		if got := catalogStatus(tc.spawned, tc.available, tc.allocated, tc.capacity, tc.queued); got != tc.want {
			t.Errorf("catalogStatus(%+v) = %q, want %q", tc, got, tc.want)
		}
	}
}
