package gcsim

import (
	"container/heap"
	"time"
)

// job is a transition due at a simulated instant. Jobs re-check the state
// they expect when they run, so a job made stale by an API call (a payment
// cancelled before submission) does nothing.
type job struct {
	at  time.Time
	seq uint64
	run func(at time.Time)
}

// jobQueue is a min-heap on (at, seq): due jobs run in time order, and
// jobs due at the same instant in the order they were scheduled, which
// keeps runs deterministic.
type jobQueue []*job

func (q jobQueue) Len() int { return len(q) }
func (q jobQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q jobQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *jobQueue) Push(x any)   { *q = append(*q, x.(*job)) }
func (q *jobQueue) Pop() any {
	old := *q
	n := len(old)
	j := old[n-1]
	old[n-1] = nil
	*q = old[:n-1]
	return j
}

// schedule runs fn at the simulated instant at (or at the next processing
// of due jobs, if at has passed). Callers hold s.mu.
func (s *Sim) schedule(at time.Time, fn func(at time.Time)) {
	heap.Push(&s.jobs, &job{at: at, seq: s.nextSeq(), run: fn})
}

// runDue runs every job due at or before now. A job may schedule more
// jobs, which run in the same call if they are due too. Callers hold s.mu.
func (s *Sim) runDue(now time.Time) {
	for len(s.jobs) > 0 && !s.jobs[0].at.After(now) {
		j := heap.Pop(&s.jobs).(*job)
		j.run(j.at)
	}
}

// origins of events.
const (
	originAPI        = "api"
	originGoCardless = "gocardless"
	originBank       = "bank"
	originCustomer   = "customer"
)

// emit records an event about a resource and queues it for webhook
// delivery. Callers hold s.mu.
func (s *Sim) emit(at time.Time, resourceType, action string, links map[string]string, details EventDetails, metadata, resourceMetadata map[string]string) *Event {
	ev := &Event{
		ID:               s.newID(prefixEvent),
		CreatedAt:        formatTime(at),
		ResourceType:     resourceType,
		Action:           action,
		Links:            links,
		Details:          details,
		Metadata:         cloneOrEmpty(metadata),
		ResourceMetadata: cloneOrEmpty(resourceMetadata),
		seq:              s.nextSeq(),
		created:          at,
	}
	s.events.add(ev.ID, ev)
	s.enqueueWebhook(ev)
	return ev
}

func cloneOrEmpty(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func boolPtr(b bool) *bool { return &b }
