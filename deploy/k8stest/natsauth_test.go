package k8stest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/audit/auditkv"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
)

// natsAccount is the account of the services' users (base/accounts.conf).
const natsAccount = "MLC"

// natsProduces are the subjects each service publishes (DESIGN.md; the
// pollers' and gc-webhook's publishers, the orchestrator's catch-up), each
// besides the dead letters every service's mover writes.
var natsProduces = map[string][]string{
	"ifs-poller":           {"mlc.erp.ifs.>"},
	"jde-poller":           {"mlc.erp.jde.>"},
	"gc-webhook":           {"mlc.gc.>"},
	"payment-orchestrator": {"mlc.gc.>"},
	"erp-poster":           nil,
}

// natsConsumer is the one service that consumes the bus (and so runs the
// dead-letter mover and reads single messages).
const natsConsumer = "payment-orchestrator"

// natsDestructive are JetStream API calls no service needs and none may make.
var natsDestructive = []string{"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.CONSUMER.DELETE.>"}

// natsUserOf is the NATS user and password Secret key of a service.
func (w *world) natsUserOf(svc string) (string, *corev1.SecretKeySelector, error) {
	_, ctr, err := w.svc(svc)
	if err != nil {
		return "", nil, err
	}
	env, _ := w.c.containerEnv(ctr)
	u, p := env["NATS_USER"], env["NATS_PASSWORD"]
	if !u.Known || u.Value == "" || p.Secret == nil {
		return "", nil, fmt.Errorf("%s: NATS_USER and NATS_PASSWORD (from a Secret) must be set", svc)
	}
	return u.Value, p.Secret, nil
}

