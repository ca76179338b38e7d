package launcher

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/launcher/child"
	"github.com/hpcctl/hpcctl/internal/sif/siftest"
	"github.com/hpcctl/hpcctl/internal/signals"
	"github.com/hpcctl/hpcctl/internal/spec"
	"github.com/hpcctl/hpcctl/internal/testutil"
)

// TestMain routes the child stage, as cmd/hpcctl does: the launcher re-executes /proc/self/exe,
// which is this test binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == child.SetupArg {
		os.Exit(child.Main())
	}
	os.Exit(m.Run())
}

// sandboxSpec is a root-run container of a busybox sandbox with out bound at /out.
func sandboxSpec(t *testing.T, script string) (*spec.Spec, string) {
	t.Helper()
	testutil.NeedRoot(t)
	bb := testutil.NeedCommands(t, "busybox")[0]
	tree, out := filepath.Join(t.TempDir(), "tree"), t.TempDir()
	if err := siftest.BusyboxTree(tree, bb); err != nil {
		t.Fatal(err)
	}
	return &spec.Spec{
		Namespaces: spec.Namespaces{Mount: true, PID: true},
		RootFS:     spec.RootFS{Backend: spec.BackendDir, Image: tree},
		Mounts: []spec.Mount{{Kind: spec.KindBind, Source: "/proc", Destination: "/proc", Recursive: true},
			{Kind: spec.KindBind, Source: "/dev", Destination: "/dev", Recursive: true}, {Kind: spec.KindBind, Source: out, Destination: "/out"}},
		Env:              []string{"PATH=/bin"},
		Args:             []string{"sh", "-c", script},
		Cwd:              "/",
		KeepCapabilities: true,
	}, out
}

func TestPIDNamespaceInit(t *testing.T) {
	tests := []struct {
		name   string
		script string
		status int
		out    string
	}{
		// /proc is the host's: /proc/self names the host PID, $$ the one in the new namespace.
		{"program has its own PID namespace", `[ "$$" != "$(readlink /proc/self)" ] && [ "$$" -lt 100 ] && echo yes > /out/r`, 0, "yes\n"},
		{"exit status", "exit 5", 5, ""},
		{"killed by a signal", "kill -9 $$", 137, ""},
		// 137 as an exit code is not a death by signal: only the init's report tells them apart.
		{"exits 137", "exit 137", 137, ""},
		// The orphan is reparented to init, which reaps it; the program's status still wins.
		{"orphans reaped", "(sleep 0.1; exit 9) & sleep 0.3; echo done > /out/r; exit 4", 4, "done\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, out := sandboxSpec(t, tt.script)
			start := time.Now()
			status, err := Run(context.Background(), s, Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			t.Logf("ran in %v", time.Since(start))
			if err != nil {
				t.Fatal(err)
			}
			if status.Code != tt.status {
				t.Errorf("status %d, want %d", status.Code, tt.status)
			}
			if wantSig := strings.HasPrefix(tt.script, "kill -9"); (status.Signal == syscall.SIGKILL) != wantSig {
				t.Errorf("signal %v, want SIGKILL: %v", status.Signal, wantSig)
			}
			if tt.out != "" {
				if b, _ := os.ReadFile(filepath.Join(out, "r")); string(b) != tt.out {
					t.Errorf("output %q, want %q", b, tt.out)
				}
			}
		})
	}
}

func TestPIDNamespaceForwardsSignals(t *testing.T) {
	s, out := sandboxSpec(t, `trap 'echo term > /out/got; kill $!; exit 7' TERM; echo > /out/ready; sleep 60 & wait`)
	type result struct {
		status Status
		err    error
	}
	done := make(chan result, 1)
	go func() {
		st, err := Run(context.Background(), s, Options{})
		done <- result{st, err}
	}()
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(out, "ready")); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the program did not start")
		}
	}
	// Run passes on the signals this process receives, through the container's init.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.status.Code != 7 || r.status.Signal != 0 {
		t.Errorf("status %+v, err %v; want 7 from the trap", r.status, r.err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "got")); string(b) != "term\n" {
		t.Errorf("the program did not get SIGTERM: %q", b)
	}
}

