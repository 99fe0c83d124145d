package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/sovereign-im/sovereign/blobstore"

	"github.com/sovereign-im/sovereign/models"
)

// DefaultUserQuotaBytes bounds the attachment bytes of one user when
// Options.UserQuotaBytes is 0.
const DefaultUserQuotaBytes = 2 << 30

// OrphanUploadAge is how long an upload may stay incomplete before the
// cleanup deletes it with its bytes.
const OrphanUploadAge = 24 * time.Hour

// errAttachmentForbidden is the one answer for an attachment the device may
// not use and for one that does not exist, so nobody learns which.
func errAttachmentForbidden() error {
	return models.Errorf(models.EFORBIDDEN, "attachment_forbidden",
		"this device may not use this attachment, or it does not exist")
}

// CreateAttachmentInput declares an upload.
type CreateAttachmentInput struct {
	DeviceID string
	UserID   string
	GroupID  []byte
	Size     int64
}

// CreateAttachment records a new, empty upload of Size bytes for a group the
// device is a member of now. The size is reserved at once in the group's
// quota (counted with its messages' bytes) and in the user's attachment
// quota: a full quota answers EQUOTA and stores nothing.
func (s *Store) CreateAttachment(ctx context.Context, in CreateAttachmentInput) (*models.Attachment, error) {
	if err := checkGroupID(in.GroupID); err != nil {
		return nil, err
	}
	if in.Size < 0 {
		return nil, models.Errorf(models.EINVALID, "invalid_size", "an attachment's size is not negative")
	}
	a := &models.Attachment{ID: uuid.NewString(), GroupID: in.GroupID, UploaderDeviceID: in.DeviceID,
		UploaderUserID: in.UserID, Size: in.Size}
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		var g struct {
			BytesUsed int64 `bun:"bytes_used"`
		}
		err := tx.NewRaw(`SELECT g.bytes_used FROM groups g
JOIN group_members m ON m.group_id = g.id AND m.device_id = ? AND m.left_seq IS NULL
WHERE g.id = ?`, in.DeviceID, in.GroupID).Scan(ctx, &g)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotMember()
		}
		if err != nil {
			return fmt.Errorf("read group: %w", err)
		}
		if g.BytesUsed+in.Size > s.quota {
			return models.Errorf(models.EQUOTA, "group_quota_exceeded",
				"the group's storage quota (%d bytes, messages and attachments together) has no room for %d more bytes", s.quota, in.Size)
		}
		var userBytes int64
		if err := tx.NewRaw(`SELECT COALESCE(SUM(size), 0) FROM attachments WHERE uploader_user_id = ?`, in.UserID).Scan(ctx, &userBytes); err != nil {
			return fmt.Errorf("read user attachment bytes: %w", err)
		}
		if userBytes+in.Size > s.userQuota {
			return models.Errorf(models.EQUOTA, "user_quota_exceeded",
				"your attachment quota (%d bytes in all groups) has no room for %d more bytes", s.userQuota, in.Size)
		}
		// The feed position now: the highest sequence number the group's
		// memberships or the feed have reached (events can be deleted, the
		// membership intervals stay), so a device removed before this
		// point never counts as a member at upload.
		if err := tx.NewRaw(`SELECT MAX(p) FROM (
  SELECT COALESCE(MAX(seq), 0) AS p FROM events
  UNION ALL SELECT COALESCE(MAX(joined_seq), 0) FROM group_members WHERE group_id = ?
  UNION ALL SELECT COALESCE(MAX(left_seq), 0) FROM group_members WHERE group_id = ?
) AS positions`, in.GroupID, in.GroupID).Scan(ctx, &a.UploadSeq); err != nil {
			return fmt.Errorf("read feed position: %w", err)
		}
		a.CreatedAt = tx.Now().UTC()
		if _, err := tx.NewRaw(`INSERT INTO attachments (id, group_id, uploader_device_id, uploader_user_id, size, upload_seq, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`, a.ID, in.GroupID, in.DeviceID, in.UserID, in.Size, a.UploadSeq, models.Millis(a.CreatedAt)).Exec(ctx); err != nil {
			return fmt.Errorf("insert attachment: %w", err)
		}
		if _, err := tx.NewRaw(`UPDATE groups SET bytes_used = bytes_used + ? WHERE id = ?`, in.Size, in.GroupID).Exec(ctx); err != nil {
			return fmt.Errorf("reserve group bytes: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

type attachmentRow struct {
	ID               string         `bun:"id"`
	GroupID          []byte         `bun:"group_id"`
	UploaderDeviceID sql.NullString `bun:"uploader_device_id"`
	UploaderUserID   string         `bun:"uploader_user_id"`
	Size             int64          `bun:"size"`
	UploadSeq        int64          `bun:"upload_seq"`
	CreatedAt        int64          `bun:"created_at"`
	CompletedAt      sql.NullInt64  `bun:"completed_at"`
}

func (r *attachmentRow) attachment() *models.Attachment {
	a := &models.Attachment{ID: r.ID, GroupID: r.GroupID, UploaderDeviceID: r.UploaderDeviceID.String,
		UploaderUserID: r.UploaderUserID, Size: r.Size, UploadSeq: r.UploadSeq, CreatedAt: models.FromMillis(r.CreatedAt)}
	if r.CompletedAt.Valid {
		t := models.FromMillis(r.CompletedAt.Int64)
		a.CompletedAt = &t
	}
	return a
}

const attachmentColumns = `a.id, a.group_id, a.uploader_device_id, a.uploader_user_id, a.size, a.upload_seq, a.created_at, a.completed_at`

// AttachmentForUpload returns an attachment to the device that created it
// while that device is still a member of the group; anyone else gets
// EFORBIDDEN, whether or not the attachment exists.
func (s *Store) AttachmentForUpload(ctx context.Context, deviceID, id string) (*models.Attachment, error) {
	var r attachmentRow
	err := s.rdb.NewRaw(`SELECT `+attachmentColumns+` FROM attachments a
WHERE a.id = ? AND a.uploader_device_id = ?
  AND EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = a.group_id AND m.device_id = ? AND m.left_seq IS NULL)`,
		id, deviceID, deviceID).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errAttachmentForbidden()
	}
	if err != nil {
		return nil, fmt.Errorf("read attachment: %w", err)
	}
	return r.attachment(), nil
}

// AttachmentForDownload returns a complete attachment to a device that is a
// member of its group now, or was when it was uploaded (the rule of the
// group's history: joined_seq ≤ upload_seq < left_seq). Anyone else, and
// any id that does not exist or is incomplete, gets EFORBIDDEN.
func (s *Store) AttachmentForDownload(ctx context.Context, deviceID, id string) (*models.Attachment, error) {
	var r attachmentRow
	err := s.rdb.NewRaw(`SELECT `+attachmentColumns+` FROM attachments a
WHERE a.id = ? AND a.completed_at IS NOT NULL
  AND EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = a.group_id AND m.device_id = ?
              AND (m.left_seq IS NULL OR (m.joined_seq <= a.upload_seq AND a.upload_seq < m.left_seq)))`,
		id, deviceID).Scan(ctx, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errAttachmentForbidden()
	}
	if err != nil {
		return nil, fmt.Errorf("read attachment: %w", err)
	}
	return r.attachment(), nil
}

// CompleteAttachment marks an upload complete (its bytes are committed in
// the blob store). Completing a complete attachment changes nothing.
func (s *Store) CompleteAttachment(ctx context.Context, id string) (*models.Attachment, error) {
	var r attachmentRow
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.KeepsAuth()
		if _, err := tx.NewRaw(`UPDATE attachments SET completed_at = ? WHERE id = ? AND completed_at IS NULL`,
			models.Millis(tx.Now()), id).Exec(ctx); err != nil {
			return fmt.Errorf("complete attachment: %w", err)
		}
		err := tx.NewRaw(`SELECT `+attachmentColumns+` FROM attachments a WHERE a.id = ?`, id).Scan(ctx, &r)
		if errors.Is(err, sql.ErrNoRows) {
			return errAttachmentForbidden()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return r.attachment(), nil
}

// DeleteExpiredAttachments deletes attachments created before before (the
// retention period, like the messages that refer to them) and uploads left
// incomplete for OrphanUploadAge, freeing their bytes in the groups'
// quotas. It deletes rows only: SweepBlobs removes the files no row names.
func (s *Store) DeleteExpiredAttachments(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			tx.KeepsAuth()
			orphanCut := models.Millis(tx.Now().Add(-OrphanUploadAge))
			var rows []struct {
				ID      string `bun:"id"`
				GroupID []byte `bun:"group_id"`
				Size    int64  `bun:"size"`
			}
			if err := tx.NewRaw(`SELECT id, group_id, size FROM attachments
WHERE created_at < ? OR (completed_at IS NULL AND created_at < ?) ORDER BY created_at LIMIT ?`,
				models.Millis(before), orphanCut, cleanupChunk).Scan(ctx, &rows); err != nil {
				return err
			}
			for _, r := range rows {
				if _, err := tx.NewRaw(`DELETE FROM attachments WHERE id = ?`, r.ID).Exec(ctx); err != nil {
					return err
				}
				if _, err := tx.NewRaw(`UPDATE groups SET bytes_used = CASE WHEN bytes_used > ? THEN bytes_used - ? ELSE 0 END WHERE id = ?`,
					r.Size, r.Size, r.GroupID).Exec(ctx); err != nil {
					return err
				}
			}
			n = int64(len(rows))
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("delete expired attachments: %w", err)
		}
		total += n
		if n < cleanupChunk {
			return total, nil
		}
	}
}