// checkNATSSecurity: TLS on the client and route ports, a user per service
// with the password the service presents and only its own subjects,
// placement that keeps a quorum, and metrics.
func checkNATSSecurity(w *world) (probs []string) {
	wl, ctr, err := w.c.nats()
	if err != nil {
		return []string{err.Error()}
	}
	opts, err := w.c.natsOptions(wl, ctr)
	if err != nil {
		return []string{err.Error()}
	}
	nodes := int(w.minReplicas(wl))
	if opts.TLSConfig == nil || opts.AllowNonTLS {
		probs = append(probs, "nats: clients may connect without TLS")
	}
	if nodes > 1 && (opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert) {
		probs = append(probs, "nats: routes are not mutual TLS (cluster tls with verify: true)")
	}
	if opts.NoAuthUser != "" {
		probs = append(probs, fmt.Sprintf("nats: no_auth_user %s lets clients in without credentials", opts.NoAuthUser))
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	if len(opts.Nkeys) > 0 {
		probs = append(probs, "nats: nkey users are not checked here")
	}
	for _, svc := range w.services {
		name, pw, err := w.natsUserOf(svc)
		if err != nil {
			probs = append(probs, err.Error())
			continue
		}
		u := users[name]
		switch {
		case u == nil:
			probs = append(probs, fmt.Sprintf("%s: NATS user %q is not defined in the NATS configuration", svc, name))
			continue
		case u.Password != testPassword(pw):
			probs = append(probs, fmt.Sprintf("%s: NATS's password for %s is not the service's (Secret %s key %s)", svc, name, pw.Name, pw.Key))
		case u.Account == nil || u.Account.Name != natsAccount:
			probs = append(probs, fmt.Sprintf("%s: NATS user %s is not in account %s", svc, name, natsAccount))
		}
		if u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Subscribe == nil {
			probs = append(probs, fmt.Sprintf("%s: NATS user %s may publish and subscribe to anything", svc, name))
			continue
		}
		var data []string
		for _, s := range u.Permissions.Publish.Allow {
			if strings.HasPrefix(s, "mlc.") && s != bus.SubjectsDLQ {
				data = append(data, s)
			}
		}
		if want := natsProduces[svc]; !slices.Equal(data, want) {
			probs = append(probs, fmt.Sprintf("%s: NATS user %s may publish %v, want exactly %v (and %s)", svc, name, data, want, bus.SubjectsDLQ))
		}
		for _, a := range u.Permissions.Publish.Allow {
			if slices.Contains([]string{">", "$JS.>", "$JS.API.>", "$JS.API.CONSUMER.>", "$JS.API.STREAM.>", "$JS.API.DIRECT.>", "$JS.ACK.>"}, a) {
				probs = append(probs, fmt.Sprintf("%s: NATS user %s may use %s: the JetStream API must be allowed per stream and consumer", svc, name, a))
			} else if svc != natsConsumer && slices.ContainsFunc([]string{"$JS.API.CONSUMER.", "$JS.API.DIRECT.", "$JS.API.STREAM.MSG.GET.", "$JS.ACK."},
				func(p string) bool { return strings.HasPrefix(a, p) }) {
				probs = append(probs, fmt.Sprintf("%s: NATS user %s may read the bus (%s); only %s consumes it", svc, name, a, natsConsumer))
			}
		}
		for _, d := range natsDestructive {
			if except := "OBJ_" + auditkv.ObjectBucket; svc == natsConsumer && (d == "$JS.API.STREAM.PURGE.>" || d == "$JS.API.CONSUMER.DELETE.>") {
				// It deletes old audit checkpoint heads objects (which
				// purges their chunks) and its ordered consumers of
				// them: on that stream alone.
				api := strings.TrimSuffix(d, ">")
				for _, a := range u.Permissions.Publish.Allow {
					if strings.HasPrefix(a, api) && !strings.HasPrefix(a, api+except) {
						probs = append(probs, fmt.Sprintf("%s: NATS user %s may %s", svc, name, a))
					}
				}
				for _, stream := range []string{bus.StreamERP, bus.StreamGC, bus.StreamDLQ, bus.StreamAdvisories, "KV_" + auditkv.Bucket, "KV_MLC_GC_RATE_BUDGETS"} {
					if !slices.Contains(u.Permissions.Publish.Deny, api+stream) && !slices.Contains(u.Permissions.Publish.Deny, api+stream+".>") {
						probs = append(probs, fmt.Sprintf("%s: NATS user %s is not denied %s%s", svc, name, api, stream))
					}
				}
				continue
			}
			if !slices.Contains(u.Permissions.Publish.Deny, d) {
				probs = append(probs, fmt.Sprintf("%s: NATS user %s is not denied %s", svc, name, d))
			}
		}
		if slices.ContainsFunc(u.Permissions.Subscribe.Allow, func(s string) bool { return s == ">" || strings.HasPrefix(s, "mlc.") }) {
			probs = append(probs, fmt.Sprintf("%s: NATS user %s may subscribe to the bus's subjects directly", svc, name))
		}
	}

	// Placement: never two nodes on one machine, spread over zones, one
	// node at a time disrupted.
	spec := &wl.Template.Spec
	anti := false
	if spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil {
		for _, t := range spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
			anti = anti || (err == nil && t.TopologyKey == "kubernetes.io/hostname" && sel.Matches(labels.Set(wl.Template.Labels)))
		}
	}
	if !anti {
		probs = append(probs, "nats: no required pod anti-affinity on kubernetes.io/hostname; two nodes on one machine lose the quorum together")
	}
	zone := slices.IndexFunc(spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
		return c.TopologyKey == "topology.kubernetes.io/zone"
	})
	switch {
	case zone < 0:
		probs = append(probs, "nats: no topology spread over topology.kubernetes.io/zone")
	case w.overlay == "overlays/prod":
		c := spec.TopologySpreadConstraints[zone]
		if c.WhenUnsatisfiable != corev1.DoNotSchedule || c.MinDomains == nil || int(*c.MinDomains) < nodes || c.MaxSkew != 1 {
			probs = append(probs, fmt.Sprintf("nats: prod must spread its %d nodes over %d zones (maxSkew 1, DoNotSchedule, minDomains %d)", nodes, nodes, nodes))
		}
	}
	for _, pdb := range w.c.PDBs {
		if pdb.Spec.Selector == nil || pdb.Spec.Selector.MatchLabels[labelName] != "nats" || nodes < 2 {
			continue
		}
		down := 0
		if pdb.Spec.MaxUnavailable != nil {
			down, _ = intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, nodes, true)
		} else if pdb.Spec.MinAvailable != nil {
			up, _ := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, nodes, true)
			down = nodes - up
		}
		if nodes-down < nodes/2+1 {
			probs = append(probs, fmt.Sprintf("PDB %s lets %d of %d NATS nodes go; the quorum needs %d", pdb.Name, down, nodes, nodes/2+1))
		}
	}

	// Metrics: the scrape annotation names a port of the pod that serves
	// Prometheus metrics, fed from the monitoring port.
	port := wl.Template.Annotations["prometheus.io/port"]
	var exporter *corev1.Container
	for i := range spec.Containers {
		for _, p := range spec.Containers[i].Ports {
			if fmt.Sprint(p.ContainerPort) == port && p.Name == "metrics" {
				exporter = &spec.Containers[i]
			}
		}
	}
	monitor := fmt.Sprintf("http://localhost:%d", opts.HTTPPort)
	if wl.Template.Annotations["prometheus.io/scrape"] != "true" || exporter == nil || !slices.Contains(exporter.Args, monitor) {
		probs = append(probs, fmt.Sprintf("nats: no Prometheus metrics: want prometheus.io annotations naming a container port metrics whose exporter reads %s", monitor))
	}
	return probs
}

