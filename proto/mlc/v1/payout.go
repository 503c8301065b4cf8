package mlcv1

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
