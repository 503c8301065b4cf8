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
// Objects older than the one "latest" names are deleted, but for the
// newest [KeptObjects]; the one it names is kept whatever its age, and so
// is every newer one (another replica may be about to name it).
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
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/platform/audit"
)

// Bucket is the JetStream key-value bucket of the checkpoints' manifests.
const Bucket = "MLC_AUDIT_CHECKPOINTS"

// ObjectBucket is the JetStream object store of the checkpoints' heads.
const ObjectBucket = "MLC_AUDIT_CHECKPOINT_HEADS"

// KeptObjects is how many heads objects are kept, newest first, besides
// the one the latest manifest names and any newer: with one replica taking
// checkpoints at the default interval (5 minutes), a verification may take
// 15 minutes to reach the object before it is deleted under it; with n
// replicas, 15/n.
const KeptObjects = 4

const latest = "latest"

// Store reads and writes checkpoints.
type Store struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore // nil until needed, for readers
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
	return &Store{js: js, kv: kv, obj: obj}, nil
}

// OpenExisting returns the store of an existing bucket, for readers. The
// object store is opened when a version 2 checkpoint's heads are read.
func OpenExisting(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints bucket: %w", err)
	}
	return &Store{js: js, kv: kv}, nil
}

// Take takes a checkpoint: the heads are streamed from q into a new object
// while they are read; once the object is stored whole, the manifest
// vouching for it is published as the newest (see [Store.Put]), and the
// objects no longer needed are deleted (see the package doc).
//
// The manifest is never published before the object is complete: Put is
// called only once the object store's Put has returned without error,
// which it does only after every chunk and then the object's own metadata
// were acknowledged by JetStream. Until then the object is not even
// listed (its metadata is written last); when its stream fails, its
// chunks are purged and nothing names it.
func (s *Store) Take(ctx context.Context, q audit.Querier, keys *audit.Keys) (audit.Checkpoint, error) {
	name := "heads-" + time.Now().UTC().Format("20060102T150405.000000000Z")
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
	if err := s.Put(ctx, w.c); err != nil {
		return audit.Checkpoint{}, err
	}
	if err := s.prune(ctx); err != nil {
		return w.c, fmt.Errorf("audit checkpoint stored; deleting older heads objects: %w", err)
	}
	return w.c, nil
}

// prune deletes the heads objects older than the one the latest manifest
// names, but for the newest KeptObjects. The named one is kept whatever
// its age: replicas take checkpoints concurrently, so it need not be among
// the newest objects. So is every newer one: its replica may have stored
// it and not yet published its manifest; Put publishes it only if it is
// newer than the latest, so an object older than the latest, once read,
// can never be named again and is safe to delete.
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
	slices.SortFunc(infos, func(a, b *jetstream.ObjectInfo) int { return strings.Compare(b.Name, a.Name) })
	for _, info := range infos[min(KeptObjects, len(infos)):] {
		if info.Name >= cur.Object {
			continue
		}
		if err := s.obj.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return err
		}
	}
	return nil
}

// Put publishes c's manifest (or a version 1 checkpoint) as the newest,
// unless the one published is newer (see newer), which it then leaves:
// replicas take checkpoints concurrently, and one that began first may
// finish last; the newest vouches for the most.
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
// the next interval. A manifest that is not even readable is replaced.
func (s *Store) Put(ctx context.Context, c audit.Checkpoint) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	for {
		var conflict error
		e, err := s.kv.Get(ctx, latest)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = s.kv.Create(ctx, latest, data)
			conflict = jetstream.ErrKeyExists
		case err != nil:
			return fmt.Errorf("audit checkpoint: reading the latest: %w", err)
		default:
			var published audit.Checkpoint
			if json.Unmarshal(e.Value(), &published) == nil && newer(published, c) {
				return nil
			}
			_, err = s.kv.Update(ctx, latest, data, e.Revision())
			conflict = jetstream.ErrKeyRevisionMismatch
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, conflict) {
			return fmt.Errorf("audit checkpoint: %w", err)
		}
		// Each conflict is another replica's write succeeding, so this
		// ends once every concurrent one has been seen.
	}
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

// openHeads opens the heads object name.
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
	r, err := s.obj.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("missing from object store %s", ObjectBucket)
	}
	return r, err
}

// Run takes a checkpoint every interval until ctx ends. Replicas may all
// run it: each checkpoint is complete, the newest wins.
func Run(ctx context.Context, q audit.Querier, keys *audit.Keys, s *Store, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Take(ctx, q, keys); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "audit checkpoint failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