// TestNATSAuthorization runs the dev overlay's NATS configuration (its
// accounts, users, permissions and TLS) in a real server and connects as
// each service the way platform/bus does: each can declare the streams and
// its consumers and publish what it produces, and is refused another
// service's subjects and destroying data.
func TestNATSAuthorization(t *testing.T) {
	w := realWorld(t, "overlays/dev")
	wl, ctr, err := w.c.nats()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts, err := w.c.natsOptionsIn(wl, ctr, dir, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.HTTPPort, opts.ClientAdvertise = "127.0.0.1", -1, 0, ""
	opts.StoreDir, opts.PidFile = t.TempDir(), ""
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)
	var ca string
	for _, v := range wl.Template.Spec.Volumes {
		if v.Secret != nil {
			ca = filepath.Join(dir, v.Name, "ca.crt")
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The orchestrator is the bus's one consumer, and alone runs the
	// dead-letter mover.
	consumers := map[string][]bus.ConsumerSpec{
		"payment-orchestrator": {
			{Stream: bus.StreamERP, Durable: "payment-orchestrator-erp"},
			{Stream: bus.StreamGC, Durable: "payment-orchestrator-gc"},
			{Stream: bus.StreamDLQ, Durable: "payment-orchestrator-dlq"},
			{Stream: bus.StreamAdvisories, Durable: "mlc-dead-letter-mover"},
		},
	}
	// Its consumers exist before the others try to read them.
	orch, err := natsBusAs(t, w, url, ca, log, "payment-orchestrator")
	if err != nil {
		t.Fatal(err)
	}
	if err := orch.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, spec := range consumers["payment-orchestrator"] {
		if _, err := orch.EnsureConsumer(t.Context(), spec); err != nil {
			t.Fatalf("consumer %s/%s: %v", spec.Stream, spec.Durable, err)
		}
	}
	// So do a message in every stream and the audit checkpoints, so that
	// a refused read is refused for want of permission, not of data.
	ifs, err := natsBusAs(t, w, url, ca, log, "ifs-poller")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		b       *bus.Bus
		subject string
	}{{ifs, "mlc.erp.ifs.setup.invoice"}, {orch, "mlc.gc.payments.setup"}, {orch, "mlc.dlq.setup"}} {
		if _, err := p.b.Publish(t.Context(), bus.Msg{Subject: p.subject, ID: "setup-" + p.subject, Data: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	checkpointAsOrchestrator(t, w, url, ca)
	for _, svc := range w.services {
		t.Run(svc, func(t *testing.T) {
			user, pw, err := w.natsUserOf(svc)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if nc, err := bus.Connect(ctx, url, svc, log, bus.UserPassword(user, "wrong"), bus.RootCA(ca)); err == nil {
				nc.Close()
				t.Fatal("a wrong password was accepted")
			}
			// The server answers a refused request with an asynchronous
			// permissions violation naming the subject, which platform/bus
			// logs: that, not a timeout, is the proof of a refusal.
			violations := &lockedBuffer{}
			nc, err := bus.Connect(ctx, url, svc, slog.New(slog.NewTextHandler(violations, nil)), bus.UserPassword(user, testPassword(pw)), bus.RootCA(ca))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			b, err := bus.New(nc, bus.DefaultConfig(), log)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Ensure(ctx); err != nil {
				t.Fatalf("declaring the streams: %v", err)
			}
			for _, spec := range consumers[svc] {
				c, err := b.EnsureConsumer(ctx, spec)
				if err != nil {
					t.Fatalf("consumer %s/%s: %v", spec.Stream, spec.Durable, err)
				}
				if _, err := c.Info(ctx); err != nil {
					t.Fatalf("consumer %s/%s info: %v", spec.Stream, spec.Durable, err)
				}
			}
			publish := func(subject string) error {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := b.Publish(pctx, bus.Msg{Subject: subject, ID: svc + "-" + subject, Data: []byte("{}")})
				return err
			}
			for _, s := range append(slices.Clone(natsProduces[svc]), bus.SubjectsDLQ) {
				if err := publish(strings.Replace(s, ">", "acme.test", 1)); err != nil {
					t.Errorf("publish to %s: %v", s, err)
				}
			}
			for _, other := range []string{"mlc.erp.ifs.acme.invoice", "mlc.erp.jde.acme.invoice", "mlc.gc.payments.confirmed"} {
				if slices.ContainsFunc(natsProduces[svc], func(s string) bool { return strings.HasPrefix(other, strings.TrimSuffix(s, ">")) }) {
					continue
				}
				if err := publish(other); err == nil {
					t.Errorf("%s may publish %s", svc, other)
				}
			}
			// Replies only on the user's own inbox: not on every
			// service's (_INBOX.>), where it could read the messages the
			// orchestrator pulls, nor on another's.
			other := "payment-orchestrator"
			if svc == other {
				other = "erp-poster"
			}
			for _, inbox := range []string{"_INBOX.>", bus.InboxPrefix(other) + ".>"} {
				if sub, err := nc.SubscribeSync(inbox); err == nil {
					defer func() { _ = sub.Unsubscribe() }()
				}
				await.Until(t, 10*time.Second, svc+" refused to subscribe to "+inbox, func() bool {
					return strings.Contains(violations.String(), `Permissions Violation for Subscription to \"`+inbox+`\"`)
				})
			}
			// The orchestrator's key-value buckets (the audit log's
			// checkpoints, the shared GoCardless rate budgets): it, and no
			// other service, writes them.
			for _, bucket := range []string{"MLC_AUDIT_CHECKPOINTS", "MLC_GC_RATE_BUDGETS"} {
				kctx, kcancel := context.WithTimeout(ctx, 2*time.Second)
				kv, err := b.JetStream().CreateOrUpdateKeyValue(kctx, jetstream.KeyValueConfig{Bucket: bucket})
				if err == nil {
					_, err = kv.Put(kctx, "k", []byte("v"))
				}
				if err == nil {
					_, err = kv.Get(kctx, "k")
				}
				kcancel()
				if (err == nil) != (svc == "payment-orchestrator") {
					t.Errorf("%s writing and reading bucket %s: %v", svc, bucket, err)
				}
			}
			// Nobody reads what is not theirs through the JetStream API:
			// another service's consumers (their position in the ledger's
			// input), a consumer of their own on a stream they do not
			// consume, single messages, the list of streams.
			var reads sync.WaitGroup
			for _, r := range natsForeignReads(svc) {
				reads.Go(func() {
					rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
					defer rcancel()
					if err := r.read(rctx, b.JetStream()); err == nil {
						t.Errorf("%s may %s", svc, r.what)
					}
				})
			}
			reads.Wait()
			for _, r := range natsForeignReads(svc) {
				await.Until(t, 10*time.Second, svc+" refused to "+r.what, func() bool {
					return strings.Contains(violations.String(), `Permissions Violation for Publish to \"`+r.subject+`\"`)
				})
			}
			// A refused request is never answered: wait briefly.
			dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
			defer dcancel()
			if err := b.JetStream().DeleteStream(dctx, bus.StreamERP); err == nil {
				t.Fatalf("%s deleted stream %s", svc, bus.StreamERP)
			}
			if err := b.JetStream().DeleteConsumer(dctx, bus.StreamAdvisories, "mlc-dead-letter-mover"); err == nil {
				t.Errorf("%s deleted a consumer", svc)
			}
		})
	}
	// mlcctl's user reads the newest audit checkpoint (mlcctl audit
	// verify: the bucket's info, then a get) and may do nothing else.
	t.Run("mlcctl", func(t *testing.T) {
		js, violations := natsJetStreamAs(t, url, ca, "mlcctl",
			testPassword(&corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "mlc-nats"}, Key: "mlcctl"}))
		kv, err := js.KeyValue(t.Context(), "MLC_AUDIT_CHECKPOINTS")
		if err != nil {
			t.Fatalf("opening the checkpoints: %v", err)
		}
		// As mlcctl audit verify reads it: the manifest, then its object.
		store, err := auditkv.OpenExisting(t.Context(), js)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := store.Latest(t.Context())
		if err != nil || cp == nil || cp.Object != "heads-2" {
			t.Fatalf("reading the newest checkpoint: %+v, %v", cp, err)
		}
		heads, err := cp.OpenHeads(t.Context())
		if err == nil {
			var data []byte
			data, err = io.ReadAll(heads)
			heads.Close()
			if err == nil && !bytes.Equal(data, checkpointHeads) {
				err = fmt.Errorf("read %d bytes, want %d", len(data), len(checkpointHeads))
			}
		}
		if err != nil {
			t.Fatalf("reading the newest checkpoint's heads: %v", err)
		}
		objects, err := js.ObjectStore(t.Context(), auditkv.ObjectBucket)
		if err != nil {
			t.Fatal(err)
		}
		// A refused request is never answered: each waits briefly.
		refused := func(what string, try func(ctx context.Context) error) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			if err := try(ctx); err == nil {
				t.Errorf("mlcctl may %s", what)
			}
		}
		refused("overwrite the checkpoint", func(ctx context.Context) error {
			_, err := kv.Put(ctx, "latest", []byte(`{"forged":true}`))
			return err
		})
		refused("replace the checkpoint's heads", func(ctx context.Context) error {
			_, err := objects.PutBytes(ctx, "heads-2", []byte("forged"))
			return err
		})
		refused("delete the checkpoint's heads", func(ctx context.Context) error {
			return objects.Delete(ctx, "heads-2")
		})
		refused("publish GoCardless events", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "mlc.gc.payments.confirmed", []byte("{}"))
			return err
		})
		refused("open the rate budgets", func(ctx context.Context) error {
			_, err := js.KeyValue(ctx, "MLC_GC_RATE_BUDGETS")
			return err
		})
		await.Until(t, 10*time.Second, "mlcctl refused to write", func() bool {
			return strings.Contains(violations.String(), `Permissions Violation for Publish to \"$KV.MLC_AUDIT_CHECKPOINTS.latest\"`) &&
				strings.Contains(violations.String(), `Permissions Violation for Publish to \"$O.MLC_AUDIT_CHECKPOINT_HEADS.C.`) &&
				strings.Contains(violations.String(), `Permissions Violation for Publish to \"$O.MLC_AUDIT_CHECKPOINT_HEADS.M.`) &&
				strings.Contains(violations.String(), `Permissions Violation for Publish to \"mlc.gc.payments.confirmed\"`)
		})
	})

	// The orchestrator reads and acknowledges what the pollers published,
	// and its mover can copy a single message.
	b := orch
	s, err := b.JetStream().Stream(t.Context(), bus.StreamERP)
	if err == nil {
		_, err = s.GetMsg(t.Context(), 1)
	}
	if err != nil {
		t.Errorf("the orchestrator's mover cannot get a message of %s: %v", bus.StreamERP, err)
	}
	c, err := b.EnsureConsumer(t.Context(), consumers["payment-orchestrator"][0])
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if err := m.DoubleAck(t.Context()); err != nil {
			t.Errorf("ack %s: %v", m.Subject(), err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("the orchestrator fetched %d of the pollers' 3 messages (%v)", n, batch.Error())
	}
}

