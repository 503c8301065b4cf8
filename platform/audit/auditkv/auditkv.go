// Package auditkv keeps the audit log's signed checkpoints outside
// Postgres, in JetStream, and takes them periodically: verified against
// the newest one (mlcctl audit verify), a chain deleted whole, or cut
// short, in the database is detected.
//
// A checkpoint (format version 2, see platform/audit) is two things:
//
//   - its heads stream, every chain's head, streamed from Postgres a page
//     at a time into an object of the object store MLC_AUDIT_CHECKPOINT_HEADS
//     (one object per checkpoint, named heads-<UTC time it began>), so it
//     has no size limit and taking it needs memory for a page, not for
//     every chain;
//   - its manifest, a small JSON value under the key "latest" of the
//     key-value bucket MLC_AUDIT_CHECKPOINTS: taken_at, head_count,
//     heads_sha256 (of the stream), object, key_id and the MAC over them.
//     It is written only once its object is stored whole, and never over
//     the manifest of a checkpoint that began later (every replica of the
//     orchestrator takes checkpoints, and one that began first may finish
//     last).
//
// A heads object is deleted once it is older than the grace period
// ([HeadsGrace]: 3 checkpoint intervals, at least 30 minutes, by the time
// in its name) and older than the one "latest" names. The one it names is
// kept whatever its age, and so is every newer one (another replica may be
// about to name it); the grace is what a verification in progress has to
// copy the object it began with once "latest" has moved past it, however
// many replicas take checkpoints.
//
// A verification copies the object "latest" names to a temporary file
// (in $TMPDIR, about 120 bytes a chain, unlinked at once, so it is gone
// when the verification ends, however it ends) within a
// time bounded by its size (a minute plus a second a MiB), and then walks
// the database against the copy at its own pace: a copy that stalls (the
// object pruned under it, chunks no longer arriving) fails the
// verification, naming the object, rather than hanging it.
//
// A checkpoint is not published when the one published began later (see
// [Store.Put]); Take then returns a [*NotPublishedError]. When that one
// began in the future (a replica's clock ahead, or a forged manifest), no
// checkpoint is published until the clocks pass it, and [Run] logs it as
// an error each interval: the remedy is to fix the clock, or to delete
// the manifest by hand (nats kv del MLC_AUDIT_CHECKPOINTS latest), after
// which the next checkpoint is published.
//
// The bucket keeps a history, and the manifest is signed with the audit
// key (which neither store holds), so an attacker who can also write NATS
// must forge a signature rather than just delete or replace a value, and
// a tampered, truncated or missing object fails verification by name. A
// version 1 checkpoint (heads inline in the value, as stored before; NATS
// refused them beyond ~8,000 chains) is still read.
package auditkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ml-connector/ml-connector/platform/audit"
)

// Bucket is the JetStream key-value bucket of the checkpoints' manifests.
const Bucket = "MLC_AUDIT_CHECKPOINTS"

// ObjectBucket is the JetStream object store of the checkpoints' heads.
const ObjectBucket = "MLC_AUDIT_CHECKPOINT_HEADS"

// MinHeadsGrace is the least time a heads object is kept after its
// checkpoint began (see [HeadsGrace]).
const MinHeadsGrace = 30 * time.Minute

// HeadsGrace is how long a heads object is kept after its checkpoint
// began, whether or not "latest" still names it, when checkpoints are
// taken every interval: 3 intervals, at least [MinHeadsGrace].
//
// mlcctl audit verify reads "latest" and then copies its object before it
// walks the database; "latest" may move past it meanwhile. With replicas
// taking checkpoints, the object it read was named at most about one
// interval before (later only when no replica took one, and then it is
// still the latest and kept), so a verification has at least two
// intervals, and at least 25 minutes at the default interval of 5, to
// copy it, whatever the number of replicas: keeping a count of objects
// instead gave 15/n minutes with n replicas. What it costs is every
// object of the grace kept: about n × grace / interval of them (48 with 8
// replicas at the default interval), each the size of one checkpoint's
// heads (about 120 bytes a chain).
func HeadsGrace(interval time.Duration) time.Duration {
	return max(3*interval, MinHeadsGrace)
}

// AheadTolerance is how far in the future a published checkpoint may have
// begun, by this replica's clock, before it is taken for a clock running
// ahead or a forged manifest (see [NotPublishedError]).
const AheadTolerance = time.Minute

// headsTimeLayout is the time in a heads object's name, fixed width so
// that names sort as times.
const headsTimeLayout = "20060102T150405.000000000Z"

