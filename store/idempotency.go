package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sovereign-im/sovereign/models"
)

// IdempotencyTTL is how long an Idempotency-Key is remembered: at least
// this long (cleanup deletes older keys; until then they still answer).
const IdempotencyTTL = 24 * time.Hour

// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
const MaxIdempotencyKeyLen = 255

// requestHash fingerprints a request: the operation, then each part with a
// length prefix, so that no two different requests share a hash.
func requestHash(op string, parts ...[]byte) []byte {
	h := sha256.New()
	h.Write([]byte(op))
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

// lookupIdempotent finds the result recorded for (device, key) through
// the read pool (a cheap early answer for retries, before the write).
func (s *Store) lookupIdempotent(ctx context.Context, deviceID, key string, hash []byte, out any) (found bool, err error) {
	return decodeIdempotent(s.rdb.DB.QueryRowContext(ctx, s.eng.rebind(qIdemLookup), deviceID, key), hash, out)
}

// lookupIdempotentTx is the authoritative lookup inside the write: a
// concurrent retry may have been committed since the early read.
func lookupIdempotentTx(ctx context.Context, tx *Tx, deviceID, key string, hash []byte, out any) (found bool, err error) {
	st, err := tx.stmt(ctx, qIdemLookup)
	if err != nil {
		return false, err
	}
	return decodeIdempotent(st.QueryRowContext(ctx, deviceID, key), hash, out)
}

// decodeIdempotent reads a lookup: found is false when the key is new. The
// same key with a different request is an error: a key names one request.
func decodeIdempotent(row *sql.Row, hash []byte, out any) (found bool, err error) {
	var reqHash, response []byte
	err = row.Scan(&reqHash, &response)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read idempotency key: %w", err)
	}
	if !bytes.Equal(reqHash, hash) {
		return false, models.Errorf(models.EINVALID, "idempotency_key_reused",
			"this Idempotency-Key was already used by this device for a different request; use a fresh key for each new request")
	}
	if err := json.Unmarshal(response, out); err != nil {
		return false, fmt.Errorf("decode idempotent response: %w", err)
	}
	return true, nil
}

// saveIdempotent records the result of the request named by (device, key).
func saveIdempotent(ctx context.Context, tx *Tx, deviceID, key string, hash []byte, result any) error {
	raw, err := json.Marshal(result)
	if err != nil {
		return fmt.Errorf("encode idempotent response: %w", err)
	}
	st, err := tx.stmt(ctx, qIdemSave)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, deviceID, key, hash, raw, models.Millis(tx.Now())); err != nil {
		return fmt.Errorf("save idempotency key: %w", err)
	}
	return nil
}

// DeleteExpiredIdempotencyKeys forgets keys recorded before `before`
// (callers pass now minus IdempotencyTTL or more), 1,000 per use case.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			res, err := tx.NewRaw(`DELETE FROM idempotency_keys WHERE (device_id, key) IN
(SELECT device_id, key FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
				models.Millis(before), retentionChunk).Exec(ctx)
			if err != nil {
				return fmt.Errorf("delete idempotency keys: %w", err)
			}
			n, _ = res.RowsAffected()
			return nil
		})
		total += n
		if err != nil || n < retentionChunk {
			return total, err
		}
	}
}
