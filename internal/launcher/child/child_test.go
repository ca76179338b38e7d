package child

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMergeEntries(t *testing.T) {
	old := "root:x:0:0:root:/root:/bin/sh\nalice:x:5:5::/old:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\ndaemon:x:1:1::/:/bin/false\n"
	got := MergeEntries(old, []string{"alice:x:1000:100:Alice:/home/alice:/bin/bash"})
	want := "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\nalice:x:1000:100:Alice:/home/alice:/bin/bash\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := MergeEntries("", []string{"users:x:100:alice"}); got != "users:x:100:alice\n" {
		t.Errorf("empty file: got %q", got)
	}
	if got := MergeEntries("root:x:0:\nusers:x:100:\n", nil); got != "root:x:0:\nusers:x:100:\n" {
		t.Errorf("no lines: got %q", got)
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		ws   unix.WaitStatus
		want int
	}{
		{0, 0},
		{3 << 8, 3},
		{255 << 8, 255},
		{unix.WaitStatus(unix.SIGKILL), 137},
		{unix.WaitStatus(unix.SIGTERM), 143},
		{unix.WaitStatus(unix.SIGSEGV) | 0x80, 139}, // core dumped
	}
	for _, tt := range tests {
		if got := ExitStatus(tt.ws); got != tt.want {
			t.Errorf("ExitStatus(%#x) = %d, want %d", uint32(tt.ws), got, tt.want)
		}
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{errors.New("mount failed"), 1},
		{programError{commandStatus(unix.ENOENT), unix.ENOENT}, 127},
		{programError{commandStatus(fmt.Errorf("x: %w", errNotFound)), errNotFound}, 127},
		{programError{commandStatus(unix.EACCES), unix.EACCES}, 126},
		{fmt.Errorf("wrapped: %w", programError{126, unix.ENOEXEC}), 126},
	}
	for _, tt := range tests {
		if got := statusOf(tt.err); got != tt.want {
			t.Errorf("statusOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestAddEntries(t *testing.T) {
	root := []string{"root:x:0:0:root:/root:/bin/sh"}
	for _, tt := range []struct{ old, want string }{
		{"", "root:x:0:0:root:/root:/bin/sh\n"},
		{"nobody:x:65534:65534::/:/bin/false", "nobody:x:65534:65534::/:/bin/false\nroot:x:0:0:root:/root:/bin/sh\n"},
		{"root:x:0:0:Boss:/home/root:/bin/zsh\n", "root:x:0:0:Boss:/home/root:/bin/zsh\n"},
		{"toor:x:0:0::/:/bin/sh\n", "toor:x:0:0::/:/bin/sh\n"},
	} {
		if got := AddEntries(tt.old, root); got != tt.want {
			t.Errorf("AddEntries(%q) = %q, want %q", tt.old, got, tt.want)
		}
	}
}