func TestRunReportsSetupErrors(t *testing.T) {
	s, _ := sandboxSpec(t, "true")
	s.Mounts = append(s.Mounts, spec.Mount{Kind: spec.KindBind, Source: "/no/such/dir", Destination: "/x"})
	_, err := Run(context.Background(), s, Options{})
	var se *StartError
	if err == nil || !strings.Contains(err.Error(), "/no/such/dir") {
		t.Fatalf("err = %v, want it to name the missing source", err)
	}
	if !asStartError(err, &se) || se.Status != 1 {
		t.Errorf("err %v: want a StartError with status 1", err)
	}
	s, _ = sandboxSpec(t, "true")
	s.Namespaces.PID = false
	s.Args = []string{"no-such-program"}
	_, err = Run(context.Background(), s, Options{})
	if !asStartError(err, &se) || se.Status != 127 {
		t.Errorf("err %v: want a StartError with status 127", err)
	}
	if _, err := exec.LookPath("true"); err != nil {
		t.Skip()
	}
}

func asStartError(err error, se **StartError) bool {
	var e *StartError
	ok := errors.As(err, &e)
	if ok {
		*se = e
	}
	return ok
}

// A prestarted stage runs the Spec when its namespaces fit, and is replaced when they do not.
func TestPrestartedStage(t *testing.T) {
	for _, tc := range []struct {
		name string
		sh   spec.Shape
	}{
		{"fits", spec.Shape{Namespaces: spec.Namespaces{Mount: true, PID: true}}},
		{"other namespaces", spec.Shape{Namespaces: spec.Namespaces{Mount: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, out := sandboxSpec(t, "echo ran > /out/r")
			p := Prestart(tc.sh, Options{})
			status, err := Run(context.Background(), s, Options{Prestarted: p})
			if err != nil || status.Code != 0 {
				t.Fatalf("status %+v, err %v", status, err)
			}
			if b, _ := os.ReadFile(filepath.Join(out, "r")); string(b) != "ran\n" {
				t.Errorf("the program did not run: %q", b)
			}
			p.Abandon() // a no-op on a stage Run took or replaced
			if p.err != nil || p.st.cmd.ProcessState == nil {
				t.Error("the prestarted stage was not waited for")
			}
		})
	}
}

// A launch told to stop while hpcctl prepared it starts nothing, and an unused stage ends.
func TestRunCancelledStartsNothing(t *testing.T) {
	s, out := sandboxSpec(t, "echo ran > /out/r")
	p := Prestart(s.Shape(), Options{})
	stop := errors.New("interrupted")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(stop)
	if _, err := Run(ctx, s, Options{Prestarted: p}); !errors.Is(err, stop) {
		t.Errorf("err = %v, want the cancellation's cause", err)
	}
	p.Abandon()
	if p.err != nil || p.st.cmd.ProcessState == nil {
		t.Error("the abandoned stage was not waited for")
	}
	if _, err := os.Stat(filepath.Join(out, "r")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the program ran (%v)", err)
	}
}

// programStarted tells a server that ended after the program started (the socket closed first)
// from one that died during the setup (the socket still open).
func TestProgramStarted(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	st := &setupProcess{sock: pair[0]}
	if st.programStarted() {
		t.Error("programStarted with the setup process's end still open")
	}
	if err := child.SendFD(pair[1], child.MsgError, 0); err != nil {
		t.Fatal(err)
	}
	if st.programStarted() {
		t.Error("programStarted with a message waiting")
	}
	if _, err := child.Receive(pair[0]); err != nil {
		t.Fatal(err)
	}
	unix.Close(pair[1])
	if !st.programStarted() {
		t.Error("not programStarted after the setup process closed its end")
	}
}

// TestForwardedSignals checks the launcher's signals against the container init's: the same but
// the terminal's job-control stops, which hpcctl must not catch.
func TestForwardedSignals(t *testing.T) {
	for _, sig := range signals.Forwarded {
		jobControl := slices.Contains(signals.JobControl, sig)
		if got := slices.Contains(forwarded, sig); got == jobControl {
			t.Errorf("%v: forwarded by the launcher %v, a job-control stop %v", sig, got, jobControl)
		}
	}
	for _, sig := range append(slices.Clone(forwarded), signals.JobControl...) {
		if !slices.Contains(signals.Forwarded, sig) {
			t.Errorf("%v is not forwarded by the container's init", sig)
		}
	}
	for _, sig := range []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGXCPU} {
		if !slices.Contains(forwarded, sig) {
			t.Errorf("the launcher does not forward %v", sig)
		}
	}
}
