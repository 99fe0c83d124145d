package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/uptrace/bun"
)

// Hot-path statements of the message path. They are prepared once on the
// writer connection and bound to each batch transaction (sql.Tx.StmtContext
// reuses the connection's prepared statement), with arguments passed to the
// driver: bun's query builder would interpolate them into the SQL text
// (payloads as hex literals), making SQLite parse every statement anew,
// which cost about 40% of the send path.
const (
	qGroupForSend = `SELECT g.epoch, g.bytes_used, g.members_version, g.chain_head,
  EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id AND m.device_id = ? AND m.left_seq IS NULL)
FROM groups g WHERE g.id = ?`
	// qInsertEvent writes the event whole: its seq (Tx.takeSeq) and, for a
	// chained event, its place on the chain (chain.go) are known before.
	qInsertEvent = `INSERT INTO events (seq, id, server_ts, kind, group_id, epoch, sender_device_id, recipient_device_id, payload, welcome_id, prev_hash, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qAddGroupBytes = `UPDATE groups SET bytes_used = bytes_used + ? WHERE id = ?`
	// qChainHead and qAdvanceChain keep a group's hash chain (chain.go).
	qChainHead     = `SELECT chain_head FROM groups WHERE id = ?`
	qAdvanceChain  = `UPDATE groups SET bytes_used = bytes_used + ?, chain_head = ? WHERE id = ?`
	qActiveMembers = `SELECT device_id FROM group_members WHERE group_id = ? AND left_seq IS NULL`
	qIdemLookup    = `SELECT request_hash, response FROM idempotency_keys WHERE device_id = ? AND key = ?`
	qIdemSave      = `INSERT INTO idempotency_keys (device_id, key, request_hash, response, created_at) VALUES (?, ?, ?, ?, ?)`
	// qPushEnqueue queues (or coalesces into) a device's push outbox row.
	qPushEnqueue = `INSERT INTO push_outbox (device_id, seq, urgency, version, due_at, lease_until, attempts, created_at)
VALUES (?, ?, ?, 1, ?, 0, 0, ?)
ON CONFLICT (device_id) DO UPDATE SET seq = excluded.seq, version = push_outbox.version + 1,
  urgency = CASE WHEN excluded.urgency = 'high' THEN 'high' ELSE push_outbox.urgency END`

	// The writer wraps every use case in these.
	qSavepoint         = `SAVEPOINT uc`
	qReleaseSavepoint  = `RELEASE uc`
	qRollbackSavepoint = `ROLLBACK TO uc`
)

var hotQueries = []string{qGroupForSend, qInsertEvent, qAddGroupBytes, qChainHead, qAdvanceChain, qActiveMembers, qIdemLookup, qIdemSave, qPushEnqueue,
	qSavepoint, qReleaseSavepoint, qRollbackSavepoint}

// prepareHot prepares the hot statements on the writer's connection. It
// runs before the writer starts, while the connection is free.
func prepareHot(ctx context.Context, db *bun.DB, eng engine) (map[string]*sql.Stmt, error) {
	out := make(map[string]*sql.Stmt, len(hotQueries)+1)
	qs := append(hotQueries[:len(hotQueries):len(hotQueries)], eng.lastSeqSQL())
	if q := eng.nextSeqSQL(); q != "" {
		qs = append(qs, q)
	}
	for _, q := range qs {
		st, err := db.DB.PrepareContext(ctx, eng.rebind(q))
		if err != nil {
			closeStmts(out)
			return nil, fmt.Errorf("prepare %.40q: %w", q, err)
		}
		out[q] = st
	}
	return out, nil
}

func closeStmts(m map[string]*sql.Stmt) {
	for _, st := range m {
		_ = st.Close()
	}
}

// stmt returns the prepared statement q bound to this use case's
// transaction (closed with it).
func (tx *Tx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if _, ok := tx.w.stmts[q]; ok {
		return tx.w.batchStmt(ctx, tx.Tx, q), nil
	}
	st, err := tx.Tx.Tx.PrepareContext(ctx, tx.w.eng.rebind(q))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return st, nil
}

// qAuthenticate resolves a bearer token's hash on every authenticated
// request.
const qAuthenticate = `SELECT s.id, s.user_id, s.device_id, u.username, u.role, s.expires_at, s.last_seen_at,
       s.revoked_at, d.revoked_at, u.disabled_at
FROM sessions s
JOIN devices d ON d.id = s.device_id
JOIN users u ON u.id = s.user_id
WHERE s.token_hash = ?`

// readStmts are hot read statements prepared once on the read pool
// (database/sql prepares each on a pooled connection the first time it is
// used there and keeps it), with arguments bound by the driver: through
// bun's NewRaw, SQLite parsed and planned the query again on every request
// (about a quarter of the server's CPU time under send load).
type readStmts struct {
	auth *sql.Stmt
	feed *sql.Stmt
}

func prepareReads(ctx context.Context, db *bun.DB, eng engine) (*readStmts, error) {
	auth, err := db.DB.PrepareContext(ctx, eng.rebind(qAuthenticate))
	if err != nil {
		return nil, fmt.Errorf("prepare authenticate: %w", err)
	}
	feed, err := db.DB.PrepareContext(ctx, eng.rebind(feedSQL))
	if err != nil {
		_ = auth.Close()
		return nil, fmt.Errorf("prepare feed: %w", err)
	}
	return &readStmts{auth: auth, feed: feed}, nil
}

func (r *readStmts) close() {
	if r == nil {
		return
	}
	for _, st := range []*sql.Stmt{r.auth, r.feed} {
		if st != nil {
			_ = st.Close()
		}
	}
}
