package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ml-connector/ml-connector/platform/bus"
)

// deadLetters is how many messages the bus holds in MLC_DLQ: every message
// a service gave up on (poison, or its deliveries used up) and every event
// gc-webhook refused. The orchestrator turns each into an exception of
// kind dead_letter; the demo counts both, so that a dead letter nobody
// turned into an exception is seen too.
func (n *natsServer) deadLetters() (int, error) {
	if n.srv == nil {
		return 0, errors.New("NATS is down")
	}
	acc, err := n.srv.JszAccount(&server.JSzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Streams: true})
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", bus.StreamDLQ, err)
	}
	for _, s := range acc.Streams {
		if s.Name == bus.StreamDLQ {
			return int(s.State.Msgs), nil
		}
	}
	return 0, nil // not declared yet: nothing dead-lettered
}

// measureAll is measure with the dead letters the bus holds.
func (s *simulators) measureAll(ctx context.Context, nats *natsServer) (tally, error) {
	t, err := measure(ctx, s.db, s.gc, s.book)
	if err != nil {
		return t, err
	}
	t.deadLetters, err = nats.deadLetters()
	return t, err
}

// deadLetterLine is the reconciliation's count of dead letters.
func (t tally) deadLetterLine() string {
	return fmt.Sprintf("dead letters: %d on %s, %d of them exceptions (kind dead_letter, listed above)", t.deadLetters, bus.StreamDLQ, t.deadLetterExceptions)
}
