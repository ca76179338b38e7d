package mount

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenWritableOverlay: another user's links and loose modes in a writable overlay directory
// are refused, and nothing is created through a link.
func TestOpenWritableOverlay(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir, victim string) string // returns the overlay directory
		uid   int
		want  string
	}{
		{"fresh", func(t *testing.T, dir, _ string) string { return mkdir(t, dir, "ov", 0o755) }, uid, ""},
		{"group writable, own group", func(t *testing.T, dir, _ string) string { return mkdir(t, dir, "ov", 0o775) }, uid, ""},
		{"world writable", func(t *testing.T, dir, _ string) string { return mkdir(t, dir, "ov", 0o777) }, uid, "writable by other users"},
		{"another owner", func(t *testing.T, dir, _ string) string { return mkdir(t, dir, "ov", 0o755) }, uid + 1, "not to you"},
		{"another owner, for root", func(t *testing.T, dir, _ string) string { return mkdir(t, dir, "ov", 0o755) }, 0, ""},
		{"another owner's links, for root", func(t *testing.T, dir, victim string) string {
			ov := mkdir(t, dir, "ov", 0o755)
			must(t, os.Symlink(victim, filepath.Join(ov, "upper")))
			return ov
		}, 0, "ov/upper is a symbolic link"},
		{"world writable, for root", func(t *testing.T, dir, _ string) string { return mkdir(t, dir, "ov", 0o777) }, 0, "writable by other users"},
		{"dir is a link", func(t *testing.T, dir, victim string) string {
			link := filepath.Join(dir, "ov")
			must(t, os.Symlink(victim, link))
			return link
		}, uid, "symbolic link"},
		{"work is a link", func(t *testing.T, dir, victim string) string {
			ov := mkdir(t, dir, "ov", 0o755)
			must(t, os.Symlink(victim, filepath.Join(ov, "work")))
			return ov
		}, uid, "ov/work is a symbolic link"},
		{"upper is a link", func(t *testing.T, dir, victim string) string {
			ov := mkdir(t, dir, "ov", 0o755)
			must(t, os.Symlink(victim, filepath.Join(ov, "upper")))
			return ov
		}, uid, "ov/upper is a symbolic link"},
		{"upper world writable", func(t *testing.T, dir, _ string) string {
			ov := mkdir(t, dir, "ov", 0o755)
			mkdir(t, ov, "upper", 0o777)
			return ov
		}, uid, "ov/upper is writable by other users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := mkdir(t, dir, "victim", 0o755)
			ov := tt.setup(t, dir, victim)
			upper, work, err := OpenWritableOverlay(ov, tt.uid, gid, true)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				unix.Close(upper)
				unix.Close(work)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
			if left, _ := os.ReadDir(victim); len(left) != 0 {
				t.Errorf("created in the link's target: %v", left)
			}
		})
	}
}

func mkdir(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.Mkdir(p, mode))
	must(t, os.Chmod(p, mode))
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
