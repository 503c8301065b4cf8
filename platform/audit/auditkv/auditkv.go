// Package auditkv keeps the audit log's signed checkpoints outside
// Postgres, in JetStream, and takes them periodically: verified against
// the newest one (mlcctl audit verify), a chain deleted whole, or cut
// short, in the database is detected.
//
// A checkpoint (format version 2, see platform/audit) is two things:
//
//   - its heads stream, every chain's head, streamed from Postgres a page
//     at a time into an object of the object store MLC_AUDIT_CHECKPOINT_HEADS
//     (one object per checkpoint, named heads-<UTC time>; the newest
//     [KeptObjects] are kept, older ones deleted), so it has no size limit
//     and taking it needs memory for a page, not for every chain;
//   - its manifest, a small JSON value under the key "latest" of the
//     key-value bucket MLC_AUDIT_CHECKPOINTS: taken_at, head_count,
//     heads_sha256 (of the stream), object, key_id and the MAC over them.
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

// KeptObjects is how many heads objects are kept, newest first: at the
// default interval (5 minutes) a verification may take 15 minutes to reach
// the object before it is deleted under it.
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
// while they are read, then the manifest vouching for them is stored as
// the newest, and objects older than the newest KeptObjects deleted.
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

// prune deletes the heads objects but the newest KeptObjects (their names
// sort by time).
func (s *Store) prune(ctx context.Context) error {
	infos, err := s.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		return err
	}
	slices.SortFunc(infos, func(a, b *jetstream.ObjectInfo) int { return strings.Compare(b.Name, a.Name) })
	for _, info := range infos[min(KeptObjects, len(infos)):] {
		if err := s.obj.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return err
		}
	}
	return nil
}

// Put stores c's manifest (or a version 1 checkpoint) as the newest.
func (s *Store) Put(ctx context.Context, c audit.Checkpoint) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if _, err := s.kv.Put(ctx, latest, data); err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	return nil
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
