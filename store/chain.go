package store

import (
	"context"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
)

// appendChain places the just-inserted chained event ev on its group's
// hash chain (docs/verification.md) and counts its stored bytes in the
// group's bytes_used. It runs inside the writer's transaction: the head is
// read and advanced in the same batch as the insert, and on PostgreSQL the
// batch advisory lock (beginBatch) keeps instances from appending to one
// group concurrently, so the chain is linear in seq order.
func appendChain(ctx context.Context, tx *Tx, ev *models.Event, stored int) error {
	get, err := tx.stmt(ctx, qChainHead)
	if err != nil {
		return err
	}
	var head []byte
	if err := get.QueryRowContext(ctx, ev.GroupID).Scan(&head); err != nil {
		return fmt.Errorf("read chain head: %w", err)
	}
	if len(head) == 0 {
		head = models.ChainGenesis
	}
	ev.PrevHash = head
	ev.Hash = models.ChainHash(head, ev)
	set, err := tx.stmt(ctx, qSetEventChain)
	if err != nil {
		return err
	}
	if _, err := set.ExecContext(ctx, ev.PrevHash, ev.Hash, ev.Seq); err != nil {
		return fmt.Errorf("store event hash: %w", err)
	}
	adv, err := tx.stmt(ctx, qAdvanceChain)
	if err != nil {
		return err
	}
	if _, err := adv.ExecContext(ctx, stored, ev.Hash, ev.GroupID); err != nil {
		return fmt.Errorf("advance chain head: %w", err)
	}
	return nil
}
