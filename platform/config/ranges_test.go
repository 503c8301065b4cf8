package config

import (
	"testing"
	"time"
)

func TestIntRange(t *testing.T) {
	tests := []struct {
		name, val string
		want      int
		errs      []string
	}{
		{"unset", "", 20, nil},
		{"inside", "7", 7, nil},
		{"min", "1", 1, nil},
		{"max", "100", 100, nil},
		// The values of issue #17: each used to panic or mean something else.
		{"negative", "-1", 20, []string{"MAX_DELIVER: -1 is out of range (want 1 to 100)"}},
		{"zero", "0", 20, []string{"MAX_DELIVER: 0 is out of range (want 1 to 100)"}},
		{"huge", "100000", 20, []string{"MAX_DELIVER: 100000 is out of range (want 1 to 100)"}},
		{"overflow", "99999999999999999999", 20, []string{`MAX_DELIVER: "99999999999999999999" is not an integer (want 1 to 100)`}},
		{"word", "ten", 20, []string{`MAX_DELIVER: "ten" is not an integer (want 1 to 100)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := FromMap(map[string]string{"MAX_DELIVER": tc.val})
			if got := e.IntRange("MAX_DELIVER", 20, 1, 100, "h"); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
			checkErrs(t, e, tc.errs)
		})
	}
}

func TestIntRangeDefaultOutside(t *testing.T) {
	e := FromMap(nil)
	e.IntRange("X", 0, 1, 10, "h")
	checkErrs(t, e, []string{"X: default 0 outside 1-10"})
}

func TestDurationRange(t *testing.T) {
	tests := []struct {
		name, val string
		want      time.Duration
		errs      []string
	}{
		{"unset", "", time.Minute, nil},
		{"inside", "90s", 90 * time.Second, nil},
		{"zero", "0s", time.Minute, []string{"CATCHUP_INTERVAL: 0s is out of range (want 1s to 24h0m0s)"}},
		{"negative", "-5s", time.Minute, []string{"CATCHUP_INTERVAL: -5s is out of range (want 1s to 24h0m0s)"}},
		{"too long", "48h", time.Minute, []string{"CATCHUP_INTERVAL: 48h0m0s is out of range (want 1s to 24h0m0s)"}},
		{"bare number", "60", time.Minute, []string{`CATCHUP_INTERVAL: "60" is not a duration (want e.g. 30s, 5m, 1h30m, from 1s to 24h0m0s)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := FromMap(map[string]string{"CATCHUP_INTERVAL": tc.val})
			if got := e.DurationRange("CATCHUP_INTERVAL", time.Minute, time.Second, 24*time.Hour, "h"); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			checkErrs(t, e, tc.errs)
		})
	}
}
