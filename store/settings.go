package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/sovereign-im/sovereign/models"
)

// StoredSettings are the settings overrides as stored: key → JSON value.
type StoredSettings map[string]json.RawMessage

type settingRow struct {
	Key   string `bun:"key"`
	Value string `bun:"value"`
}

// LoadSettings reads every stored override.
func (s *Store) LoadSettings(ctx context.Context) (StoredSettings, error) {
	var rows []settingRow
	if err := s.rdb.NewRaw(`SELECT key, value FROM settings`).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return settingsMap(rows), nil
}

func settingsMap(rows []settingRow) StoredSettings {
	out := make(StoredSettings, len(rows))
	for _, r := range rows {
		out[r.Key] = json.RawMessage(r.Value)
	}
	return out
}

// SettingsChange is an admin's change of settings: values to set (already
// validated by the caller) and keys to reset to the configuration.
type SettingsChange struct {
	Set   StoredSettings
	Reset []string
}

// UpdateSettings applies a change, records it in the audit log and, once
// committed, calls onCommit with every stored override. Hooks run on the
// writer in commit order, so concurrent changes reach onCommit in the
// order the database saw them.
func (s *Store) UpdateSettings(ctx context.Context, actor models.Actor, c SettingsChange, onCommit func(StoredSettings)) error {
	return s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		now := models.Millis(tx.Now())
		keys := make([]string, 0, len(c.Set))
		for k := range c.Set {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		changed := map[string]any{}
		for _, k := range keys {
			_, err := tx.NewRaw(`INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
				k, string(c.Set[k]), now, nullable(actor.UserID)).Exec(ctx)
			if err != nil {
				return fmt.Errorf("store setting %s: %w", k, err)
			}
			changed[k] = c.Set[k]
		}
		for _, k := range c.Reset {
			if _, ok := c.Set[k]; ok {
				return models.Errorf(models.EINVALID, "invalid_setting", "%s is both set and reset", k)
			}
			if _, err := tx.NewRaw(`DELETE FROM settings WHERE key = ?`, k).Exec(ctx); err != nil {
				return fmt.Errorf("reset setting %s: %w", k, err)
			}
			changed[k] = nil
		}
		if err := AppendAudit(ctx, tx, models.AuditEntry{Actor: actor, Action: models.AuditSettingsUpdate,
			TargetType: models.TargetSettings, Detail: changed}); err != nil {
			return err
		}
		var rows []settingRow
		if err := tx.NewRaw(`SELECT key, value FROM settings`).Scan(ctx, &rows); err != nil {
			return fmt.Errorf("read settings: %w", err)
		}
		all := settingsMap(rows)
		if onCommit != nil {
			tx.AfterCommit(func() { onCommit(all) })
		}
		return nil
	})
}