const latest = "latest"

// Store reads and writes checkpoints.
type Store struct {
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	obj   jetstream.ObjectStore // nil until needed, for readers
	grace time.Duration         // see HeadsGrace; Run sets it from its interval

	// How long a heads object has to be copied for a verification (see
	// headsFetchTimeout).
	headsFetchBase time.Duration
	headsFetchRate int64 // bytes a second
}

// Open creates the bucket and the object store if they are missing and
// returns their store.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Signed manifests of the audit log's checkpoints (platform/audit/auditkv).",
		History: 64, Replicas: max(replicas, 1), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints bucket: %w", err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: ObjectBucket, Description: "The audit log's chain heads, one object per checkpoint (platform/audit/auditkv).",
		Replicas: max(replicas, 1), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint heads object store: %w", err)
	}
	return &Store{js: js, kv: kv, obj: obj, grace: MinHeadsGrace, headsFetchBase: defaultHeadsFetchBase, headsFetchRate: defaultHeadsFetchRate}, nil
}

// OpenExisting returns the store of an existing bucket, for readers. The
// object store is opened when a version 2 checkpoint's heads are read.
func OpenExisting(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints bucket: %w", err)
	}
	return &Store{js: js, kv: kv, grace: MinHeadsGrace, headsFetchBase: defaultHeadsFetchBase, headsFetchRate: defaultHeadsFetchRate}, nil
}

// Take takes a checkpoint: the heads are streamed from q into a new object
// while they are read; once the object is stored whole, the manifest
// vouching for it is published as the newest (see [Store.Put]), and the
// objects no longer needed are deleted (see the package doc). When a
// newer checkpoint was already published, this one is not, and Take
// returns it with a [*NotPublishedError].
//
// The manifest is never published before the object is complete: Put is
// called only once the object store's Put has returned without error,
// which it does only after every chunk and then the object's own metadata
// were acknowledged by JetStream. Until then the object is not even
// listed (its metadata is written last); when its stream fails, its
// chunks are purged and nothing names it.
func (s *Store) Take(ctx context.Context, q audit.Querier, keys *audit.Keys) (audit.Checkpoint, error) {
	name := "heads-" + time.Now().UTC().Format(headsTimeLayout)
	pr, pw := io.Pipe()
	type result struct {
		c   audit.Checkpoint
		err error
	}
	written := make(chan result, 1)
	go func() {
		c, err := audit.WriteCheckpoint(ctx, q, keys, name, pw)
		pw.CloseWithError(err) // nil: the object ends (io.EOF)
		written <- result{c, err}
	}()
	_, putErr := s.obj.Put(ctx, jetstream.ObjectMeta{Name: name, Description: "audit checkpoint heads"}, pr)
	pr.CloseWithError(errors.New("object store stopped reading")) // unblocks the writer if Put gave up
	w := <-written
	if w.err != nil {
		return audit.Checkpoint{}, w.err
	}
	if putErr != nil {
		return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: storing heads object %s: %w", name, putErr)
	}
	published := s.Put(ctx, w.c)
	var notPublished *NotPublishedError
	if published != nil && !errors.As(published, &notPublished) {
		return audit.Checkpoint{}, published
	}
	// Pruned even when not published: the newer one's replica may have
	// died before pruning.
	if err := s.prune(ctx); err != nil {
		return w.c, errors.Join(published, fmt.Errorf("audit checkpoint stored; deleting older heads objects: %w", err))
	}
	return w.c, published
}

// prune deletes the heads objects that began more than the grace ago and
// are older than the one the latest manifest names. The named one is kept
// whatever its age: replicas take checkpoints concurrently, so it need not
// be among the newest objects. So is every newer one: its replica may have
// stored it and not yet published its manifest; Put publishes it only if
// it is newer than the latest, so an object older than the latest, once
// read, can never be named again. It may still be being read, by a
// verification that read "latest" before it moved: the grace is for that.
// An object whose name holds no time is not one of ours and is left.
func (s *Store) prune(ctx context.Context) error {
	infos, err := s.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		return err
	}
	cur, err := s.Latest(ctx)
	if err != nil {
		return err
	}
	if cur == nil || cur.Object == "" {
		// Nothing names an object yet (no manifest, or a version 1 one):
		// any of them may be about to be named.
		return nil
	}
	cutoff := time.Now().Add(-s.grace)
	for _, info := range infos {
		began, ok := headsTime(info.Name)
		if !ok || info.Name >= cur.Object || !began.Before(cutoff) {
			continue
		}
		if err := s.obj.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return err
		}
	}
	return nil
}

