package breaker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/ml-connector/ml-connector/platform/breaker"
)

var errDown = errors.New("503 from upstream")
var errInvalid = errors.New("422 validation failed")

func TestBreakerOpensAndRecovers(t *testing.T) {
	cb := breaker.New[int]("test/opens", breaker.Options{
		Failures: 3, OpenFor: 100 * time.Millisecond,
		IsSuccessful: func(err error) bool { return err == nil || errors.Is(err, errInvalid) },
	})
	fail := func() (int, error) { return 0, errDown }
	ok := func() (int, error) { return 1, nil }

	// Client errors do not count: the system answered.
	for range 10 {
		_, _ = cb.Execute(func() (int, error) { return 0, errInvalid })
	}
	if cb.State() != gobreaker.StateClosed {
		t.Fatalf("validation errors opened the breaker")
	}
	for range 3 {
		_, _ = cb.Execute(fail)
	}
	if s, _ := breaker.State("test/opens"); s != gobreaker.StateOpen || cb.State() != gobreaker.StateOpen {
		t.Fatalf("after 3 failures: %v (metric %v), want open", cb.State(), s)
	}
	called := false
	_, err := cb.Execute(func() (int, error) { called = true; return 1, nil })
	if !breaker.IsOpen(err) || called {
		t.Fatalf("open breaker let a call through (err %v)", err)
	}
	time.Sleep(150 * time.Millisecond)
	if v, err := cb.Execute(ok); err != nil || v != 1 {
		t.Fatalf("half-open probe: %v %v", v, err)
	}
	if s, _ := breaker.State("test/opens"); s != gobreaker.StateClosed {
		t.Errorf("after a good probe: %v, want closed", s)
	}
}
