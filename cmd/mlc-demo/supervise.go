package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A process is one service run as its own OS process under a supervisor
// that does what Kubernetes does for a pod: when the process dies without
// being asked to stop, it is started again with the same settings after a
// back-off, and the demo says so.
type process struct {
	name     string
	httpAddr string
	logPath  string
	binary   string
	env      []string
	out      io.Writer

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	restarts int
	// quickDeaths counts consecutive exits within crashWindow of a start;
	// past crashLoopLimit the supervisor gives up (CrashLoopBackOff).
	quickDeaths int
	started     time.Time
	gaveUp      error
	exits       chan error // one value per exit of the current cmd
	stopped     chan error // the exit after stop was asked, then closed
	stopOnce    sync.Once
}

const (
	crashWindow    = 5 * time.Second
	crashLoopLimit = 5
	backoffMin     = 200 * time.Millisecond
	backoffMax     = 5 * time.Second
)

func startService(binDir, workDir, name string, env []string, out io.Writer) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &process{
		name: name, httpAddr: addr, logPath: filepath.Join(workDir, name+".log"),
		binary: filepath.Join(binDir, name), out: out,
		// A fresh slice: appending to env could write into a backing array
		// shared with another service's settings.
		env:   slices.Concat(env, []string{"HTTP_ADDR=" + addr}),
		exits: make(chan error, 1), stopped: make(chan error, 1),
	}
	p.mu.Lock()
	err = p.launch()
	p.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("start %s (run make build first): %w", name, err)
	}
	go p.supervise()
	return p, nil
}

// launch starts the binary, appending to the service's log. p.mu is held.
func (p *process) launch() error {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.binary)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	p.cmd, p.started = cmd, time.Now()
	go func() {
		err := cmd.Wait()
		logFile.Close()
		p.exits <- err
	}()
	return nil
}

func (p *process) supervise() {
	backoff := backoffMin
	for {
		err := <-p.exits
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			p.stopped <- err
			return
		}
		if time.Since(p.started) < crashWindow {
			p.quickDeaths++
		} else {
			p.quickDeaths, backoff = 0, backoffMin
		}
		if p.quickDeaths > crashLoopLimit {
			p.gaveUp = fmt.Errorf("%s died %d times within %v of starting; last exit %v:\n%s", p.name, p.quickDeaths, crashWindow, err, tail(p.logPath, 15))
			p.mu.Unlock()
			fmt.Fprintf(p.out, "supervisor: %s is crash-looping; not restarting it\n", p.name)
			p.stopped <- err
			return
		}
		p.restarts++
		n := p.restarts
		p.mu.Unlock()
		said := fmt.Sprintf("supervisor: %s exited (%v); restarting it in %v (restart %d)\n", p.name, describeExit(err), backoff, n)
		if !killedBySignal(err) {
			// It stopped by itself: its last words say why (make chaos
			// SEED=542581 showed only "exit status 1", and the log went
			// with the run's directory).
			said += "  " + strings.ReplaceAll(tail(p.logPath, 5), "\n", "\n  ") + "\n"
		}
		fmt.Fprint(p.out, said)
		time.Sleep(backoff)
		backoff = min(2*backoff, backoffMax)
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			p.stopped <- nil
			return
		}
		if err := p.launch(); err != nil {
			p.gaveUp = fmt.Errorf("restart %s: %w", p.name, err)
			p.mu.Unlock()
			p.stopped <- err
			return
		}
		p.mu.Unlock()
	}
}

// killedBySignal reports whether a process's exit was a signal's doing
// (SIGKILL from --chaos, the OOM killer) rather than its own.
func killedBySignal(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

func describeExit(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// kill sends SIGKILL, as a crashed node or the OOM killer would; the
// supervisor starts the service again.
func (p *process) kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	return nil
}

// failed reports a service the supervisor gave up on.
func (p *process) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gaveUp
}

func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// stop asks the service to drain with SIGTERM and waits for it to exit;
// the supervisor will not restart it.
func (p *process) stop(timeout time.Duration) error {
	p.mu.Lock()
	p.stopping = true
	if p.gaveUp == nil && p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	p.mu.Unlock()
	var err error
	p.stopOnce.Do(func() {
		select {
		case err = <-p.stopped:
		case <-time.After(timeout):
			err = fmt.Errorf("did not stop within %v of SIGTERM", timeout)
		}
	})
	return err
}

// forceStop kills whatever is left, for when the demo ends on an error.
func (p *process) forceStop() {
	p.mu.Lock()
	p.stopping = true
	if p.cmd != nil && p.cmd.ProcessState == nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	p.mu.Unlock()
}

// syncWriter serializes the demo's output: the supervisors write from
// their own goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
