package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// specHash recomputes a record's hash from the encoding documented in the
// package comment, independently of the package's own code, so that the
// documentation an auditor would rely on is checked too.
func specHash(r audit.Record) []byte {
	var buf bytes.Buffer
	field := func(b []byte) {
		binary.Write(&buf, binary.BigEndian, uint64(len(b)))
		buf.Write(b)
	}
	seq := make([]byte, 8)
	binary.BigEndian.PutUint64(seq, uint64(r.Seq))
	field([]byte("mlc-audit-v1"))
	field([]byte(r.AggregateType))
	field([]byte(r.AggregateID))
	field(seq)
	field([]byte(r.OccurredAt.UTC().Format(time.RFC3339Nano)))
	field([]byte(r.Actor))
	field([]byte(r.Action))
	field(r.Payload)
	field(r.PrevHash)
	sum := sha256.Sum256(buf.Bytes())
	return sum[:]
}

func appendN(t *testing.T, q audit.Querier, typ, id string, n int) []audit.Record {
	t.Helper()
	recs := make([]audit.Record, n)
	for i := range recs {
		r, err := audit.Append(context.Background(), q, audit.Entry{
			AggregateType: typ,
			AggregateID:   id,
			Actor:         "payment-orchestrator",
			Action:        fmt.Sprintf("step.%d", i+1),
			Payload:       map[string]any{"step": i + 1, "note": "<&> ünïcode"},
		})
		if err != nil {
			t.Fatalf("Append %d: %v", i+1, err)
		}
		recs[i] = r
	}
	return recs
}

func TestAppendBuildsChain(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))

	first, err := audit.Append(ctx, pool, audit.Entry{
		AggregateType: "collection",
		AggregateID:   "42",
		Actor:         "payment-orchestrator",
		Action:        "payment.created",
		Payload:       map[string]any{"gc_payment_id": "PM001", "amount_minor": 12345},
		OccurredAt:    at,
	})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	wantAt := time.Date(2026, 3, 4, 4, 6, 7, 123456000, time.UTC)
	switch {
	case first.ID == 0:
		t.Error("ID not set")
	case first.Seq != 1:
		t.Errorf("Seq = %d, want 1", first.Seq)
	case !first.OccurredAt.Equal(wantAt) || first.OccurredAt.Location() != time.UTC:
		t.Errorf("OccurredAt = %v, want %v (UTC, truncated to µs)", first.OccurredAt, wantAt)
	case !bytes.Equal(first.PrevHash, make([]byte, 32)):
		t.Errorf("first PrevHash = %x, want 32 zero bytes", first.PrevHash)
	case !bytes.Equal(first.Hash, specHash(first)):
		t.Errorf("Hash = %x, want %x as documented", first.Hash, specHash(first))
	case string(first.Payload) != `{"amount_minor":12345,"gc_payment_id":"PM001"}`:
		t.Errorf("Payload = %s", first.Payload)
	}

	more := appendN(t, pool, "collection", "42", 3)
	all := append([]audit.Record{first}, more...)
	for i := 1; i < len(all); i++ {
		if all[i].Seq != int64(i+1) {
			t.Errorf("record %d: Seq = %d", i, all[i].Seq)
		}
		if !bytes.Equal(all[i].PrevHash, all[i-1].Hash) {
			t.Errorf("record %d: PrevHash is not the previous Hash", i)
		}
	}

	listed, err := audit.List(ctx, pool, "collection", "42")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(listed) != len(all) {
		t.Fatalf("List returned %d records, want %d", len(listed), len(all))
	}
	for i := range all {
		got, want := listed[i], all[i]
		if got.ID != want.ID || got.Seq != want.Seq || !got.OccurredAt.Equal(want.OccurredAt) ||
			got.Actor != want.Actor || got.Action != want.Action || string(got.Payload) != string(want.Payload) ||
			!bytes.Equal(got.PrevHash, want.PrevHash) || !bytes.Equal(got.Hash, want.Hash) {
			t.Errorf("List[%d] = %+v\nwant %+v", i, got, want)
		}
		// What was stored hashes to what was returned: nothing was lost
		// between Go and PostgreSQL (time precision, JSON text).
		if !bytes.Equal(specHash(got), got.Hash) {
			t.Errorf("List[%d]: stored row does not hash to its hash", i)
		}
	}

	if err := audit.Verify(ctx, pool, "collection", "42"); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := audit.Verify(ctx, pool, "collection", "no-such"); err != nil {
		t.Errorf("Verify of an aggregate without entries: %v", err)
	}
	if recs, err := audit.List(ctx, pool, "collection", "no-such"); err != nil || len(recs) != 0 {
		t.Errorf("List of an aggregate without entries = %v, %v", recs, err)
	}
}

