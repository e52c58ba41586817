package kvcore

// PendingMerge merges a transaction's own writes under a prefix into a Scan
// of the stored keys, which visits the stored keys in order: before each
// stored key it emits the writes with smaller keys, a write to the stored
// key itself takes the stored value's place, and Rest emits what follows
// the last stored key. W is a backend's pending write.
type PendingMerge[W any] struct {
	pend []W
	key  func(W) string
	emit func(W) error
}

// NewPendingMerge returns the merge of pend, sorted by key, whose writes
// emit visits (it skips deletions itself).
func NewPendingMerge[W any](pend []W, key func(W) string, emit func(W) error) *PendingMerge[W] {
	return &PendingMerge[W]{pend: pend, key: key, emit: emit}
}

// Stored emits the writes before the stored key, and the write to key
// itself when there is one: then shadowed is true and the caller skips the
// stored value.
func (m *PendingMerge[W]) Stored(key string) (shadowed bool, err error) {
	for len(m.pend) > 0 && m.key(m.pend[0]) <= key {
		w := m.pend[0]
		m.pend = m.pend[1:]
		shadowed = m.key(w) == key
		if err := m.emit(w); err != nil {
			return shadowed, err
		}
	}
	return shadowed, nil
}

// Rest emits the writes after the last stored key.
func (m *PendingMerge[W]) Rest() error {
	for _, w := range m.pend {
		if err := m.emit(w); err != nil {
			return err
		}
	}
	m.pend = nil
	return nil
}
