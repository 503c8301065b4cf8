package auditkv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/audit/auditkv"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
)

// headsName names a heads object as Take does (heads-<UTC time it
// began>), for the replicas these tests play by hand.
func headsName(t time.Time) string {
	return "heads-" + t.UTC().Format("20060102T150405.000000000Z")
}

// storeHeads writes a checkpoint's heads object as a replica begun at at
// would, without publishing its manifest.
func storeHeads(t *testing.T, ctx context.Context, pool audit.Querier, keys *audit.Keys, objects jetstream.ObjectStore, at time.Time) audit.Checkpoint {
	t.Helper()
	var heads bytes.Buffer
	cp, err := audit.WriteCheckpoint(ctx, pool, keys, headsName(at), &heads)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := objects.PutBytes(ctx, cp.Object, heads.Bytes()); err != nil {
		t.Fatal(err)
	}
	return cp
}

// gatedQuerier is one replica's database: its query number at (from 1;
// a checkpoint reads the heads a page per query) signals reached and then
// waits for the test to open the gate, failing with what it is sent.
type gatedQuerier struct {
	*pgxpool.Pool
	at      int32
	n       atomic.Int32
	reached chan struct{}
	gate    chan error
}

func gated(pool *pgxpool.Pool, at int32) *gatedQuerier {
	return &gatedQuerier{Pool: pool, at: at, reached: make(chan struct{}), gate: make(chan error, 1)}
}

func (q *gatedQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if q.n.Add(1) == q.at {
		close(q.reached)
		if err := <-q.gate; err != nil {
			return nil, err
		}
	}
	return q.Pool.Query(ctx, sql, args...)
}

type taken struct {
	cp  audit.Checkpoint
	err error
}

// takeGated starts a checkpoint on store reading through q and returns
// once it reached q's gate; its outcome arrives on the channel.
func takeGated(t *testing.T, store *auditkv.Store, q *gatedQuerier, keys *audit.Keys) <-chan taken {
	t.Helper()
	done := make(chan taken, 1)
	go func() {
		cp, err := store.Take(context.Background(), q, keys)
		done <- taken{cp, err}
	}()
	select {
	case <-q.reached:
	case r := <-done:
		t.Fatalf("the checkpoint ended before reaching its gate: %v", r.err)
	}
	return done
}

func objectNames(t *testing.T, objects jetstream.ObjectStore) []string {
	t.Helper()
	infos, err := objects.List(context.Background())
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, info := range infos {
		names = append(names, info.Name)
	}
	slices.Sort(names)
	return names
}

func latestVerifies(t *testing.T, ctx context.Context, pool *pgxpool.Pool, store *auditkv.Store, keys *audit.Keys) *audit.Checkpoint {
	t.Helper()
	cp, err := store.Latest(ctx)
	if err != nil || cp == nil {
		t.Fatalf("latest: %v, %v", cp, err)
	}
	if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp}); err != nil {
		t.Fatalf("verifying against the latest checkpoint (object %s): %v", cp.Object, err)
	}
	return cp
}

func appendChains(t *testing.T, ctx context.Context, pool *pgxpool.Pool, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := audit.Append(ctx, pool, audit.Entry{AggregateType: "collection", AggregateID: id, Actor: "test", Action: "x"}); err != nil {
			t.Fatal(err)
		}
	}
}

