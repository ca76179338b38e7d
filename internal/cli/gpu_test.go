package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/gpu/gputest"
)

// TestGPUTestRootIgnoredWhenPrivileged: the fake driver layout of the tests is read on the
// user-namespace path only; through the setuid starter it would let a user choose what the
// privileged path binds.
func TestGPUTestRootIgnoredWhenPrivileged(t *testing.T) {
	root := t.TempDir()
	l := gputest.Layout{Libs: []string{"libcuda.so.1"}, Programs: []string{"nvidia-smi"}, Devices: []string{"nvidia0"}}
	if _, err := l.Make(root); err != nil {
		t.Fatal(err)
	}
	t.Setenv(gpuTestRootEnv, root)
	for _, privileged := range []bool{false, true} {
		var stderr bytes.Buffer
		g := &Globals{Stderr: &stderr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		o := gpuOptions{nv: true}
		if err := o.resolve(context.Background(), g, privileged); err != nil {
			t.Fatal(err)
		}
		fromFake := 0
		for _, m := range o.found.Mounts {
			if strings.HasPrefix(m.Source, root) {
				fromFake++
			}
		}
		switch {
		case !privileged && fromFake != 3:
			t.Errorf("user-namespace path: %d binds from the fake layout, want 3: %+v", fromFake, o.found.Mounts)
		case privileged && fromFake != 0:
			t.Errorf("privileged path: binds from $%s: %+v", gpuTestRootEnv, o.found.Mounts)
		}
	}
}

// TestGPUNothingFoundWarns: one line, naming the flag and the list, and -q silences it.
func TestGPUNothingFoundWarns(t *testing.T) {
	root := t.TempDir()
	if _, err := (gputest.Layout{}).Make(root); err != nil {
		t.Fatal(err)
	}
	t.Setenv(gpuTestRootEnv, root)
	for _, quiet := range []bool{false, true} {
		var stderr bytes.Buffer
		g := &Globals{Stderr: &stderr, Quiet: quiet, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		o := gpuOptions{rocm: true}
		if err := o.resolve(context.Background(), g, false); err != nil {
			t.Fatal(err)
		}
		out := stderr.String()
		if quiet {
			if out != "" {
				t.Errorf("-q printed %q", out)
			}
			continue
		}
		if strings.Count(out, "\n") != 1 || !strings.Contains(out, "--rocm") || !strings.Contains(out, "rocmliblist.conf") {
			t.Errorf("warning %q: want one line naming --rocm and its list", out)
		}
	}
}

func TestGPUBadDevice(t *testing.T) {
	g := &Globals{Stderr: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	o := gpuOptions{devices: []string{"nvidia.com/gpu=0,notaname"}}
	err := o.resolve(context.Background(), g, false)
	var ue UsageError
	if err == nil || !strings.Contains(err.Error(), `"notaname"`) || !errors.As(err, &ue) {
		t.Errorf("--device with a bad name: %v, want a usage error naming it", err)
	}
}