// Length prefixes keep field boundaries in the hash: moving a character
// from one field to the next must change it.
func TestHashSeparatesFields(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	at := time.Now()
	entries := []audit.Entry{
		{AggregateType: "ab", AggregateID: "c", Actor: "x", Action: "y", Payload: "p", OccurredAt: at},
		{AggregateType: "a", AggregateID: "bc", Actor: "x", Action: "y", Payload: "p", OccurredAt: at},
		{AggregateType: "a", AggregateID: "b", Actor: "cx", Action: "y", Payload: "p", OccurredAt: at},
	}
	seen := map[string]int{}
	for i, e := range entries {
		r, err := audit.Append(ctx, pool, e)
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := seen[string(r.Hash)]; dup {
			t.Errorf("entries %d and %d hash alike", j, i)
		}
		seen[string(r.Hash)] = i
	}
}

func TestAppendRejectsIncompleteEntries(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	valid := audit.Entry{AggregateType: "mandate", AggregateID: "MD1", Actor: "gc-webhook", Action: "mandate.active"}
	tests := []struct {
		name string
		edit func(*audit.Entry)
	}{
		{"no aggregate type", func(e *audit.Entry) { e.AggregateType = "" }},
		{"no aggregate id", func(e *audit.Entry) { e.AggregateID = "" }},
		{"no actor", func(e *audit.Entry) { e.Actor = "" }},
		{"no action", func(e *audit.Entry) { e.Action = "" }},
		{"payload not json", func(e *audit.Entry) { e.Payload = make(chan int) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid
			tt.edit(&e)
			if _, err := audit.Append(ctx, pool, e); err == nil {
				t.Fatal("Append succeeded")
			}
		})
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("audit_log has %d rows (%v), want 0", n, err)
	}
}

// noTx runs statements but can neither begin a transaction nor is one.
type noTx struct{ p *pgxpool.Pool }

func (q noTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return q.p.Exec(ctx, sql, args...)
}
func (q noTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return q.p.Query(ctx, sql, args...)
}
func (q noTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return q.p.QueryRow(ctx, sql, args...)
}

func TestAppendNeedsTransaction(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	_, err := audit.Append(ctx, noTx{pool}, audit.Entry{AggregateType: "a", AggregateID: "1", Actor: "x", Action: "y"})
	if err == nil {
		t.Fatal("Append without a transaction succeeded")
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM audit_heads)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows written (%v), want 0", n, err)
	}
}

func TestAppendJoinsCallerTransaction(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	entry := audit.Entry{AggregateType: "collection", AggregateID: "7", Actor: "payment-orchestrator", Action: "state.changed"}

	errRollback := errors.New("state change failed")
	err := database.WithTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := audit.Append(ctx, tx, entry); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("WithTx = %v", err)
	}
	if recs, _ := audit.List(ctx, pool, "collection", "7"); len(recs) != 0 {
		t.Fatalf("rolled-back transaction left %d audit rows", len(recs))
	}

	var rec audit.Record
	err = database.WithTx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		rec, err = audit.Append(ctx, tx, entry)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Seq != 1 {
		t.Errorf("Seq after a rolled-back append = %d, want 1", rec.Seq)
	}
	if err := audit.Verify(ctx, pool, "collection", "7"); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestConcurrentAppendsMakeGaplessChain(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	const writers, each = 8, 25

	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				// Half the writers append inside a transaction of their
				// own making, as services do; half hand over the pool.
				var err error
				e := audit.Entry{AggregateType: "mandate", AggregateID: "MD1", Actor: fmt.Sprintf("w%d", w),
					Action: "tick", Payload: map[string]int{"writer": w, "i": i}}
				if w%2 == 0 {
					_, err = audit.Append(ctx, pool, e)
				} else {
					err = database.WithTx(ctx, pool, func(tx pgx.Tx) error {
						_, err := audit.Append(ctx, tx, e)
						return err
					})
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Append: %v", err)
	}

	recs, err := audit.List(ctx, pool, "mandate", "MD1")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != writers*each {
		t.Fatalf("%d records, want %d", len(recs), writers*each)
	}
	seen := map[string]bool{}
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has seq %d: chain has a gap or duplicate", i, r.Seq)
		}
		seen[string(r.Payload)] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct payloads, want %d", len(seen), writers*each)
	}
	if err := audit.Verify(ctx, pool, "mandate", "MD1"); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// AppendAll chains each aggregate's entries in the order given, after
