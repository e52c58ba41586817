package badgerstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// ErrDamaged is wrapped by the error Open returns when part of the store in
// the directory is damaged (a missing MANIFEST, a write-ahead log with
// committed transactions after an unreadable entry, an unreadable table).
// Badger would start on such a directory anyway, silently without the
// damaged data, or panic; Open refuses instead and changes nothing.
var ErrDamaged = errors.New("store: data directory is damaged")

// ErrNotStore is wrapped by the error Open returns for a directory that
// holds files but no store, so that a mistyped path is not filled with
// Badger's files.
var ErrNotStore = errors.New("store: directory is not empty and holds no store")

// recoverHint ends every damage report: what the operator can do.
const recoverHint = "; nothing was changed: restore the directory from a backup, " +
	"or move it aside (the portal then starts with an empty store)"

// Badger's on-disk vocabulary (badger v4): file names, the write-ahead
// log's header size and the entry bits that mark transactions.
const (
	manifestName  = "MANIFEST"
	walHeaderSize = 20     // key id (8) and base IV (12)
	bitTxn        = 1 << 6 // an entry of a transaction
	bitFinTxn     = 1 << 7 // the end-of-transaction marker, value = commit ts
	maxKeyLen     = 1 << 16
)

var (
	txnKey     = []byte("!badger!txn")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// checkDir inspects dir before Badger opens it and reports, as errors
// wrapping ErrDamaged or ErrNotStore, every state in which Badger would
// lose data without a word or panic. It only reads.
func checkDir(dir string, bopts badger.Options) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("badgerstore: reading %q: %w", dir, err)
	}
	var data, other, mems []string
	hasManifest := false
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == manifestName:
			hasManifest = true
		case strings.HasSuffix(name, ".mem"):
			mems = append(mems, name)
			data = append(data, name)
		case strings.HasSuffix(name, ".sst"), strings.HasSuffix(name, ".vlog"),
			name == "KEYREGISTRY", name == "DISCARD":
			data = append(data, name)
		case name == "LOCK", name == reserveFileName, name == "lost+found", strings.HasPrefix(name, "."):
			// A stale lock, our reserve file, a fresh file system's
			// lost+found, hidden files.
		default:
			other = append(other, name)
		}
	}
	if !hasManifest {
		// Badger writes the MANIFEST before any other file, so data files
		// without it mean it was lost; Badger would start empty and delete
		// every table the MANIFEST listed.
		if len(data) > 0 {
			return fmt.Errorf("badgerstore: %q: %w: its MANIFEST is missing but it holds data files (%s), "+
				"which a new store would ignore or delete%s", dir, ErrDamaged, listNames(data), recoverHint)
		}
		if len(other) > 0 {
			return fmt.Errorf("badgerstore: %q: %w (found %s); use an empty directory or one with a store",
				dir, ErrNotStore, listNames(other))
		}
		return nil
	}
	if err := checkTables(dir, bopts); err != nil {
		return err
	}
	sort.Strings(mems)
	for _, name := range mems {
		if err := checkWAL(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("badgerstore: %q: %w: %w%s", dir, ErrDamaged, err, recoverHint)
		}
	}
	return nil
}

// listNames lists up to five names for a message.
func listNames(names []string) string {
	sort.Strings(names)
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}

// checkTables reads the MANIFEST and opens every table it lists, verifying
// each block's checksum. Badger opens tables in goroutines of its own,
// where a damaged footer is a panic that kills the process, and it skips a
// table whose checksum fails (losing its keys) with only a log line.
func checkTables(dir string, bopts badger.Options) error {
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("badgerstore: %q: %w: "+format+"%s",
			append(append([]any{dir, ErrDamaged}, args...), recoverHint)...)
	}
	fp, err := os.Open(filepath.Join(dir, manifestName))
	if err != nil {
		return fmt.Errorf("badgerstore: opening the MANIFEST of %q: %w", dir, err)
	}
	mf, _, err := badger.ReplayManifestFile(fp, bopts.ExternalMagicVersion, bopts)
	fp.Close()
	if err != nil {
		return damaged("its MANIFEST cannot be read: %v", err)
	}
	ids := make([]uint64, 0, len(mf.Tables))
	for id := range mf.Tables {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		tm := mf.Tables[id]
		name := table.NewFilename(id, dir)
		if tm.KeyID != 0 {
			continue // encrypted: the portal never writes these
		}
		if err := checkTable(name, tm.Compression, bopts); err != nil {
			return damaged("table %s: %v", filepath.Base(name), err)
		}
	}
	return nil
}

