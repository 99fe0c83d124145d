package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/sovereign-im/sovereign/mls"
	"github.com/sovereign-im/sovereign/models"
)

// MaxGroupIDBytes bounds a client-chosen MLS group id.
const MaxGroupIDBytes = 255

// errNotMember is the one answer for a group the device is not a member of
// and for a group that does not exist, so that nobody learns which.
func errNotMember() error {
	return models.Errorf(models.EFORBIDDEN, "not_member", "this device is not a member of the group, or the group does not exist")
}

func checkGroupID(id []byte) error {
	if len(id) == 0 || len(id) > MaxGroupIDBytes {
		return models.Errorf(models.EINVALID, "invalid_group_id", "a group id is 1 to %d bytes", MaxGroupIDBytes)
	}
	return nil
}

// parseGroupInfo checks that b is an MLSMessage(GroupInfo) of group id at
// epoch.
func parseGroupInfo(b, groupID []byte, epoch uint64) error {
	gi, err := mls.ParseGroupInfo(b)
	if err != nil {
		return mlsError("group_info", err)
	}
	if !bytes.Equal(gi.GroupContext.GroupID, groupID) {
		return models.Errorf(models.EINVALID, "group_id_mismatch", "the GroupInfo's group_id differs from the group's id")
	}
	if gi.GroupContext.Epoch != epoch {
		return models.Errorf(models.EINVALID, "group_info_epoch", "the GroupInfo is for epoch %d; epoch %d was expected", gi.GroupContext.Epoch, epoch)
	}
	return nil
}

// mlsError turns a parse failure of untrusted bytes into a 422 that names
// the field that failed (the parser's message is about the client's own
// bytes and holds no server detail).
func mlsError(what string, err error) error {
	e := models.Errorf(models.EINVALID, "invalid_mls", "%s: not a valid MLS message: %v", what, err)
	e.Err = err
	return e
}

