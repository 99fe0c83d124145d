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
	qGroupForSend = `SELECT g.epoch, g.bytes_used,
  EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id AND m.device_id = ? AND m.left_seq IS NULL)
FROM groups g WHERE g.id = ?`
	qInsertEvent = `INSERT INTO events (id, server_ts, kind, group_id, epoch, sender_device_id, recipient_device_id, payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`
	qAddGroupBytes = `UPDATE groups SET bytes_used = bytes_used + ? WHERE id = ?`
	qActiveMembers = `SELECT device_id FROM group_members WHERE group_id = ? AND left_seq IS NULL`
	qIdemLookup    = `SELECT request_hash, response FROM idempotency_keys WHERE device_id = ? AND key = ?`
	qIdemSave      = `INSERT INTO idempotency_keys (device_id, key, request_hash, response, created_at) VALUES (?, ?, ?, ?, ?)`
)

var hotQueries = []string{qGroupForSend, qInsertEvent, qAddGroupBytes, qActiveMembers, qIdemLookup, qIdemSave}

// prepareHot prepares the hot statements on the writer's connection. It
// runs before the writer starts, while the connection is free.
func prepareHot(ctx context.Context, db *bun.DB) (map[string]*sql.Stmt, error) {
	out := make(map[string]*sql.Stmt, len(hotQueries))
	for _, q := range hotQueries {
		st, err := db.DB.PrepareContext(ctx, q)
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
	if st, ok := tx.w.stmts[q]; ok {
		return tx.Tx.Tx.StmtContext(ctx, st), nil
	}
	st, err := tx.Tx.Tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return st, nil
}
