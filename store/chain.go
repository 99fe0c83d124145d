package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/sovereign-im/sovereign/models"
)

// chainHint is a group's chain head as this use case last read or set it
// (see Tx.knowChainHead), so placing an event on the chain needs no read.
type chainHint struct {
	group []byte
	head  []byte // nil: the group has no chained event yet (genesis)
	ok    bool
}

// knowChainHead records groups.chain_head of group as the use case just
// read it, inside its transaction (the send folds it into its group query):
// the next chained event of that group in this use case links to it
// without reading it again. appendChain keeps the hint current.
func (tx *Tx) knowChainHead(group, head []byte) {
	tx.chain = chainHint{group: group, head: head, ok: true}
}

// placeOnChain sets the prev_hash and hash of the chained event ev, whose
// Seq is already assigned (Tx.takeSeq), from its group's chain head
// (docs/verification.md), before the event is inserted. It runs inside the
// writer's transaction: the head is read (or known from this use case's
// group query) and advanced (advanceChain) in the same batch as the
// insert, and on PostgreSQL the batch advisory lock (beginBatch) keeps
// instances from appending to one group concurrently, so the chain is
// linear in seq order.
func placeOnChain(ctx context.Context, tx *Tx, ev *models.Event) error {
	var head []byte
	if tx.chain.ok && bytes.Equal(tx.chain.group, ev.GroupID) {
		head = tx.chain.head
	} else {
		get, err := tx.stmt(ctx, qChainHead)
		if err != nil {
			return err
		}
		if err := get.QueryRowContext(ctx, ev.GroupID).Scan(&head); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("read chain head: no group %x", ev.GroupID)
			}
			return fmt.Errorf("read chain head: %w", err)
		}
	}
	if len(head) == 0 {
		head = models.ChainGenesis
	}
	ev.PrevHash = head
	ev.Hash = models.ChainHash(head, ev)
	return nil
}

// advanceChain moves the group's chain head to the just-inserted chained
// event ev and counts its stored bytes in the group's bytes_used, in one
// UPDATE.
func advanceChain(ctx context.Context, tx *Tx, ev *models.Event, stored int) error {
	adv, err := tx.stmt(ctx, qAdvanceChain)
	if err != nil {
		return err
	}
	if _, err := adv.ExecContext(ctx, stored, ev.Hash, ev.GroupID); err != nil {
		return fmt.Errorf("advance chain head: %w", err)
	}
	tx.knowChainHead(ev.GroupID, ev.Hash)
	return nil
}
