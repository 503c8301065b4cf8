package auditkv

import "time"

// SetHeadsGrace sets how long heads objects are kept, as Run does from its
// interval, for tests that take checkpoints without Run.
func (s *Store) SetHeadsGrace(d time.Duration) { s.grace = d }

// SetHeadsFetchTimeout sets the time a heads object has to be copied for
// a verification: base plus its size at rate bytes a second.
func (s *Store) SetHeadsFetchTimeout(base time.Duration, rate int64) {
	s.headsFetchBase, s.headsFetchRate = base, rate
}