// what the aggregate already had, whatever the interleaving.
func TestAppendAllChainsEachAggregate(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	before := appendN(t, pool, "collection", "B", 2)

	entry := func(id string, n int) audit.Entry {
		return audit.Entry{AggregateType: "collection", AggregateID: id, Actor: "payment-orchestrator",
			Action: fmt.Sprintf("%s.%d", id, n), Payload: map[string]int{"n": n}}
	}
	entries := []audit.Entry{entry("B", 3), entry("A", 1), entry("B", 4), entry("C", 1), entry("A", 2)}
	var recs []audit.Record
	err := database.WithTx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		recs, err = audit.AppendAll(ctx, tx, entries)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantSeq := []int64{3, 1, 4, 1, 2}
	for i, r := range recs {
		if r.Action != entries[i].Action || r.Seq != wantSeq[i] || r.ID == 0 {
			t.Errorf("record %d = %s seq %d id %d, want %s seq %d", i, r.Action, r.Seq, r.ID, entries[i].Action, wantSeq[i])
		}
		if !bytes.Equal(r.Hash, specHash(r)) {
			t.Errorf("record %d does not hash as documented", i)
		}
	}
	if !bytes.Equal(recs[0].PrevHash, before[1].Hash) || !bytes.Equal(recs[2].PrevHash, recs[0].Hash) ||
		!bytes.Equal(recs[4].PrevHash, recs[1].Hash) || !bytes.Equal(recs[3].PrevHash, make([]byte, 32)) {
		t.Error("entries not chained to their aggregate's previous entry")
	}
	if rep, err := audit.VerifyAll(ctx, pool); err != nil || len(rep.Broken) > 0 {
		t.Errorf("VerifyAll = %+v, %v", rep, err)
	}

	// No entries, no writes (and no round trips).
	err = database.WithTx(ctx, pool, func(tx pgx.Tx) error {
		recs, err := audit.AppendAll(ctx, tx, nil)
		if len(recs) != 0 {
			t.Errorf("AppendAll(nil) = %d records", len(recs))
		}
		return err
	})
	if err != nil {
		t.Errorf("AppendAll(nil): %v", err)
	}

	// A bad entry anywhere writes none of them.
	err = database.WithTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := audit.AppendAll(ctx, tx, []audit.Entry{entry("A", 3), {AggregateType: "collection", AggregateID: "A"}})
		return err
	})
	if err == nil {
		t.Fatal("AppendAll took an entry without actor or action")
	}
	if got, _ := audit.List(ctx, pool, "collection", "A"); len(got) != 2 {
		t.Errorf("aggregate A has %d entries after a refused AppendAll, want 2", len(got))
	}
}

// Transactions appending to the same aggregates in opposite orders take
// the heads in one order, so they queue instead of deadlocking.
func TestAppendAllOverlappingTransactions(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	ids := []string{"A", "B", "C", "D"}
	const writers, rounds = 4, 20

	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			order := slices.Clone(ids)
			if w%2 == 1 {
				slices.Reverse(order)
			}
			for range rounds {
				var entries []audit.Entry
				for _, id := range order {
					entries = append(entries, audit.Entry{AggregateType: "mandate", AggregateID: id, Actor: "w", Action: "tick"})
				}
				errs <- database.WithTx(ctx, pool, func(tx pgx.Tx) error {
					_, err := audit.AppendAll(ctx, tx, entries)
					return err
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("AppendAll: %v", err)
		}
	}
	for _, id := range ids {
		if recs, _ := audit.List(ctx, pool, "mandate", id); len(recs) != writers*rounds {
			t.Errorf("mandate %s has %d entries, want %d", id, len(recs), writers*rounds)
		}
	}
	if rep, err := audit.VerifyAll(ctx, pool); err != nil || len(rep.Broken) > 0 {
		t.Errorf("VerifyAll = %+v, %v", rep, err)
	}
}

func TestDatabaseRefusesChanges(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	appendN(t, pool, "collection", "1", 3)

	tests := []struct {
		name, sql, msg string
	}{
		{"update audit_log", `UPDATE audit_log SET payload = '{"amount_minor": 1}' WHERE seq = 2`, "audit_log is append-only"},
		{"delete from audit_log", `DELETE FROM audit_log WHERE seq = 3`, "audit_log is append-only"},
		{"truncate audit_log", `TRUNCATE audit_log`, "audit_log is append-only"},
		{"delete a head", `DELETE FROM audit_heads`, "audit_heads rows cannot be removed"},
		{"truncate heads", `TRUNCATE audit_heads`, "audit_heads rows cannot be removed"},
		{"move a head back", `UPDATE audit_heads SET seq = 2, hash = (SELECT hash FROM audit_log WHERE seq = 2)`, "head may only advance"},
		{"move a head to a row that does not exist", `UPDATE audit_heads SET seq = 4, hash = decode(repeat('00', 32), 'hex')`, "head may only advance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, tt.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				t.Fatalf("error = %v, want the database to refuse", err)
			}
			if pgErr.Code != "23001" || !strings.Contains(pgErr.Message, tt.msg) {
				t.Fatalf("error = %s %q, want 23001 %q", pgErr.Code, pgErr.Message, tt.msg)
			}
		})
	}
	recs, err := audit.List(ctx, pool, "collection", "1")
	if err != nil || len(recs) != 3 {
		t.Fatalf("after refused changes: %d records, %v; want 3", len(recs), err)
	}
	if err := audit.Verify(ctx, pool, "collection", "1"); err != nil {
		t.Fatalf("Verify after refused changes: %v", err)
	}
}