// headsTime is the time a heads object's checkpoint began, from its name.
func headsTime(object string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(object, "heads-")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(headsTimeLayout, rest)
	return t, err == nil
}

// NotPublishedError is Put's and Take's answer when the checkpoint was
// not published because the one published began later. That is expected
// now and then, when replicas' checkpoints overlap; Ahead marks the case
// that is not: the published one began more than [AheadTolerance] in the
// future by this replica's clock (or its object's name holds no time), so
// a replica's clock runs ahead or the manifest is forged, and no
// checkpoint will be published until the clocks pass it. Fix the clock;
// a forged manifest (mlcctl audit verify says "signature does not
// verify") is deleted by hand: nats kv del MLC_AUDIT_CHECKPOINTS latest.
type NotPublishedError struct {
	Object    string    // this checkpoint's object
	Published string    // the published checkpoint's object ("" for version 1)
	Began     time.Time // when the published one began, as its name (or taken_at) says
	Ahead     bool
}

func (e *NotPublishedError) Error() string {
	if e.Ahead {
		return fmt.Sprintf("audit checkpoint %s not published: the latest manifest names %s, which began %s, in the future: "+
			"a replica's clock is ahead or the manifest is forged, and no checkpoint is published until the clocks pass it; "+
			"fix the clock, or if mlcctl audit verify finds the manifest forged, delete it (nats kv del %s %s)",
			e.Object, e.Published, e.Began.UTC().Format(time.RFC3339), Bucket, latest)
	}
	return fmt.Sprintf("audit checkpoint %s not published: the latest, %s, began later", e.Object, e.Published)
}

// Put publishes c's manifest (or a version 1 checkpoint) as the newest,
// unless the one published is newer (see newer), which it then leaves,
// returning a [*NotPublishedError]: replicas take checkpoints
// concurrently, and one that began first may finish last; the newest
// vouches for the most.
//
// The decision and the write are one compare-and-set on the key's
// revision: the latest is read, and written over only at that revision.
// If another replica wrote in between, the write is refused and the
// decision taken again against what it wrote, so an older checkpoint can
// never replace a newer one however the writes interleave (and the key's
// history only moves forward).
//
// The published manifest's place in that order is trusted without
// checking its signature (Put has no keys). Whoever can write it can as
// well delete or rewrite it at will, and a forged one fails verification
// loudly; what this rule changes is that a forged manifest naming an
// object later than any checkpoint to come stays until deleted by hand
// (nats kv del MLC_AUDIT_CHECKPOINTS latest) instead of being replaced at
// the next interval; the error then says so (Ahead), and Run logs it as
// an error. So does a replica's clock running ahead, until the others'
// pass its last checkpoint. A manifest that is not even readable is
// replaced.
func (s *Store) Put(ctx context.Context, c audit.Checkpoint) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	backoff := minBackoff
	for {
		e, err := s.kv.Get(ctx, latest)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound): // absent, or deleted by hand
			_, err = s.kv.Create(ctx, latest, data)
		case err != nil:
			return fmt.Errorf("audit checkpoint: reading the latest: %w", err)
		default:
			var published audit.Checkpoint
			if json.Unmarshal(e.Value(), &published) == nil && newer(published, c) {
				return notPublished(c, published, time.Now())
			}
			_, err = s.kv.Update(ctx, latest, data, e.Revision())
		}
		if err == nil {
			return nil
		}
		if !conflict(err) {
			return fmt.Errorf("audit checkpoint: %w", err)
		}
		// Each conflict is another replica's write succeeding, so this
		// ends once every concurrent one has been seen; the pause spreads
		// out replicas that would otherwise keep colliding.
		pause := time.NewTimer(backoff/2 + rand.N(backoff/2))
		select {
		case <-ctx.Done():
			pause.Stop()
			return fmt.Errorf("audit checkpoint: %w", ctx.Err())
		case <-pause.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// The compare-and-set's pause after a conflict, doubled each time.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = 250 * time.Millisecond
)

