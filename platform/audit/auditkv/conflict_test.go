package auditkv

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// Which refused writes of "latest" are another replica's write winning,
// to be decided again, and which are failures.
func TestConflictDecision(t *testing.T) {
	wrongLast := func(code jetstream.ErrorCode) error {
		return &jetstream.APIError{Code: 400, ErrorCode: code, Description: "wrong last sequence: 7"}
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"Create on a live key", fmt.Errorf("%w: %s", wrongLast(jetstream.JSErrCodeStreamWrongLastSequence), "key exists"), true},
		{"Create on a live key, replicated bucket", fmt.Errorf("%w: %w", wrongLast(jetstream.JSErrCodeStreamWrongLastSequenceConstant), jetstream.ErrKeyExists), true},
		{"Update", fmt.Errorf("%w: %w", wrongLast(jetstream.JSErrCodeStreamWrongLastSequenceConstant), jetstream.ErrKeyRevisionMismatch), true},
		{"Create on a tombstone", wrongLast(jetstream.JSErrCodeStreamWrongLastSequence), true},
		{"Create on a tombstone, replicated bucket", wrongLast(jetstream.JSErrCodeStreamWrongLastSequenceConstant), true},
		{"another API error", &jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}, false},
		{"no responders", jetstream.ErrNoStreamResponse, false},
		{"timeout", context.DeadlineExceeded, false},
	} {
		if got := conflict(c.err); got != c.want {
			t.Errorf("%s (%v): conflict %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// tombstoneRace is a "latest" whose first Create loses a race on a
// tombstone in a replicated bucket: another replica's write lands first,
// and Create answers as nats.go v1.55.0 does there (jetstream/kv.go,
// Create: a deleted key is written at the tombstone's revision, and the
// server's refusal returned as it is), with JetStream error 10164, which
// a replicated stream gives for a wrong last sequence (jetstream/errors.go,
// JSErrCodeStreamWrongLastSequenceConstant). The embedded server is not
// replicated, so that refusal is played here; the rival's write is real.
type tombstoneRace struct {
	jetstream.KeyValue
	rival []byte
	raced bool
}

func (k *tombstoneRace) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if k.raced {
		return k.KeyValue.Create(ctx, key, value, opts...)
	}
	k.raced = true
	if _, err := k.KeyValue.Create(ctx, key, k.rival); err != nil {
		return 0, err
	}
	return 0, &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant, Description: "wrong last sequence: 2"}
}

// After `nats kv del` of "latest", two replicas publish at once and this
// one's Create loses: Put decides again (the rival's is older, so ours
// replaces it) rather than failing.
func TestPutRetriesALostCreateOnATombstone(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(testsupport.StartJetStream(t).Connect())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	checkpoint := func(at time.Time) audit.Checkpoint {
		return audit.Checkpoint{Version: 2, TakenAt: at, Object: "heads-" + at.UTC().Format(headsTimeLayout), KeyID: "k1"}
	}
	if err := s.Put(ctx, checkpoint(at.Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := s.kv.Delete(ctx, latest); err != nil {
		t.Fatal(err)
	}
	rival, ours := checkpoint(at.Add(-time.Second)), checkpoint(at)
	race := &tombstoneRace{KeyValue: s.kv, rival: mustJSON(t, rival)}
	s.kv = race
	if err := s.Put(ctx, ours); err != nil {
		t.Fatalf("Put after losing a Create on the tombstone: %v", err)
	}
	if !race.raced {
		t.Fatal("Put did not go through Create on the tombstone: the race was not played")
	}
	if cp, err := s.Latest(ctx); err != nil || cp == nil || cp.Object != ours.Object {
		t.Fatalf("latest %+v, %v; want ours, %s", cp, err, ours.Object)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
