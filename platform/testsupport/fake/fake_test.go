package fake_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := fake.NewClock(start)
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90 * time.Second)) {
		t.Errorf("Now = %v", got)
	}
}

func TestLogConcurrentWriters(t *testing.T) {
	var l fake.Log
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { fmt.Fprintf(&l, "line %02d\n", i) })
	}
	wg.Wait()
	if n := len(l.String()); n != 50*len("line 00\n") {
		t.Errorf("%d bytes written, want %d", n, 50*len("line 00\n"))
	}
}
