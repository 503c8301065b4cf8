package mlcv1

import "strings"

// Bounds of one PostPayoutRequest, shared by its producer (the
// orchestrator, which checks a payout against them before queueing its
// deposits) and erp-poster, which refuses a request beyond them: far
// above one creditor's daily payout, low enough to bound memory and the
// time one posting takes. The ERP connectors accept at least as many
// (erp-poster's tests hold them to it).
const (
	MaxPayoutLines = 20000
	MaxPayoutFees  = 20000
)

// PayoutKey is the key of a payout's deposit into one ERP company:
// payout/<ifs|jde>/<connection>/<company>/<payout_id>. erp-poster files
// the posting under it (erp_postings.key) and the orchestrator queues the
// deposit under it (pending_outcomes.outcome_id, payout_postings), so that
// a deposit and its posting join on it; both build it here.
func PayoutKey(ref *ErpRef, payoutID string) string {
	erp := strings.ToLower(strings.TrimPrefix(ref.GetErp().String(), "ERP_"))
	return "payout/" + erp + "/" + ref.GetConnection() + "/" + ref.GetCompany() + "/" + payoutID
}
