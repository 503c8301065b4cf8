package gcsim

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// ID prefixes GoCardless uses.
const (
	prefixCreditor     = "CR"
	prefixCustomer     = "CU"
	prefixBankAccount  = "BA"
	prefixMandate      = "MD"
	prefixPayment      = "PM"
	prefixRefund       = "RF"
	prefixSubscription = "SB"
	prefixEvent        = "EV"
	prefixPayout       = "PO"
	prefixWebhook      = "WB"
	// Billing requests, their flows and mandate requests have three-letter
	// prefixes (billing_requests.json: BRQ123, MRQ123; billing_request_flows.json: BRF123).
	prefixBillingRequest = "BRQ"
	prefixFlow           = "BRF"
	prefixMandateRequest = "MRQ"
)

// newRand returns a generator seeded with seed, or from crypto/rand when
// seed is 0, so that a seeded simulator hands out the same IDs every run.
func newRand(seed uint64) *rand.Rand {
	var key [32]byte
	if seed == 0 {
		_, _ = crand.Read(key[:])
	} else {
		binary.LittleEndian.PutUint64(key[:], seed)
	}
	return rand.New(rand.NewChaCha8(key))
}

// newID returns prefix followed by 12 upper-case alphanumerics, the shape of
// GoCardless IDs (e.g. PM000A1B2C3D4E). Callers hold s.mu.
func (s *Sim) newID(prefix string) string {
	for {
		b := make([]byte, 0, 14)
		b = append(b, prefix...)
		for range 12 {
			b = append(b, idAlphabet[s.rng.IntN(len(idAlphabet))])
		}
		id := string(b)
		if !s.usedIDs[id] {
			s.usedIDs[id] = true
			return id
		}
	}
}

// newRequestID returns a UUID-shaped request id. Callers hold s.mu.
func (s *Sim) newRequestID() string {
	a, b := s.rng.Uint64(), s.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}