// CreateGroup creates a group with the client-chosen MLS group id; the
// creating device is its first member, at epoch 0. groupInfo, when given,
// must be the GroupInfo of that group at epoch 0.
func (s *Store) CreateGroup(ctx context.Context, deviceID string, groupID, groupInfo []byte) (*models.Group, error) {
	if err := checkGroupID(groupID); err != nil {
		return nil, err
	}
	if groupInfo != nil {
		if err := parseGroupInfo(groupInfo, groupID, 0); err != nil {
			return nil, err
		}
	}
	g := &models.Group{ID: groupID, GroupInfo: groupInfo}
	err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		g.CreatedAt = tx.Now().UTC()
		// A taken id is answered before the INSERT: on PostgreSQL a failed
		// statement aborts the whole transaction, so nothing could be read
		// after it (the unique violation below stays as the last guard).
		var taken int
		if err := tx.NewRaw(`SELECT COUNT(*) FROM groups WHERE id = ?`, groupID).Scan(ctx, &taken); err != nil {
			return fmt.Errorf("check group id: %w", err)
		}
		if taken > 0 {
			return groupIDTaken(ctx, tx, groupID, deviceID)
		}
		if err := s.checkGroupCap(ctx, tx, deviceID); err != nil {
			return err
		}
		// The GroupInfo is stored bytes like any message: counted in the
		// group's bytes_used.
		_, err := tx.NewRaw(`INSERT INTO groups (id, epoch, group_info, bytes_used, created_by_device, created_at) VALUES (?, 0, ?, ?, ?, ?)`,
			groupID, nullBytes(groupInfo), len(groupInfo), deviceID, models.Millis(g.CreatedAt)).Exec(ctx)
		if err != nil {
			if isUniqueViolation(err) {
				return groupIDTaken(ctx, tx, groupID, deviceID)
			}
			return fmt.Errorf("insert group: %w", err)
		}
		// The creator sees every event after this point. Sequence numbers
		// are never reused, so the highest one is a safe lower bound.
		if err := tx.NewRaw(`SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(ctx, &g.JoinedSeq); err != nil {
			return fmt.Errorf("read last seq: %w", err)
		}
		if _, err := tx.NewRaw(`INSERT INTO group_members (group_id, device_id, joined_seq) VALUES (?, ?, ?)`,
			groupID, deviceID, g.JoinedSeq).Exec(ctx); err != nil {
			return fmt.Errorf("insert creator membership: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	g.Members, err = s.groupMembers(ctx, groupID)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// groupIDTaken is the answer to creating a group whose id is taken: a
// member device learns it is a conflict; anyone else gets the one answer of
// every group operation for a group it is not a member of, whether or not
// the group exists, so creation is no probe for ids.
func groupIDTaken(ctx context.Context, tx *Tx, groupID []byte, deviceID string) error {
	var n int
	if err := tx.NewRaw(`SELECT COUNT(*) FROM group_members WHERE group_id = ? AND device_id = ? AND left_seq IS NULL`,
		groupID, deviceID).Scan(ctx, &n); err != nil {
		return fmt.Errorf("check membership: %w", err)
	}
	if n > 0 {
		return models.Errorf(models.ECONFLICT, "group_exists", "this device already created or joined a group with this id")
	}
	return errNotMember()
}

// ListGroups returns the groups the device is a member of now, oldest
// membership first, without member lists.
func (s *Store) ListGroups(ctx context.Context, deviceID string) ([]*models.Group, error) {
	var rows []struct {
		ID        []byte `bun:"id"`
		Epoch     int64  `bun:"epoch"`
		CreatedAt int64  `bun:"created_at"`
		JoinedSeq int64  `bun:"joined_seq"`
	}
	err := s.rdb.NewRaw(`SELECT g.id, g.epoch, g.created_at, m.joined_seq
FROM group_members m JOIN groups g ON g.id = m.group_id
WHERE m.device_id = ? AND m.left_seq IS NULL
ORDER BY m.joined_seq, m.id`, deviceID).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	out := make([]*models.Group, len(rows))
	for i, r := range rows {
		out[i] = &models.Group{ID: r.ID, Epoch: uint64(r.Epoch), CreatedAt: models.FromMillis(r.CreatedAt), JoinedSeq: r.JoinedSeq}
	}
	return out, nil
}

// GetGroup returns a group with its member devices, to a device that is a
// member now. Anyone else gets the not-member error, whether or not the
// group exists.
func (s *Store) GetGroup(ctx context.Context, deviceID string, groupID []byte) (*models.Group, error) {
	var row struct {
		Epoch     int64  `bun:"epoch"`
		GroupInfo []byte `bun:"group_info"`
		BytesUsed int64  `bun:"bytes_used"`
		CreatedAt int64  `bun:"created_at"`
		JoinedSeq int64  `bun:"joined_seq"`
	}
	err := s.rdb.NewRaw(`SELECT g.epoch, g.group_info, g.bytes_used, g.created_at, m.joined_seq
FROM groups g JOIN group_members m ON m.group_id = g.id AND m.device_id = ? AND m.left_seq IS NULL
WHERE g.id = ?`, deviceID, groupID).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotMember()
	}
	if err != nil {
		return nil, fmt.Errorf("get group: %w", err)
	}
	g := &models.Group{ID: groupID, Epoch: uint64(row.Epoch), GroupInfo: row.GroupInfo, BytesUsed: row.BytesUsed,
		CreatedAt: models.FromMillis(row.CreatedAt), JoinedSeq: row.JoinedSeq}
	if g.Members, err = s.groupMembers(ctx, groupID); err != nil {
		return nil, err
	}
	return g, nil
}

func (s *Store) groupMembers(ctx context.Context, groupID []byte) ([]models.GroupMember, error) {
	var rows []struct {
		DeviceID  string `bun:"device_id"`
		UserID    string `bun:"user_id"`
		Username  string `bun:"username"`
		Display   string `bun:"display_name"`
		JoinedSeq int64  `bun:"joined_seq"`
		bindingCols
	}
	err := s.rdb.NewRaw(`SELECT m.device_id, d.user_id, u.username, u.display_name, m.joined_seq, `+bindingSelect+`
FROM group_members m JOIN devices d ON d.id = m.device_id JOIN users u ON u.id = d.user_id
WHERE m.group_id = ? AND m.left_seq IS NULL ORDER BY m.joined_seq, m.id`, groupID).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("list group members: %w", err)
	}
	out := make([]models.GroupMember, len(rows))
	for i, r := range rows {
		out[i] = models.GroupMember{DeviceID: r.DeviceID, UserID: r.UserID, Username: r.Username, DisplayName: r.Display, JoinedSeq: r.JoinedSeq,
			SignatureKey: r.SignatureKey, Binding: r.binding()}
	}
	return out, nil
}

// MaxHistoryPage bounds one page of group history.
const MaxHistoryPage = 1000

// GroupHistory returns up to limit events of a group after sequence number
// `after`, in order, that the device may see: group events sent while it was
// a member (joined_seq < seq <= left_seq, over each of its membership
// intervals) and events of the group addressed to it (its Welcome). A device
// that was never a member gets the not-member error. more reports whether
// further events follow.
func (s *Store) GroupHistory(ctx context.Context, deviceID string, groupID []byte, after int64, limit int) (events []*models.Event, more bool, err error) {
	if limit <= 0 || limit > MaxHistoryPage {
		limit = MaxHistoryPage
	}
	var n int
	if err := s.rdb.NewRaw(`SELECT COUNT(*) FROM group_members WHERE group_id = ? AND device_id = ?`, groupID, deviceID).Scan(ctx, &n); err != nil {
		return nil, false, fmt.Errorf("check membership: %w", err)
	}
	if n == 0 {
		return nil, false, errNotMember()
	}
	var rows []eventRow
	// Never an event above the durable watermark (see durable.go).
	durable := s.readCap()
	// Two index range scans (group events by (group_id, seq), events
	// addressed to the device by (recipient_device_id, seq)), merged.
	err = s.rdb.NewRaw(`SELECT * FROM (
  SELECT `+eventColumns+`
  FROM events e
  WHERE e.group_id = ? AND e.recipient_device_id IS NULL AND e.seq > ? AND e.seq <= ?
    AND EXISTS (SELECT 1 FROM group_members m
                WHERE m.group_id = e.group_id AND m.device_id = ?
                  AND m.joined_seq < e.seq AND (m.left_seq IS NULL OR e.seq <= m.left_seq))
  UNION ALL
  SELECT `+eventColumns+`
  FROM events e
  WHERE e.recipient_device_id = ? AND e.seq > ? AND e.seq <= ? AND e.group_id = ?
) AS history ORDER BY seq LIMIT ?`, groupID, after, durable, deviceID, deviceID, after, durable, groupID, limit+1).Scan(ctx, &rows)
	if err != nil {
		return nil, false, fmt.Errorf("read group history: %w", err)
	}
	if len(rows) > limit {
		rows, more = rows[:limit], true
	}
	events = make([]*models.Event, len(rows))
	for i := range rows {
		events[i] = rows[i].event()
	}
	return events, more, nil
}

// groupMembers returns the group's active member devices, given the group's
// members_version as read in this use case: from the writer's cache when the
// version has not moved since it was cached, else from the database. The
// result is shared: callers must not modify it.
func groupMembers(ctx context.Context, tx *Tx, groupID []byte, version int64) ([]string, error) {
	w := tx.w
	if m, ok := w.members[string(groupID)]; ok && m.version == version {
		return m.devices, nil
	}
	devices, err := activeMembers(ctx, tx, groupID)
	if err != nil {
		return nil, err
	}
	if len(w.members) >= maxCachedGroups {
		clear(w.members)
	}
	w.members[string(groupID)] = memberList{version: version, devices: devices}
	return devices, nil
}

// activeMembers lists the devices that are members of a group now.
func activeMembers(ctx context.Context, tx *Tx, groupID []byte) ([]string, error) {
	st, err := tx.stmt(ctx, qActiveMembers)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, groupID)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return ids, nil
}
