package auditkv

import "time"

// SetHeadsGrace sets how long heads objects are kept, as Run does from its
// interval, for tests that take checkpoints without Run.
func (s *Store) SetHeadsGrace(d time.Duration) { s.grace = d }
