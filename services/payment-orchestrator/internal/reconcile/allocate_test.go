package reconcile

import (
	"math/rand/v2"
	"testing"
)

// allocate's promise: whole units adding up to the total exactly, each
// part less than a unit from its tenths, for every total that rounding
// the parts' sum can give; any other total refused.
func TestAllocate(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		parts := make([]int64, 1+rnd.IntN(8))
		var sum int64
		for i := range parts {
			parts[i] = rnd.Int64N(40001) - 20000
			sum += parts[i]
		}
		lo, hi := floorDiv(sum, 10), floorDiv(sum+9, 10) // the sum rounded down and up
		for _, total := range []int64{lo, hi} {
			got, err := allocate(parts, total)
			if err != nil {
				t.Fatalf("allocate(%v, %d): %v", parts, total, err)
			}
			var n int64
			for i, a := range got {
				n += a
				if d := a*10 - parts[i]; d <= -10 || d >= 10 {
					t.Fatalf("allocate(%v, %d) = %v: part %d moved %d tenths", parts, total, got, i, d)
				}
			}
			if n != total {
				t.Fatalf("allocate(%v, %d) = %v adds up to %d", parts, total, got, n)
			}
		}
		if _, err := allocate(parts, hi+1); err == nil {
			t.Fatalf("allocate(%v, %d) accepted a total beyond rounding", parts, hi+1)
		}
		if _, err := allocate(parts, lo-1); err == nil {
			t.Fatalf("allocate(%v, %d) accepted a total beyond rounding", parts, lo-1)
		}
	}
	// The largest remainders go up: -20.4 and -30.7 to -51 are -20, -31.
	got, err := allocate([]int64{-204, -307}, -51)
	if err != nil || got[0] != -20 || got[1] != -31 {
		t.Errorf("allocate(-20.4, -30.7 to -51) = %v, %v; want [-20 -31]", got, err)
	}
}
