package child

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/spec"
)

func TestSkipOptional(t *testing.T) {
	optional := spec.Mount{Kind: spec.KindBind, Source: "/etc/localtime", Destination: "/etc/localtime", Optional: true}
	required := optional
	required.Optional = false
	tests := []struct {
		name string
		m    spec.Mount
		err  error
		want bool
	}{
		{"optional, missing", optional, unix.ENOENT, true},
		{"optional, missing, wrapped", optional, &mount.Error{Err: unix.ENOENT}, true},
		{"optional, permission denied", optional, unix.EACCES, false},
		{"optional, not permitted", optional, unix.EPERM, false},
		{"optional, not a directory", optional, unix.ENOTDIR, false},
		{"optional, other", optional, errors.New("bind /a onto /b: /a is a directory"), false},
		{"required, missing", required, unix.ENOENT, false},
	}
	for _, tt := range tests {
		if got := skipOptional(tt.m, tt.err); got != tt.want {
			t.Errorf("%s: skipOptional = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestOpenSourcesOptional(t *testing.T) {
	dir := t.TempDir()
	missing := spec.Mount{Kind: spec.KindBind, Source: filepath.Join(dir, "missing"), Destination: "/m", Optional: true}
	ss, err := openSources([]spec.Mount{missing}, nil)
	if err != nil {
		t.Fatalf("an optional bind of a missing source: %v, want it skipped", err)
	}
	if !skipped(missing, ss[0]) {
		t.Errorf("an optional bind of a missing source is not skipped")
	}
	ss.close()

	if os.Geteuid() == 0 {
		t.Skip("root reads a mode-0 directory (CAP_DAC_OVERRIDE); make test-unit-user covers the rest")
	}
	locked := filepath.Join(dir, "locked")
	if err = os.MkdirAll(filepath.Join(locked, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err = os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(locked, 0o755) //nolint:errcheck // TempDir's cleanup needs it back
	denied := spec.Mount{Kind: spec.KindBind, Source: filepath.Join(locked, "data"), Destination: "/d", Optional: true}
	_, err = openSources([]spec.Mount{denied}, nil)
	if !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), denied.Source) {
		t.Errorf("an optional bind of a source the user cannot reach: %v, want EACCES naming %s", err, denied.Source)
	}
}

func TestOptionalFailed(t *testing.T) {
	m := spec.Mount{Kind: spec.KindBind, Source: "/etc/hosts", Destination: "/etc/hosts", Optional: true}
	err := optionalFailed(m, unix.EACCES)
	if !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), "/etc/hosts") || !strings.Contains(err.Error(), "optional") {
		t.Errorf("optionalFailed = %v, want EACCES naming the optional mount", err)
	}
	m.Optional = false
	if err := optionalFailed(m, unix.EACCES); err != unix.EACCES { //nolint:errorlint // the same error, unwrapped, is the point
		t.Errorf("a required mount's error changed: %v", err)
	}
}

// TestStepLog sends steps over a SOCK_SEQPACKET pair as the child does and reads them as the
// parent does.
func TestStepLog(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	log := &stepLog{sock: pair[1]}
	m := spec.Mount{Kind: spec.KindBind, Source: "/data", Destination: "/mnt", Recursive: true, ReadOnly: true}
	log.mount(m, nil)
	log.done(Step{Step: "pivot_root", Target: "/"}, unix.EINVAL) //nolint:errcheck // logged, not handled

	want := []Step{
		{Step: "bind", Source: "/data", Target: "/mnt", Flags: "ro,bind,rec"},
		{Step: "pivot_root", Target: "/", Error: unix.EINVAL.Error()},
	}
	for _, w := range want {
		msg, err := Receive(pair[0])
		if err != nil || msg == nil || msg.Kind != MsgLog {
			t.Fatalf("Receive = %+v, %v; want a log message", msg, err)
		}
		got, err := ParseStep(msg.Text)
		if err != nil || got != w {
			t.Errorf("step %+v (%v), want %+v", got, err, w)
		}
	}
	var off *stepLog
	if err := off.done(Step{Step: "x"}, unix.EPERM); !errors.Is(err, unix.EPERM) {
		t.Errorf("a nil step log changed the error: %v", err)
	}
	off.mount(m, nil) // must not panic
}

func TestStepAttrs(t *testing.T) {
	got := Step{Step: "bind", Source: "/a", Target: "/b", Error: "denied"}.Attrs()
	want := []any{"step", "bind", "source", "/a", "target", "/b", "error", "denied"}
	if len(got) != len(want) {
		t.Fatalf("Attrs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Attrs = %v, want %v", got, want)
		}
	}
}

// TestLongError checks that an error longer than a packet arrives cut, saying so, rather than
// cut silently.
func TestLongError(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	for _, n := range []int{5000, 2 * MaxPacket} {
		text := strings.Repeat("x", n)
		if err := sendPacket(pair[1], MsgError, append([]byte{3}, text...)); err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		msg, err := Receive(pair[0])
		if err != nil || msg == nil {
			t.Fatalf("Receive: %v", err)
		}
		if msg.Status != 3 {
			t.Errorf("status %d, want 3", msg.Status)
		}
		switch {
		case n < MaxPacket && msg.Text != text:
			t.Errorf("a %d-byte error arrived as %d bytes", n, len(msg.Text))
		case n >= MaxPacket && !strings.HasSuffix(msg.Text, cutNote):
			t.Errorf("a %d-byte error arrived cut without saying so", n)
		}
	}
}
