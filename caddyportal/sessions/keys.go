package sessions

// This file is the store's key schema: every key the portal writes starts
// with one of the entries of keySpace below, and nothing else in the
// repository makes up a key (package oauth takes TokenPrefix from here).
// TestKeySpace checks that no entry is a prefix of another and that none
// starts with store.ReservedPrefix. The bytes of a key must never change:
// existing data directories and etcd prefixes hold them.
//
// Values are JSON unless said otherwise.
//
//	alloc                 allocation generation; every transaction that changes
//	                      capacity reads and writes it, so concurrent allocations
//	                      conflict and retry instead of overbooking (the store's
//	                      conflict detection covers keys read, not ranges scanned)
//	p/<replica>           on a store replicas share, when that replica last began a
//	                      reconcile pass (its clock, Unix nanoseconds, decimal),
//	                      expiring after a day: another replica takes over the
//	                      starts still queued on one that has stopped beating
//	secret                the portal's random signing secret (cookies, tickets);
//	                      raw bytes
//	replica               on a store no other process shares (Badger), the replica
//	                      name of a portal block that names none, kept from its
//	                      first start (StoredReplica); raw bytes
//	assertion-keys        package assertion's ECDSA keys (JSON), newest first
//	env/<env>             Environment record: workshop name, state, number
//	seq/<env>             the environment's session counter (names never repeat)
//	u/<user>              User record; an anonymous user holding no live session
//	                      expires like a STOPPED session record. <user> is
//	                      path-escaped.
//	ue/<email>            user id of a web-registered user (raw bytes), by email:
//	                      lowercased and path-escaped, so lookups ignore case and
//	                      the key never contains a bare '/'
//	s/<session>           Session record; once STOPPED it expires after the
//	                      retention period and the store's sweeper purges it
//	l/<env>/<session>     live index: sessions not yet STOPPED (reserves included);
//	                      the value is a liveEntry (liveentry.go: state, owner or
//	                      not, deadlines, creation and last activity, the
//	                      dashboard address), written with every write of the
//	                      record, so the catalogs, the health checker and most
//	                      reconcile passes read the index, not every live record.
//	                      Entries of earlier versions (the address alone, nothing,
//	                      or version 1) are read from their record until the
//	                      reconcile pass rewrites them.
//	e/<hour>/<session>    ended index: STOPPED sessions by the hour (Unix hours,
//	                      10 digits) of their stop time (Session.EndedAt);
//	                      the value summarises the session for the admin overview
//	                      (recent.go: endedSummary); it expires a day after that
//	                      time, or with the record if that goes first, so the
//	                      overview reads the last hours' ends, not every record
//	ended-since           when this store began to write e/ (Unix nanoseconds,
//	                      decimal): windows that start earlier read every record
//	h/<user>/<session>    history index: a user's STOPPED sessions whose records are
//	                      still kept (<user> path-escaped); empty, expiring with the
//	                      record, so a user's sessions are o/ and h/ of that user
//	                      and the admin pages read those records, not every one
//	history-since         when this store began to write h/ (as ended-since):
//	                      until every record finalized before then has expired,
//	                      a user's sessions are found by reading every record
//	c/<env>               the environment's counters: how many keys its live index
//	                      holds, and its reserves ready to hand out, oldest first;
//	                      allocation decides from these instead of reading every
//	                      live record (rebuilt from the live index when missing)
//	o/<user>/<session>    owner index: a user's sessions not yet STOPPED (<user>
//	                      path-escaped)
//	q/<env>/<slot>        a pool slot whose session stopped without a STOPPING
//	                      grace (expiry, orphaning) on a shared store; it expires
//	                      after the grace, and until then the slot is not reused,
//	                      so every replica has closed the old session's streams.
//	                      The value is the old session's name.
//	f/<hash>              failed logins of one account or client address on a
//	                      store shared by replicas (package loginlimit's key,
//	                      SHA-256): {"count","last"}, expiring with its window
//	r/<hash>              a rate's token bucket for one client address on a store
//	                      shared by replicas (package loginlimit's rate name and
//	                      key, SHA-256): {"tokens","at"}, expiring once full again
//	n/<hash>              a one-time value already used (UseOnce), empty, expiring
//	                      with the value; <hash> is the SHA-256 of the value with
//	                      its kind, for example OnceTicket + the ticket's nonce
//	t/a/<hash>            package oauth: an access token's record, by the token's
//	t/r/<hash>            SHA-256, and a refresh token's; both expiring

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// Keys and key prefixes (see the schema above).
const (
	keyAlloc  = "alloc"
	keySecret = "secret"
	// keyReplica keeps the replica name of a store no other process
	// shares.
	keyReplica = "replica"
	// KeyAssertionKeys holds package assertion's signing keys.
	KeyAssertionKeys = "assertion-keys"
	prefixEnv        = "env/"
	prefixSeq        = "seq/"
	prefixUser       = "u/"
	prefixUserEmail  = "ue/"
	prefixSession    = "s/"
	prefixLiveIndex  = "l/"
	prefixCount      = "c/"
	prefixOwner      = "o/"
	prefixQuiet      = "q/"
	prefixOnce       = "n/"
	prefixFailures   = "f/"
	prefixBucket     = "r/"
	prefixBeat       = "p/"
	prefixEnded      = "e/"
	prefixHistory    = "h/"
	keyEndedSince    = "ended-since"
	keyHistorySince  = "history-since"

	// TokenPrefix starts the keys of package oauth's token records
	// (t/a/<hash> and t/r/<hash>).
	TokenPrefix = "t/"
)

// OnceTicket is the kind of a dashboard ticket's nonce given to UseOnce:
// kinds keep one-time values of different uses apart inside n/.
const OnceTicket = "ticket:"

// keySpace lists every key and key prefix of the schema, for TestKeySpace.
var keySpace = []string{keyAlloc, keySecret, keyReplica, KeyAssertionKeys, prefixEnv, prefixSeq, prefixUser, prefixUserEmail,
	prefixSession, prefixLiveIndex, prefixCount, prefixOwner, prefixQuiet, prefixOnce, prefixFailures, prefixBucket, prefixBeat, prefixEnded, keyEndedSince,
	prefixHistory, keyHistorySince, TokenPrefix}

func keyEnv(env string) string        { return prefixEnv + env }
func keySeq(env string) string        { return prefixSeq + env }
func keyUser(id string) string        { return prefixUser + url.PathEscape(id) }
func keySession(name string) string   { return prefixSession + name }
func keyLive(env, name string) string { return prefixLive(env) + name }
func prefixLive(env string) string    { return prefixLiveIndex + env + "/" }
func keyCount(env string) string      { return prefixCount + env }
func keyQuiet(env string, slot int) string {
	return prefixQuiet + env + "/" + strconv.Itoa(slot)
}
func keyOwned(user, name string) string   { return prefixOwned(user) + name }
func keyHistory(user, name string) string { return prefixHistoryOf(user) + name }
func prefixHistoryOf(user string) string  { return prefixHistory + url.PathEscape(user) + "/" }
func prefixOwned(user string) string      { return prefixOwner + url.PathEscape(user) + "/" }
func keyOnce(value string) string         { return prefixOnce + tokens.Hash(value) }
func keyFailures(key string) string       { return prefixFailures + tokens.Hash(key) }
func keyBucket(key string) string         { return prefixBucket + tokens.Hash(key) }
func keyBeat(replica string) string       { return prefixBeat + replica }

func keyUserEmail(email string) string {
	return prefixUserEmail + url.PathEscape(strings.ToLower(strings.TrimSpace(email)))
}