// conflict reports whether a write of "latest" was refused because
// another replica wrote it first, and is to be decided again. Update says
// so with ErrKeyRevisionMismatch and Create with ErrKeyExists, but not
// always (nats.go v1.55.0, jetstream/kv.go): on a deleted "latest" (a
// tombstone, after nats kv del) Create writes again at the tombstone's
// revision and returns the server's error as it is, a wrong last sequence,
// JetStream error 10071, or 10164 from a replicated bucket, which is
// neither.
func conflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// notPublished is the answer to c not being published because published
// began later, marked Ahead if it began in the future by now.
func notPublished(c, published audit.Checkpoint, now time.Time) *NotPublishedError {
	e := &NotPublishedError{Object: c.Object, Published: published.Object, Began: published.TakenAt}
	if published.Object != "" {
		began, ok := headsTime(published.Object)
		e.Began = began
		e.Ahead = !ok // a name that holds no time yet sorts after ours: forged
	}
	e.Ahead = e.Ahead || e.Began.After(now.Add(AheadTolerance))
	return e
}

// newer reports whether checkpoint a began after b. Version 2 checkpoints
// are ordered by their objects' names, heads-<UTC time it began> in a
// fixed width, so that they sort as times: prune deletes by that order
// too, so the two cannot disagree about which objects may still be named
// (ordered by taken_at, set a moment after the name, a checkpoint could
// count as newer than the latest and its object as older). Otherwise (a
// version 1 checkpoint has no object) by the time taken. A tie (the same
// checkpoint written again) is not newer, so the writer's copy wins.
// Replicas' clocks are compared this way: one running ahead wins until
// the others' pass its last checkpoint, which costs freshness, not
// completeness.
func newer(a, b audit.Checkpoint) bool {
	if a.Object != "" && b.Object != "" {
		return a.Object > b.Object
	}
	return a.TakenAt.After(b.TakenAt)
}

// Latest returns the newest checkpoint, or nil when none was taken. A
// version 2 checkpoint's heads are read from its object when verifying.
func (s *Store) Latest(ctx context.Context) (*audit.Checkpoint, error) {
	e, err := s.kv.Get(ctx, latest)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	var c audit.Checkpoint
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	if c.Version >= 2 {
		c.OpenHeads = func(ctx context.Context) (io.ReadCloser, error) { return s.openHeads(ctx, c.Object) }
	}
	return &c, nil
}

// openHeads copies the heads object name to a temporary file, within a
// bounded time, and returns the file to read from, which is gone once it
// is closed (it has no name in the directory).
//
// A verification reads its heads a page at a time between lookups in the
// database, which on a large log take far longer than the object takes to
// arrive. Read from JetStream at that pace, the read needs a deadline
// spanning the whole walk: nats.go gives Get a context without one its
// default timeout, 5 s, for reading the whole object, and uses the
// context's deadline as the read deadline of the pipe the chunks arrive
// on (nats.go v1.55.0, jetstream/object.go: Get, wrapContextWithoutDeadline
// and objResult.Read). Too short a deadline failed slow verifications
// with the object named unreadable, as if tampered with; a long one left a
// verification whose chunks stopped arriving (the object pruned under it
// once the grace passed, a consumer stalled) hanging that long. Copied
// first, the object gets a deadline for its size alone (see
// headsFetchTimeout), and the walk then reads the file at its own
// pace. The file takes the object's size, about 120 bytes a chain, in
// os.TempDir ($TMPDIR), not memory.
//
// The copy is checked against the object's own digest by nats.go (at its
// end, ErrDigestMismatch); the manifest's count and SHA-256 are checked by
// the verification over exactly these bytes (platform/audit, headsReader)
// before anything they say is reported.
func (s *Store) openHeads(ctx context.Context, name string) (io.ReadCloser, error) {
	if s.obj == nil {
		obj, err := s.js.ObjectStore(ctx, ObjectBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("missing: there is no object store %s", ObjectBucket)
		}
		if err != nil {
			return nil, err
		}
		s.obj = obj
	}
	info, err := s.obj.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("missing from object store %s", ObjectBucket)
	}
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "mlc-audit-heads-*")
	if err != nil {
		return nil, fmt.Errorf("a temporary file for its copy: %w", err)
	}
	// Unlinked at once, the copy lives as long as the open file and no
	// longer: a verification killed (SIGKILL, OOM) leaves nothing in
	// $TMPDIR, where a removal on Close was skipped. Unix keeps an open
	// file's data after its name is gone; mlcctl runs on Linux.
	if err := os.Remove(f.Name()); err != nil {
		return nil, errors.Join(fmt.Errorf("a temporary file for its copy: %w", err), f.Close())
	}
	if err := s.copyHeads(ctx, name, info.Size, f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, errors.Join(fmt.Errorf("its copy: %w", err), f.Close())
	}
	return f, nil
}