// Replica A begins a checkpoint; four replicas begin theirs after it and
// store their heads objects whole, but have not yet published their
// manifests when A finishes. A's manifest is then the latest and its
// object the oldest of five: pruning the newest four alone deleted it,
// and mlcctl audit verify reported it missing. It is kept, and so are the
// others' (about to be named), even with no grace at all; once they are
// published and another checkpoint is taken, the old ones go.
func TestPruneKeepsTheObjectLatestNames(t *testing.T) {
	ctx, pool, js, keys := setup(t)
	appendChains(t, ctx, pool, "a", "b")
	replicaA, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	replicaA.SetHeadsGrace(time.Nanosecond) // only the latest and newer protect an object
	objects, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}

	qa := gated(pool, 1)
	doneA := takeGated(t, replicaA, qa, keys)
	const newer = 4
	var others []audit.Checkpoint
	for range newer {
		others = append(others, storeHeads(t, ctx, pool, keys, objects, time.Now()))
	}
	qa.gate <- nil
	a := <-doneA
	if a.err != nil {
		t.Fatal(a.err)
	}
	if names := objectNames(t, objects); len(names) != newer+1 || names[0] != a.cp.Object {
		t.Fatalf("objects %v, want A's %s the oldest of %d", names, a.cp.Object, newer+1)
	}
	if cp := latestVerifies(t, ctx, pool, replicaA, keys); cp.Object != a.cp.Object {
		t.Fatalf("latest names %s, want A's %s", cp.Object, a.cp.Object)
	}

	// The other replicas publish, then one takes the next checkpoint.
	for _, cp := range others {
		if err := replicaA.Put(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	replicaB, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	replicaB.SetHeadsGrace(time.Nanosecond)
	b, err := replicaB.Take(ctx, pool, keys)
	if err != nil {
		t.Fatal(err)
	}
	if names := objectNames(t, objects); !slices.Equal(names, []string{b.Object}) {
		t.Errorf("objects after the next checkpoint %v, want only B's %s", names, b.Object)
	}
	if cp := latestVerifies(t, ctx, pool, replicaA, keys); cp.Object != b.Object {
		t.Errorf("latest names %s, want B's %s", cp.Object, b.Object)
	}
}

// A checkpoint that began first and finishes last does not replace the
// newer one another replica published meanwhile (it would have vouched
// for less: each head only as it was at some moment after it began), and
// Take says it was not published, as nothing amiss (not Ahead).
func TestOlderCheckpointDoesNotReplaceNewer(t *testing.T) {
	ctx, pool, js, keys := setup(t)
	appendChains(t, ctx, pool, "a", "b")
	replicaA, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	replicaB, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	qa := gated(pool, 1)
	doneA := takeGated(t, replicaA, qa, keys)
	b, err := replicaB.Take(ctx, pool, keys)
	if err != nil {
		t.Fatal(err)
	}
	qa.gate <- nil
	a := <-doneA
	var notPublished *auditkv.NotPublishedError
	if !errors.As(a.err, &notPublished) || notPublished.Ahead || notPublished.Published != b.Object || notPublished.Object != a.cp.Object {
		t.Fatalf("the older checkpoint, finishing last: %v (%+v), want not published in favour of %s, not ahead", a.err, notPublished, b.Object)
	}
	if a.cp.Object >= b.Object {
		t.Fatalf("A's object %s should be older than B's %s", a.cp.Object, b.Object)
	}
	if cp := latestVerifies(t, ctx, pool, replicaA, keys); cp.Object != b.Object {
		t.Errorf("latest names %s, want the newer B's %s", cp.Object, b.Object)
	}
}

// Many replicas publishing at once, in no particular order: the latest
// ends the newest, and its history never goes back (each write is a
// compare-and-set on the key's revision, decided again on a conflict).
func TestConcurrentPublishesNewestWins(t *testing.T) {
	ctx, srv := context.Background(), testsupport.StartJetStream(t)
	connect := func() jetstream.JetStream {
		js, err := jetstream.New(srv.Connect())
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	js := connect()
	store, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 16
	base := time.Now()
	cps := make([]audit.Checkpoint, writers)
	for i := range cps {
		at := base.Add(time.Duration(i) * time.Millisecond)
		cps[i] = audit.Checkpoint{Version: 2, TakenAt: at, Object: headsName(at), KeyID: "k1"}
	}
	order := rand.Perm(writers)
	// Not the order they began in, or writing one after the other would
	// pass by chance.
	for slices.IsSorted(order) {
		order = rand.Perm(writers)
	}
	stores := make([]*auditkv.Store, writers)
	for i := range stores {
		// One connection per replica, so the writes really race.
		if stores[i], err = auditkv.Open(ctx, connect(), 1); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make(chan error, writers)
	)
	for w, i := range order {
		wg.Go(func() {
			<-start
			errs <- stores[w].Put(ctx, cps[i])
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		// Those that lost to a newer one say so; none is in the future.
		var notPublished *auditkv.NotPublishedError
		if err != nil && (!errors.As(err, &notPublished) || notPublished.Ahead) {
			t.Fatal(err)
		}
	}
	if cp, err := store.Latest(ctx); err != nil || cp == nil || cp.Object != cps[writers-1].Object {
		t.Fatalf("latest %+v, %v; want the newest, %s", cp, err, cps[writers-1].Object)
	}
	kv, err := js.KeyValue(ctx, auditkv.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	history, err := kv.History(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	var written []string
	for _, e := range history {
		var cp audit.Checkpoint
		if err := json.Unmarshal(e.Value(), &cp); err != nil {
			t.Fatal(err)
		}
		written = append(written, strings.TrimPrefix(cp.Object, "heads-"))
	}
	if !slices.IsSorted(written) || len(slices.Compact(slices.Clone(written))) != len(written) {
		t.Errorf("the latest went back: written in the order %v", written)
	}
}

// The manifest names an object only once it is stored whole: while its
// heads are still streaming (chunks already in JetStream) the latest
// stays the previous checkpoint and the object is not even listed; a
// stream that fails leaves no object and no manifest; one that ends is
// published.
func TestManifestOnlyOnceObjectComplete(t *testing.T) {
	ctx, pool, js, keys := setup(t)
	const chains = 2500 // three pages of heads, more than one chunk before the third
	testsupport.AuditChains(t, pool, "collection", chains)
	store, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := store.Take(ctx, pool, keys)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "OBJ_"+auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	messages := func() uint64 {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	stored := messages()

	inProgress := func(t *testing.T) {
		t.Helper()
		await.Until(t, 10*time.Second, "the object's first chunks stored", func() bool { return messages() > stored })
		if cp := latestVerifies(t, ctx, pool, store, keys); cp.Object != prev.Object {
			t.Errorf("while an object is streaming, latest names %s, want the previous %s", cp.Object, prev.Object)
		}
		if names := objectNames(t, objects); !slices.Equal(names, []string{prev.Object}) {
			t.Errorf("while an object is streaming, objects %v, want only %s", names, prev.Object)
		}
	}

	q := gated(pool, 3)
	done := takeGated(t, store, q, keys)
	inProgress(t)
	q.gate <- errors.New("database gone")
	if r := <-done; r.err == nil || !strings.Contains(r.err.Error(), "database gone") {
		t.Fatalf("a checkpoint whose heads failed midway: %v", r.err)
	}
	if cp := latestVerifies(t, ctx, pool, store, keys); cp.Object != prev.Object {
		t.Errorf("after a failed checkpoint, latest names %s, want the previous %s", cp.Object, prev.Object)
	}
	if names := objectNames(t, objects); !slices.Equal(names, []string{prev.Object}) {
		t.Errorf("after a failed checkpoint, objects %v, want only %s", names, prev.Object)
	}
	if n := messages(); n != stored {
		t.Errorf("after a failed checkpoint, %d messages in the object store, want %d (its chunks purged)", n, stored)
	}

	q = gated(pool, 3)
	done = takeGated(t, store, q, keys)
	inProgress(t)
	q.gate <- nil
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if cp := latestVerifies(t, ctx, pool, store, keys); cp.Object != r.cp.Object || cp.Chains() != chains {
		t.Errorf("latest names %s of %d chains, want %s of %d", cp.Object, cp.Chains(), r.cp.Object, chains)
	}
}

// mlcctl audit verify reads the latest and then streams its object while
// it walks the database. Several checkpoints in quick succession (as many
// replicas take them) move the latest past it; keeping only the newest
// four objects deleted it under the verification, which then reported it
// missing, as if tampered with. Every object of the grace is kept, and
// one older than it goes.
func TestPruneKeepsObjectsWithinTheGrace(t *testing.T) {
	if got := auditkv.HeadsGrace(5 * time.Minute); got != 30*time.Minute {
		t.Errorf("grace at the default interval: %v, want 30m", got)
	}
	if got := auditkv.HeadsGrace(time.Hour); got != 3*time.Hour {
		t.Errorf("grace at an interval of 1h: %v, want 3h", got)
	}
	ctx, pool, js, keys := setup(t)
	appendChains(t, ctx, pool, "a", "b")
	store, err := auditkv.Open(ctx, js, 1) // the grace of the default interval
	if err != nil {
		t.Fatal(err)
	}
	objects, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	// A replica's object from before the grace, its manifest long replaced.
	old := storeHeads(t, ctx, pool, keys, objects, time.Now().Add(-auditkv.MinHeadsGrace-time.Minute))

	if _, err := store.Take(ctx, pool, keys); err != nil {
		t.Fatal(err)
	}
	reading, err := store.Latest(ctx) // as mlcctl audit verify begins
	if err != nil || reading == nil {
		t.Fatalf("latest: %v, %v", reading, err)
	}
	want := []string{reading.Object}
	for range 5 {
		cp, err := store.Take(ctx, pool, keys)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, cp.Object)
	}
	if names := objectNames(t, objects); !slices.Equal(names, want) {
		t.Errorf("objects after 6 checkpoints %v, want all 6 (within the grace) %v, and not %s", names, want, old.Object)
	}
	if cp := latestVerifies(t, ctx, pool, store, keys); cp.Object != want[len(want)-1] {
		t.Errorf("latest names %s, want the newest %s", cp.Object, want[len(want)-1])
	}
	if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: reading}); err != nil {
		t.Errorf("the verification that read the latest before 5 more checkpoints: %v", err)
	}
}

// A manifest named an hour in the future (a replica's clock ahead, or
// forged) keeps every checkpoint from being published. Take says so
// rather than succeeding silently, marked Ahead, and Run logs it as an
// error naming the remedy; deleting the manifest by hand, as that says,
// lets the next checkpoint be published.
func TestFutureManifestIsReportedNotPublished(t *testing.T) {
	ctx, pool, js, keys := setup(t)
	appendChains(t, ctx, pool, "a", "b")
	store, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	future := storeHeads(t, ctx, pool, keys, objects, time.Now().Add(time.Hour))
	if err := store.Put(ctx, future); err != nil {
		t.Fatal(err)
	}

	cp, err := store.Take(ctx, pool, keys)
	var notPublished *auditkv.NotPublishedError
	if !errors.As(err, &notPublished) || !notPublished.Ahead || notPublished.Published != future.Object || notPublished.Object != cp.Object {
		t.Fatalf("a checkpoint under a manifest an hour ahead: %v (%+v), want not published, ahead, in favour of %s", err, notPublished, future.Object)
	}
	if latest := latestVerifies(t, ctx, pool, store, keys); latest.Object != future.Object {
		t.Fatalf("latest names %s, want still %s", latest.Object, future.Object)
	}

	var logged fake.Log
	metrics := recordMetrics(t)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- auditkv.Run(runCtx, pool, keys, store, time.Hour, slog.New(slog.NewJSONHandler(&logged, nil)))
	}()
	await.Until(t, 10*time.Second, "Run logs the checkpoint not published", func() bool { return logged.String() != "" })
	await.Until(t, 10*time.Second, "the checkpoint counted", func() bool {
		results, _ := metrics.read(t)
		return results["ahead"] > 0
	})
	if results, published := metrics.read(t); len(results) != 1 || len(published) != 0 {
		t.Errorf("checkpoints by result %v, published at %v; want only ahead, none published", results, published)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var record struct {
		Level string `json:"level"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(logged.String(), "\n", 2)[0]), &record); err != nil {
		t.Fatal(err)
	}
	if record.Level != slog.LevelError.String() || !strings.Contains(record.Error, future.Object) ||
		!strings.Contains(record.Error, "in the future") || !strings.Contains(record.Error, "nats kv del MLC_AUDIT_CHECKPOINTS latest") {
		t.Errorf("Run logged %s, want an error naming %s, in the future, and the remedy", logged.String(), future.Object)
	}

	kv, err := js.KeyValue(ctx, auditkv.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "latest"); err != nil { // nats kv del MLC_AUDIT_CHECKPOINTS latest
		t.Fatal(err)
	}
	if cp, err = store.Take(ctx, pool, keys); err != nil {
		t.Fatalf("a checkpoint once the manifest in the future is deleted: %v", err)
	}
	if latest := latestVerifies(t, ctx, pool, store, keys); latest.Object != cp.Object {
		t.Errorf("latest names %s, want the new %s", latest.Object, cp.Object)
	}
}

// slowLookups is a database whose checkpoint lookups (a page of heads
// each) take delay, as on a large, busy log.
type slowLookups struct {
	*pgxpool.Pool
	delay time.Duration
}

func (q slowLookups) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if strings.Contains(sql, "unnest(") {
		time.Sleep(q.delay)
	}
	return q.Pool.Query(ctx, sql, args...)
}

// A verification reads the heads object between its lookups, however long
// they take: nats.go gave a read without a deadline 5 s for the whole
// object, after which the verification failed with the object named
// unreadable ("nats: timeout"), as if tampered with. Three pages of
// heads, each lookup 2.5 s, as mlcctl reads them (context without
// deadline, store opened as a reader).
func TestVerifyReadsHeadsSlowerThanNATSDefaultTimeout(t *testing.T) {
	ctx, pool, js, keys := setup(t)
	const chains = 2500 // three pages of heads
	testsupport.AuditChains(t, pool, "collection", chains)
	_, cp := checkpointed(t, ctx, pool, js, keys)
	start := time.Now()
	rep, err := audit.VerifyAllWith(ctx, slowLookups{pool, 2500 * time.Millisecond}, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
	if err != nil || rep.Chains != chains {
		t.Fatalf("a verification whose lookups took %v in all: %d chains, %v", time.Since(start).Round(time.Second), rep.Chains, err)
	}
}

// tempHeads points os.TempDir, where a verification copies its heads
// object, at a directory of the test's, and returns a function listing the
// copies in it.
func tempHeads(t *testing.T) func() []string {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return func() []string {
		t.Helper()
		copies, err := filepath.Glob(filepath.Join(dir, "mlc-audit-heads-*"))
		if err != nil {
			t.Fatal(err)
		}
		return copies
	}
}

// A heads object whose chunks stop arriving (here: purged, as when it is
// pruned under a verification once the grace has passed) fails the
// verification within the time given to copy it, naming the object, and
// leaves no copy behind. The read had a deadline of 24 h before, and hung
// that long.
func TestVerifyFailsWhenTheHeadsObjectStalls(t *testing.T) {
	ctx, pool, js, keys := setup(t)
	copies := tempHeads(t)
	testsupport.AuditChains(t, pool, "collection", 3)
	reader, cp := checkpointed(t, ctx, pool, js, keys)
	const limit = 500 * time.Millisecond
	reader.SetHeadsFetchTimeout(limit, 1<<20)
	// The object's metadata stays, so Get finds it and waits for chunks
	// that never come.
	objects, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := objects.GetInfo(ctx, cp.Object)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "OBJ_"+auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject("$O."+auditkv.ObjectBucket+".C."+info.NUID)); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("a verification whose heads object stalled still runs after 30 s, for a copy given %v", limit)
	}
	if !errors.Is(err, audit.ErrCheckpointHeads) || !strings.Contains(err.Error(), `"`+cp.Object+`"`) ||
		!strings.Contains(err.Error(), "0 of its "+strconv.FormatUint(info.Size, 10)+" bytes arrived within "+limit.String()) {
		t.Fatalf("a stalled heads object, after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if left := copies(); len(left) != 0 {
		t.Errorf("copies of the heads left after a failed verification: %v", left)
	}
}

// A verification walks the database against a copy of its heads object,
// not the object: the object may go meanwhile. The copy has no name in
// $TMPDIR even while it is read (it is unlinked once created), so a
// verification killed mid-walk (SIGKILL, OOM) leaves nothing behind; it
// was removed only when closed before.
func TestVerifyReadsHeadsFromARemovedCopy(t *testing.T) {
	ctx, pool, js, keys := setup(t)
	copies := tempHeads(t)
	const chains = 1500 // two pages of heads
	testsupport.AuditChains(t, pool, "collection", chains)
	_, cp := checkpointed(t, ctx, pool, js, keys)
	objects, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	q := &lookupHook{Pool: pool, each: func() {
		if c := copies(); len(c) != 0 {
			t.Errorf("copies of the heads with a name during a lookup: %v, want none", c)
		}
		if err := objects.Delete(ctx, cp.Object); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			t.Error(err)
		}
	}}
	rep, err := audit.VerifyAllWith(ctx, q, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
	if err != nil || rep.Chains != chains {
		t.Fatalf("verified against a copy: %d chains, %v", rep.Chains, err)
	}
	if q.lookups != 2 {
		t.Errorf("%d lookups of heads, want 2", q.lookups)
	}
	if _, err := objects.GetInfo(ctx, cp.Object); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("the object, deleted during the walk: %v", err)
	}
	if left := copies(); len(left) != 0 {
		t.Errorf("copies of the heads left after the verification: %v", left)
	}
}

// lookupHook is a database calling each before every checkpoint lookup (a
// page of heads each).
type lookupHook struct {
	*pgxpool.Pool
	each    func()
	lookups int
}

func (q *lookupHook) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if strings.Contains(sql, "unnest(") {
		q.lookups++
		q.each()
	}
	return q.Pool.Query(ctx, sql, args...)
}

// checkpointed takes a checkpoint of the chains in pool and opens the
// store again as mlcctl audit verify does (a reader), returning it and
// the latest checkpoint it reads.
func checkpointed(t *testing.T, ctx context.Context, pool *pgxpool.Pool, js jetstream.JetStream, keys *audit.Keys) (*auditkv.Store, *audit.Checkpoint) {
	t.Helper()
	store, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Take(ctx, pool, keys); err != nil {
		t.Fatal(err)
	}
	reader, err := auditkv.OpenExisting(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := reader.Latest(ctx)
	if err != nil || cp == nil {
		t.Fatalf("latest: %v, %v", cp, err)
	}
	return reader, cp
}