// checkpointHeads is the heads object the orchestrator stores for mlcctl
// to read: large enough for several chunks and flow control.
var checkpointHeads = bytes.Repeat([]byte("0123456789abcdef"), 40000)

// checkpointAsOrchestrator stores audit checkpoints as the orchestrator
// does (platform/audit/auditkv Open, Take, prune): it creates the bucket
// and the object store, writes heads objects and a manifest naming the
// newest, lists the objects and deletes the oldest, all without a
// permissions violation. It may also delete the manifest, as deploy/README.md
// says to when one is in the future, and publish the next over its tombstone.
func checkpointAsOrchestrator(t *testing.T, w *world, url, ca string) {
	t.Helper()
	user, pw, err := w.natsUserOf("payment-orchestrator")
	if err != nil {
		t.Fatal(err)
	}
	js, violations := natsJetStreamAs(t, url, ca, user, testPassword(pw))
	ctx := t.Context()
	store, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatalf("the orchestrator creating the checkpoint stores: %v", err)
	}
	objects, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"heads-1", "heads-2"} {
		if _, err := objects.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(checkpointHeads)); err != nil {
			t.Fatalf("the orchestrator writing heads object %s: %v", name, err)
		}
	}
	if err := store.Put(ctx, audit.Checkpoint{Version: 2, TakenAt: time.Now(), Object: "heads-2"}); err != nil {
		t.Fatalf("the orchestrator writing the manifest: %v", err)
	}
	infos, err := objects.List(ctx)
	if err != nil || len(infos) != 2 {
		t.Fatalf("the orchestrator listing heads objects: %d, %v", len(infos), err)
	}
	if err := objects.Delete(ctx, "heads-1"); err != nil {
		t.Fatalf("the orchestrator deleting an old heads object: %v", err)
	}
	if _, err := objects.GetInfo(ctx, "heads-1"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("heads-1 after its deletion: %v", err)
	}
	kv, err := js.KeyValue(ctx, auditkv.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "latest"); err != nil { // nats kv del MLC_AUDIT_CHECKPOINTS latest
		t.Fatalf("the orchestrator deleting the manifest: %v", err)
	}
	if err := store.Put(ctx, audit.Checkpoint{Version: 2, TakenAt: time.Now(), Object: "heads-2"}); err != nil {
		t.Fatalf("the orchestrator writing the manifest over its tombstone: %v", err)
	}
	if v := violations.String(); strings.Contains(v, "Permissions Violation") {
		t.Fatalf("the orchestrator's checkpoints: %s", v)
	}
}