// tamper runs sql with the audit triggers disabled, as the table owner
// could, and enables them again.
func tamper(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	err := database.WithTx(context.Background(), pool, func(tx pgx.Tx) error {
		for _, s := range []string{
			`ALTER TABLE audit_log DISABLE TRIGGER USER`,
			`ALTER TABLE audit_heads DISABLE TRIGGER USER`,
			sql,
			`ALTER TABLE audit_log ENABLE TRIGGER USER`,
			`ALTER TABLE audit_heads ENABLE TRIGGER USER`,
		} {
			if _, err := tx.Exec(context.Background(), s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	const victim = `aggregate_type = 'collection' AND aggregate_id = 'victim'`
	tests := []struct {
		name    string
		sql     string
		seq     int64
		problem audit.Problem
	}{
		{"payload changed", `UPDATE audit_log SET payload = '{"step":3,"note":"refunded"}' WHERE ` + victim + ` AND seq = 3`,
			3, audit.ProblemModified},
		{"payload reformatted only", `UPDATE audit_log SET payload = replace(payload::text, ':', ': ')::json WHERE ` + victim + ` AND seq = 2`,
			2, audit.ProblemModified},
		{"actor changed", `UPDATE audit_log SET actor = 'operator' WHERE ` + victim + ` AND seq = 1`,
			1, audit.ProblemModified},
		{"time changed by a microsecond", `UPDATE audit_log SET occurred_at = occurred_at + interval '1 microsecond' WHERE ` + victim + ` AND seq = 4`,
			4, audit.ProblemModified},
		{"middle row deleted", `DELETE FROM audit_log WHERE ` + victim + ` AND seq = 3`,
			3, audit.ProblemMissing},
		{"newest row deleted", `DELETE FROM audit_log WHERE ` + victim + ` AND seq = 5`,
			5, audit.ProblemHeadMismatch},
		{"two newest rows deleted", `DELETE FROM audit_log WHERE ` + victim + ` AND seq >= 4`,
			4, audit.ProblemHeadMismatch},
		{"every row deleted", `DELETE FROM audit_log WHERE ` + victim,
			1, audit.ProblemHeadMismatch},
		{"first row deleted", `DELETE FROM audit_log WHERE ` + victim + ` AND seq = 1`,
			1, audit.ProblemMissing},
		{"middle row deleted and later rows renumbered", `
			DELETE FROM audit_log WHERE ` + victim + ` AND seq = 3;
			UPDATE audit_log SET seq = seq - 1 WHERE ` + victim + ` AND seq > 3;
			UPDATE audit_heads SET seq = 4, hash = (SELECT hash FROM audit_log WHERE ` + victim + ` AND seq = 4) WHERE ` + victim,
			3, audit.ProblemBrokenLink},
		{"hashes swapped", `
			UPDATE audit_log SET hash = CASE seq
				WHEN 2 THEN (SELECT hash FROM audit_log WHERE ` + victim + ` AND seq = 3)
				ELSE (SELECT hash FROM audit_log WHERE ` + victim + ` AND seq = 2) END
			WHERE ` + victim + ` AND seq IN (2, 3)`,
			2, audit.ProblemModified},
		{"rows reordered", `
			UPDATE audit_log SET seq = seq + 1000 WHERE ` + victim + ` AND seq IN (2, 3);
			UPDATE audit_log SET seq = CASE seq WHEN 1002 THEN 3 ELSE 2 END WHERE ` + victim + ` AND seq IN (1002, 1003)`,
			2, audit.ProblemBrokenLink},
		{"row moved to another aggregate", `UPDATE audit_log SET aggregate_id = 'other' WHERE ` + victim + ` AND seq = 5`,
			5, audit.ProblemHeadMismatch},
		{"row appended without its head", `
			INSERT INTO audit_log (aggregate_type, aggregate_id, seq, occurred_at, actor, action, payload, prev_hash, hash)
			SELECT aggregate_type, aggregate_id, 6, occurred_at, actor, action, payload, hash, hash
			FROM audit_log WHERE ` + victim + ` AND seq = 5`,
			6, audit.ProblemModified},
		{"head removed", `DELETE FROM audit_heads WHERE ` + victim,
			5, audit.ProblemHeadMissing},
		{"head hash altered", `UPDATE audit_heads SET hash = decode(repeat('ff', 32), 'hex') WHERE ` + victim,
			5, audit.ProblemHeadMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			pool := testsupport.Pool(t)
			appendN(t, pool, "collection", "victim", 5)
			appendN(t, pool, "collection", "bystander", 3)
			if err := audit.Verify(ctx, pool, "collection", "victim"); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}

			tamper(t, pool, tt.sql)

			err := audit.Verify(ctx, pool, "collection", "victim")
			var ce *audit.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify = %v, want a *ChainError", err)
			}
			want := audit.ChainError{AggregateType: "collection", AggregateID: "victim", Seq: tt.seq, Problem: tt.problem}
			got := *ce
			got.RowID = 0 // which row is named is checked in keyed_test.go
			if got != want {
				t.Fatalf("Verify = %+v\nwant     %+v", *ce, want)
			}
			if err := audit.Verify(ctx, pool, "collection", "bystander"); err != nil {
				t.Errorf("Verify bystander: %v", err)
			}

			rep, err := audit.VerifyAll(ctx, pool)
			if err == nil {
				t.Fatal("VerifyAll error = nil despite a broken chain")
			}
			var found *audit.ChainError
			for _, b := range rep.Broken {
				switch b.AggregateID {
				case "victim":
					found = b
				case "bystander":
					t.Errorf("VerifyAll blames the bystander: %v", b)
				}
			}
			if found == nil || found.AggregateID != want.AggregateID || found.Seq != want.Seq || found.Problem != want.Problem {
				t.Fatalf("VerifyAll Broken = %v, want it to hold %+v", rep.Broken, want)
			}
			if !errors.Is(err, found) {
				t.Errorf("VerifyAll error = %v does not wrap %v", err, found)
			}
			if rep.Chains < 2 {
				t.Errorf("VerifyAll checked %d chains, want at least 2", rep.Chains)
			}
		})
	}
}

func TestVerifyAllReportsIntactLog(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	rep, err := audit.VerifyAll(ctx, pool)
	if err != nil || rep.Chains != 0 || rep.Records != 0 {
		t.Fatalf("VerifyAll of an empty log = %+v, %v", rep, err)
	}
	appendN(t, pool, "collection", "1", 4)
	appendN(t, pool, "collection", "2", 1)
	appendN(t, pool, "mandate", "1", 2)
	rep, err = audit.VerifyAll(ctx, pool)
	if err != nil {
		t.Fatalf("VerifyAll: %v", err)
	}
	if rep.Chains != 3 || rep.Records != 7 || len(rep.Broken) != 0 {
		t.Errorf("VerifyAll = %+v, want 3 chains, 7 records, none broken", rep)
	}
}

// Payload text is stored and hashed exactly as marshalled, including what
// jsonb would normalize away.
func TestPayloadKeptVerbatim(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	raw := json.RawMessage(`{"b":1,"a":[1.50,2e3],"a":"dup"}`)
	r, err := audit.Append(ctx, pool, audit.Entry{AggregateType: "x", AggregateID: "1", Actor: "a", Action: "b", Payload: raw})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := audit.List(ctx, pool, "x", "1")
	if err != nil || len(recs) != 1 {
		t.Fatalf("List = %v, %v", recs, err)
	}
	if string(recs[0].Payload) != string(r.Payload) {
		t.Errorf("stored payload %s, appended %s", recs[0].Payload, r.Payload)
	}
	if err := audit.Verify(ctx, pool, "x", "1"); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
