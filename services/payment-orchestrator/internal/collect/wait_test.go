package collect

import (
	"testing"
	"time"
)

func TestCustomerWaitDoublesUpToTheCap(t *testing.T) {
	tests := []struct {
		first      time.Duration
		deliveries uint64
		want       time.Duration
	}{
		{30 * time.Second, 1, 30 * time.Second},
		{30 * time.Second, 2, time.Minute},
		{30 * time.Second, 5, 8 * time.Minute},
		{30 * time.Second, 6, 10 * time.Minute},
		{30 * time.Second, 20, 10 * time.Minute},
		{30 * time.Second, 1 << 40, 10 * time.Minute},
		{time.Second, 4, 8 * time.Second},
		{time.Hour, 3, time.Hour}, // configured above the cap: kept, never doubled
	}
	for _, tt := range tests {
		c := &Collector{CustomerWait: tt.first}
		if got := c.customerWait(tt.deliveries); got != tt.want {
			t.Errorf("CustomerWait %v, delivery %d: wait %v, want %v", tt.first, tt.deliveries, got, tt.want)
		}
	}
	// With the defaults an invoice may precede its customer for hours.
	c := &Collector{CustomerWait: 30 * time.Second}
	var total time.Duration
	for n := uint64(1); n < 20; n++ {
		total += c.customerWait(n)
	}
	if total < 2*time.Hour {
		t.Errorf("20 deliveries span %v, want over 2h", total)
	}
}
