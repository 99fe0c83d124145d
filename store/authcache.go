package store

import (
	"sync"
	"sync/atomic"
)

// authCacheMax bounds the sessions the cache remembers; past it the cache
// starts over. Only valid sessions are cached, so the bound is the number of
// devices in active use, not what an attacker can make up.
const authCacheMax = 10_000

// authCache remembers resolved sessions so that the authentication of every
// request does not query the database.
//
// It is invalidated as a whole, fail-safe: every write use case bumps the
// generation when its batch commits, before its caller is answered, unless
// it declared with Tx.KeepsAuth that it changes nothing authentication
// decides on (no session, device or user created, revoked, expired,
// disabled or re-roled; TouchSession updates the cached last-seen time). An entry is used only under the
// generation it was read in, and that generation is taken before the
// database read, so once a revocation's caller has its answer no request
// can be authenticated from state older than the revocation. Expiry is
// checked against the clock on every use.
type authCache struct {
	gen     atomic.Uint64
	mu      sync.RWMutex
	entries map[[32]byte]authEntry
	hits    atomic.Uint64
	misses  atomic.Uint64
}

type authEntry struct {
	gen uint64
	row sessionAuthRow
}

func newAuthCache() *authCache {
	return &authCache{entries: make(map[[32]byte]authEntry)}
}

// generation is read before the database so that a row read under it is
// never newer than the generation it is stored with.
func (c *authCache) generation() uint64 { return c.gen.Load() }

func (c *authCache) get(key [32]byte) (sessionAuthRow, bool) {
	g := c.gen.Load()
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || e.gen != g {
		c.misses.Add(1)
		return sessionAuthRow{}, false
	}
	c.hits.Add(1)
	return e.row, true
}

func (c *authCache) put(key [32]byte, gen uint64, row sessionAuthRow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= authCacheMax {
		clear(c.entries)
	}
	c.entries[key] = authEntry{gen: gen, row: row}
}

// touch records a new last-seen time in a cached entry of that session;
// the entry keeps its generation (last_seen_at decides nothing).
func (c *authCache) touch(key [32]byte, sessionID string, lastSeen int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && e.row.SessionID == sessionID && lastSeen > e.row.LastSeenAt {
		e.row.LastSeenAt = lastSeen
		c.entries[key] = e
	}
}

// invalidate makes every entry stale. Entries of older generations are
// dropped lazily (overwritten or cleared at the bound).
func (c *authCache) invalidate() { c.gen.Add(1) }