// checkTable opens one table read-only with full checksum verification,
// turning Badger's panics on a damaged file into an error.
func checkTable(name string, c options.CompressionType, bopts badger.Options) (err error) {
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	var t *table.Table
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable: %v", firstLine(fmt.Sprint(r)))
		}
		if t != nil {
			_ = t.Close(-1)
		} else if err != nil {
			_ = mf.Close(-1)
		}
	}()
	t, err = table.OpenTable(mf, table.Options{
		ReadOnly:           true,
		TableSize:          uint64(bopts.BaseTableSize),
		BlockSize:          bopts.BlockSize,
		BloomFalsePositive: bopts.BloomFalsePositive,
		ChkMode:            options.OnTableRead,
		Compression:        c,
	})
	return err
}

// firstLine keeps panic messages (which carry dumps) readable.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// walEntry is one decoded entry of a write-ahead log.
type walEntry struct {
	meta       byte
	key, value []byte
	size       int // header, key, value and checksum
}

// decodeWALEntry decodes the entry at the start of b as Badger writes it:
// meta, user meta, uvarint key length, value length and expiry, key,
// value, then a big-endian Castagnoli CRC32 of everything before it. ok is
// false where Badger's replay stops: a short, oversized, keyless or
// checksum-failing entry.
func decodeWALEntry(b []byte) (e walEntry, ok bool) {
	if len(b) < 2 {
		return e, false
	}
	i := 2
	var lens [3]uint64
	for j := range lens {
		v, n := binary.Uvarint(b[i:])
		if n <= 0 {
			return e, false
		}
		lens[j], i = v, i+n
	}
	klen, vlen := lens[0], lens[1]
	if klen == 0 || klen > maxKeyLen || vlen > uint64(len(b)) || uint64(i)+klen+vlen+4 > uint64(len(b)) {
		return e, false
	}
	end := i + int(klen) + int(vlen)
	if crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(b[end:]) {
		return e, false
	}
	return walEntry{meta: b[0], key: b[i : i+int(klen)], value: b[i+int(klen) : end], size: end + 4}, true
}

// checkWAL reports a write-ahead log (a .mem file) from which Badger's
// replay would silently drop committed transactions. Replay stops at the
// first entry that does not decode or breaks the transaction framing, and
// Badger then truncates the log there. After a crash that point is the
// end of the log (zeroes, Badger clears the next header after every write)
// or a torn last write. It is damage when a committed transaction (an
// intact end-of-transaction marker) follows the stop, or when the file
// ends in data, that is it was cut short.
func checkWAL(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	name := filepath.Base(path)
	if len(b) == 0 {
		return nil // never written; Open removes it
	}
	if len(b) < walHeaderSize {
		return fmt.Errorf("write-ahead log %s is shorter than its header (%d bytes)", name, len(b))
	}
	off := walHeaderSize
	var txn uint64 // the commit ts of the open transaction, 0 if none
replay:
	for off < len(b) {
		e, ok := decodeWALEntry(b[off:])
		if !ok {
			break
		}
		switch {
		case e.meta&bitTxn != 0:
			ts := parseTs(e.key)
			if txn == 0 {
				txn = ts
			}
			if ts != txn {
				break replay
			}
		case e.meta&bitFinTxn != 0:
			ts, err := strconv.ParseUint(string(e.value), 10, 64)
			if err != nil || ts != txn {
				break replay
			}
			txn = 0
		default:
			if txn != 0 {
				break replay
			}
		}
		off += e.size
	}
	if off >= len(b) {
		return nil
	}
	for i := off + 1; i < len(b); i++ {
		if b[i]&bitFinTxn == 0 {
			continue
		}
		// The marker's key is txnKey followed by the 8-byte version.
		if e, ok := decodeWALEntry(b[i:]); ok && len(e.key) == len(txnKey)+8 && bytes.HasPrefix(e.key, txnKey) {
			return fmt.Errorf("write-ahead log %s is damaged at byte %d of %d: committed transactions "+
				"after it (the next at byte %d) would be dropped", name, off, len(b), i)
		}
	}
	tail := b[max(off, len(b)-16):]
	if !allZero(tail) {
		return fmt.Errorf("write-ahead log %s ends inside an entry at byte %d of %d: it was cut short "+
			"and the transactions in the missing part are lost", name, off, len(b))
	}
	return nil
}

// parseTs is y.ParseTs: the version Badger appends to a key.
func parseTs(key []byte) uint64 {
	if len(key) <= 8 {
		return 0
	}
	return ^binary.BigEndian.Uint64(key[len(key)-8:])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
