package operator

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// ErrNotRepostable: the payout has no deposit to post again (it was
// posted, had nothing to post, does not add up, or was kept back fetched).
var ErrNotRepostable = ledger.ErrNotRepostable

// maxNote bounds an operator's note on a re-post.
const maxNote = 2000

// RepostPayout queues again the deposits of a GoCardless payout that an
// ERP refused, or whose posting ran out of retries, for the orchestrator
// to post (its payout flush, within PAYOUT_FLUSH_INTERVAL). The
// deposits keep their outcome ids, erp-poster's idempotency keys: a
// deposit the ERP already has is answered from erp-poster's record, never
// made twice. Audited under actor with the note. It returns how many
// deposits were queued. mlcctl payouts repost and the console use it.
func (d *Desk) RepostPayout(ctx context.Context, gcPayoutID, actor, note string) (int, error) {
	gcPayoutID = strings.TrimSpace(gcPayoutID)
	if gcPayoutID == "" || len(gcPayoutID) > 100 {
		return 0, fmt.Errorf("repost: give a GoCardless payout id (PO...) of at most 100 characters")
	}
	if actor == "" {
		return 0, fmt.Errorf("repost payout %s: no actor to audit", gcPayoutID)
	}
	if !utf8.ValidString(note) || len(note) > maxNote {
		return 0, fmt.Errorf("repost payout %s: note longer than %d bytes", gcPayoutID, maxNote)
	}
	return d.ledger.RepostPayout(ctx, gcPayoutID, actor, note)
}