// copyHeads copies the object name, of size bytes, to f within
// headsFetchTimeout(size).
func (s *Store) copyHeads(ctx context.Context, name string, size uint64, f *os.File) error {
	limit := s.headsFetchTimeout(size)
	deadline := time.Now().Add(limit)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	r, err := s.obj.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) { // deleted since GetInfo
		return fmt.Errorf("missing from object store %s", ObjectBucket)
	}
	if err != nil {
		return fmt.Errorf("copying it from object store %s: %w", ObjectBucket, err)
	}
	defer r.Close()
	n, err := io.Copy(f, r)
	if err != nil {
		// By the time, not ctx.Err(): nats.go fails the read when the
		// pipe's deadline (the context's) passes, which can be before the
		// context's own timer has marked it done ("read pipe: i/o
		// timeout"). An earlier deadline of the caller's ends it sooner.
		if !time.Now().Before(deadline) {
			return fmt.Errorf("copying it from object store %s: %d of its %d bytes arrived within %v: %w", ObjectBucket, n, size, limit, err)
		}
		return fmt.Errorf("copying it from object store %s to %s: %w", ObjectBucket, f.Name(), err)
	}
	return nil
}

// Defaults of the time a heads object has to be copied (see
// headsFetchTimeout).
const (
	defaultHeadsFetchBase = time.Minute
	defaultHeadsFetchRate = 1 << 20 // bytes a second
)

// headsFetchTimeout is the time a heads object of size bytes has to be
// copied: headsFetchBase (the lookup, the consumer's creation, a
// reconnect) plus its size at headsFetchRate. A JetStream in the cluster
// delivers an object's chunks at tens of MB/s or more; 1 MiB/s allows for
// mlcctl run at a distance (a port-forward, a VPN) and still fails a
// stalled read of a million chains' heads (about 120 MB) within three
// minutes.
func (s *Store) headsFetchTimeout(size uint64) time.Duration {
	return s.headsFetchBase + time.Duration(size/uint64(s.headsFetchRate))*time.Second
}

// Run takes a checkpoint every interval until ctx ends, keeping heads
// objects for [HeadsGrace] of it. Replicas may all run it: each
// checkpoint is complete, the newest wins. A checkpoint not published
// because a newer one was is logged as a warning, and as an error when
// that one is in the future (see [NotPublishedError]).
func Run(ctx context.Context, q audit.Querier, keys *audit.Keys, s *Store, interval time.Duration, log *slog.Logger) error {
	s.grace = HeadsGrace(interval)
	m, err := newRunMetrics()
	if err != nil {
		return err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_, err := s.Take(ctx, q, keys)
		var notPublished *NotPublishedError
		switch {
		case ctx.Err() != nil:
		case err == nil:
			m.taken(ctx, "published")
		case errors.As(err, &notPublished) && notPublished.Ahead:
			m.taken(ctx, "ahead")
			log.ErrorContext(ctx, "audit checkpoint not published: the latest is in the future", "error", err)
		case errors.As(err, &notPublished):
			m.taken(ctx, "newer")
			log.WarnContext(ctx, "audit checkpoint not published: a newer one was", "error", err)
		default:
			m.taken(ctx, "failed")
			log.WarnContext(ctx, "audit checkpoint failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// runMetrics tell an operator that checkpoints stopped, which the log
// alone says only to whoever reads it: a chain deleted whole after the
// last published checkpoint goes unnoticed by mlcctl audit verify. Alert
// when the newest mlc_audit_checkpoint_published_seconds over the
// replicas is older than two intervals (deploy/README.md).
type runMetrics struct {
	attempts  metric.Int64Counter
	published metric.Int64Gauge // absent until this replica has published one
}

func newRunMetrics() (runMetrics, error) {
	meter := otel.Meter("github.com/ml-connector/ml-connector/platform/audit/auditkv")
	var m runMetrics
	var errs [2]error
	m.attempts, errs[0] = meter.Int64Counter("mlc_audit_checkpoints",
		metric.WithDescription("audit checkpoints taken, by result: published, newer (one that began later was), ahead (the published one is in the future), failed"))
	m.published, errs[1] = meter.Int64Gauge("mlc_audit_checkpoint_published_seconds",
		metric.WithDescription("when this replica last published an audit checkpoint (unix time); absent until it has"), metric.WithUnit("s"))
	if err := errors.Join(errs[:]...); err != nil {
		return m, fmt.Errorf("audit checkpoint metrics: %w", err)
	}
	return m, nil
}

func (m runMetrics) taken(ctx context.Context, result string) {
	m.attempts.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	if result == "published" {
		m.published.Record(ctx, time.Now().Unix())
	}
}
