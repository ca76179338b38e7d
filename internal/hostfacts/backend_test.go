package hostfacts

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/spec"
)

func TestChooseBackend(t *testing.T) {
	user := Environment{Squashfuse: "/usr/bin/squashfuse_ll"}
	tests := []struct {
		name string
		want Choice
		env  Environment
		got  spec.Backend
		err  string
	}{
		{"root gets the kernel", "", Environment{Root: true}, spec.BackendLoop, ""},
		{"user gets squashfuse", "", user, spec.BackendSquashfuse, ""},
		{"root may ask for squashfuse", "squashfuse", Environment{Root: true, Squashfuse: "/x"}, spec.BackendSquashfuse, ""},
		{"root asking for squashfuse needs it", "squashfuse", Environment{Root: true}, "", "install the squashfuse package"},
		{"user cannot have loop", "loop", user, "", "needs root"},
		{"no squashfuse", "", Environment{}, "", "install the squashfuse package"},
		{"no fuse device", "", Environment{Squashfuse: "/x", FUSEError: errors.New("permission denied")}, "", "/dev/fuse"},
		{"unknown", "nbd", user, "", "unknown mount backend"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChooseBackend(tt.want, tt.env)
			if tt.err == "" {
				if err != nil || got != tt.got {
					t.Fatalf("got %q, %v; want %q", got, err, tt.got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.err)
			}
			if tt.err != "unknown mount backend" && !errors.Is(err, ErrNoBackend) {
				t.Errorf("err %v is not ErrNoBackend", err)
			}
			if strings.Contains(tt.err, "squashfuse") && !strings.Contains(err.Error(), "--unsquash") {
				t.Errorf("err %v does not mention --unsquash", err)
			}
		})
	}
}

// TestSquashfusePath checks that a configured squashfuse_ll is used as it is, or not at all when
// it cannot be run: PATH is looked up only when none is configured.
func TestSquashfusePath(t *testing.T) {
	dir := t.TempDir()
	exe, plain := dir+"/squashfuse_ll", dir+"/not-executable"
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := squashfusePath(exe); got != exe {
		t.Errorf("configured %s: got %q", exe, got)
	}
	if got := squashfusePath(plain); got != "" {
		t.Errorf("configured %s, not executable: got %q, want none", plain, got)
	}
	t.Setenv("PATH", dir)
	if got := squashfusePath(""); got != exe {
		t.Errorf("none configured, PATH=%s: got %q, want %s", dir, got, exe)
	}
}