// UnknownAttachments returns the ids among ids that no attachment row names
// (their files are garbage: the group was deleted, or the row expired).
func (s *Store) UnknownAttachments(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var known []string
	if err := s.rdb.NewRaw(`SELECT id FROM attachments WHERE id IN (?)`, bun.In(ids)).Scan(ctx, &known); err != nil {
		return nil, fmt.Errorf("read attachment ids: %w", err)
	}
	seen := make(map[string]bool, len(known))
	for _, id := range known {
		seen[id] = true
	}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// AttachmentStats are the stored attachments' count and bytes.
type AttachmentStats struct {
	Count      int
	Bytes      int64 // of complete attachments
	Incomplete int   // uploads in progress
}

func (s *Store) attachmentStats(ctx context.Context) (AttachmentStats, error) {
	var st AttachmentStats
	err := s.rdb.NewRaw(`SELECT
  (SELECT count(*) FROM attachments WHERE completed_at IS NOT NULL),
  (SELECT COALESCE(SUM(size), 0) FROM attachments WHERE completed_at IS NOT NULL),
  (SELECT count(*) FROM attachments WHERE completed_at IS NULL)`).Scan(ctx, &st.Count, &st.Bytes, &st.Incomplete)
	if err != nil {
		return st, fmt.Errorf("read attachment stats: %w", err)
	}
	return st, nil
}

// SweepAttachmentFiles deletes the files of blobs that no attachment row
// names: rows deleted with their group (ON DELETE CASCADE), by
// DeleteExpiredAttachments, or never written because the server stopped
// between the two. Rows are created before any byte is accepted, so a file
// without a row is never an upload in progress.
func (s *Store) SweepAttachmentFiles(ctx context.Context, blobs blobstore.Blobs) (int64, error) {
	var ids []string
	if err := blobs.List(ctx, func(i blobstore.Info) error {
		ids = append(ids, i.ID)
		return nil
	}); err != nil {
		return 0, err
	}
	var n int64
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		unknown, err := s.UnknownAttachments(ctx, chunk)
		if err != nil {
			return n, err
		}
		for _, id := range unknown {
			if err := blobs.Delete(ctx, id); err != nil {
				return n, fmt.Errorf("delete attachment file: %w", err)
			}
			n++
		}
	}
	return n, nil
}