// natsJetStreamAs connects to the test server as user, closed when the
// test ends, and returns the connection's JetStream and what the server
// reported on it (permissions violations).
func natsJetStreamAs(t *testing.T, url, ca, user, password string) (jetstream.JetStream, *lockedBuffer) {
	t.Helper()
	violations := &lockedBuffer{}
	nc, err := bus.Connect(t.Context(), url, user, slog.New(slog.NewTextHandler(violations, nil)), bus.UserPassword(user, password), bus.RootCA(ca))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js, violations
}

// natsBusAs connects to the test server as svc's NATS user, the way
// platform/bus does.
func natsBusAs(t *testing.T, w *world, url, ca string, log *slog.Logger, svc string) (*bus.Bus, error) {
	t.Helper()
	user, pw, err := w.natsUserOf(svc)
	if err != nil {
		return nil, err
	}
	nc, err := bus.Connect(t.Context(), url, svc, log, bus.UserPassword(user, testPassword(pw)), bus.RootCA(ca))
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	return bus.New(nc, bus.DefaultConfig(), log)
}

// natsRead is a JetStream API read and the API subject it asks on.
type natsRead struct {
	what, subject string
	read          func(context.Context, jetstream.JetStream) error
}

// natsForeignReads are the JetStream API reads svc must be refused.
func natsForeignReads(svc string) []natsRead {
	consumerOf := func(stream, durable string) func(context.Context, jetstream.JetStream) error {
		return func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.Consumer(ctx, stream, durable)
			return err
		}
	}
	spy := func(stream string) func(context.Context, jetstream.JetStream) error {
		return func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "spy", AckPolicy: jetstream.AckExplicitPolicy})
			return err
		}
	}
	reads := []natsRead{
		{"list the streams", "$JS.API.STREAM.NAMES", func(ctx context.Context, js jetstream.JetStream) error {
			names := js.StreamNames(ctx)
			for range names.Name() {
			}
			return names.Err()
		}},
		{"create a consumer of another name on " + bus.StreamERP, "$JS.API.CONSUMER.CREATE." + bus.StreamERP + ".spy", spy(bus.StreamERP)},
		{"create a consumer of another name on " + bus.StreamGC, "$JS.API.CONSUMER.CREATE." + bus.StreamGC + ".spy", spy(bus.StreamGC)},
	}
	if svc == "payment-orchestrator" {
		return reads
	}
	reads = append(reads,
		natsRead{"read the orchestrator's consumer of " + bus.StreamERP, "$JS.API.CONSUMER.INFO.MLC_ERP.payment-orchestrator-erp",
			consumerOf(bus.StreamERP, "payment-orchestrator-erp")},
		natsRead{"read the orchestrator's consumer of " + bus.StreamGC, "$JS.API.CONSUMER.INFO.MLC_GC.payment-orchestrator-gc",
			consumerOf(bus.StreamGC, "payment-orchestrator-gc")},
		natsRead{"take over the dead-letter mover", "$JS.API.CONSUMER.INFO.MLC_ADVISORIES.mlc-dead-letter-mover",
			consumerOf(bus.StreamAdvisories, "mlc-dead-letter-mover")},
		natsRead{"read the audit checkpoints", "$JS.API.STREAM.INFO.KV_MLC_AUDIT_CHECKPOINTS", func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.KeyValue(ctx, "MLC_AUDIT_CHECKPOINTS")
			return err
		}},
		natsRead{"read the audit checkpoints' heads", "$JS.API.STREAM.INFO.OBJ_MLC_AUDIT_CHECKPOINT_HEADS", func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
			return err
		}})
	for _, stream := range []string{bus.StreamERP, bus.StreamGC, bus.StreamDLQ} {
		reads = append(reads, natsRead{"get a message of " + stream, "$JS.API.STREAM.MSG.GET." + stream, func(ctx context.Context, js jetstream.JetStream) error {
			s, err := js.Stream(ctx, stream)
			if err != nil {
				return err
			}
			_, err = s.GetMsg(ctx, 1)
			return err
		}})
	}
	return reads
}

// lockedBuffer is a log sink written by the connection's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
