package retry_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/retry"
)

func TestDelayIsBoundedFullJitter(t *testing.T) {
	b := retry.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		n       int
		ceiling time.Duration
	}{{0, 100 * time.Millisecond}, {1, 200 * time.Millisecond}, {3, 800 * time.Millisecond}, {4, time.Second}, {70, time.Second}}
	for _, tc := range tests {
		var below, above bool
		for range 2000 {
			d := b.Delay(tc.n)
			if d < 0 || d > tc.ceiling {
				t.Fatalf("retry %d waited %v, outside [0, %v]", tc.n, d, tc.ceiling)
			}
			below = below || d < tc.ceiling/4
			above = above || d > tc.ceiling*3/4
		}
		if !below || !above {
			t.Errorf("retry %d: delays not spread over [0, %v] (jitter missing)", tc.n, tc.ceiling)
		}
	}
}

func TestAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"Sat, 21 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sat, 21 Nov 2026 11:59:00 GMT", 0, true},
		{"-3", 0, false},
		{"soon", 0, false},
	}
	for _, tc := range tests {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Retry-After", tc.header)
		}
		got, ok := retry.After(h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Retry-After %q: %v %v, want %v %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSleep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("sleep past the deadline: %v", err)
	}
	if err := retry.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("short sleep: %v", err)
	}
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	if err := retry.Sleep(cancelled, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep on a cancelled context: %v", err)
	}
}

func TestStatus(t *testing.T) {
	for code, want := range map[int]bool{200: false, 400: false, 401: false, 409: false, 412: false, 422: false, 429: true, 500: true, 502: true, 503: true, 504: true, 501: false} {
		if got := retry.Status(code); got != want {
			t.Errorf("Status(%d) = %v, want %v", code, got, want)
		}
	}
}
