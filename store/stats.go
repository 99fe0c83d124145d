package store

import (
	"context"
	"fmt"
	"os"

	"github.com/sovereign-im/sovereign/models"
)

// Stats are the server's counts for the admin dashboard.
type Stats struct {
	Users          int
	Admins         int
	DisabledUsers  int
	Devices        int // not revoked
	RevokedDevices int
	ActiveSessions int
	Groups         int
	KeyPackages    int
	Messages       int   // stored events of every kind
	MessageBytes   int64 // their payload bytes
	DBBytes        int64 // the database file plus its write-ahead log
	// Attachments are the complete attachments' count and ciphertext
	// bytes, and the uploads in progress.
	Attachments AttachmentStats
}

// Stats counts users, devices, sessions, groups and stored messages in one
// read transaction, and measures the database files. Stored bytes come from
// the groups' running totals (kept by insertEvent and DeleteEvents) plus
// the few events addressed to a device outside any group, so the payloads
// themselves are never read.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	var st Stats
	now := models.Millis(s.now())
	err := s.rdb.NewRaw(`SELECT
  (SELECT count(*) FROM users) AS users,
  (SELECT count(*) FROM users WHERE role = 'admin') AS admins,
  (SELECT count(*) FROM users WHERE disabled_at IS NOT NULL) AS disabled_users,
  (SELECT count(*) FROM devices WHERE revoked_at IS NULL) AS devices,
  (SELECT count(*) FROM devices WHERE revoked_at IS NOT NULL) AS revoked_devices,
  (SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?) AS active_sessions,
  (SELECT count(*) FROM groups) AS groups,
  (SELECT count(*) FROM key_packages) AS key_packages,
  (SELECT count(*) FROM events) AS messages,
  (SELECT coalesce(sum(bytes_used), 0) FROM groups) +
  (SELECT coalesce(sum(length(payload)), 0) FROM events WHERE recipient_device_id IS NOT NULL AND group_id IS NULL) -
  (SELECT coalesce(sum(size), 0) FROM attachments) AS message_bytes`, now).Scan(ctx,
		&st.Users, &st.Admins, &st.DisabledUsers, &st.Devices, &st.RevokedDevices, &st.ActiveSessions,
		&st.Groups, &st.KeyPackages, &st.Messages, &st.MessageBytes)
	if err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	if st.Attachments, err = s.attachmentStats(ctx); err != nil {
		return nil, err
	}
	if s.path == "" {
		st.DBBytes = s.eng.dbBytes(ctx, s.rdb)
		return &st, nil
	}
	for _, p := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			st.DBBytes += fi.Size()
		}
	}
	return &st, nil
}

// DatabaseBytes is the database's size on disk: the SQLite file plus its
// write-ahead log, or PostgreSQL's pg_database_size.
func (s *Store) DatabaseBytes(ctx context.Context) int64 {
	if s.path == "" {
		return s.eng.dbBytes(ctx, s.rdb)
	}
	var n int64
	for _, p := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}
