package starter

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPrefix(t *testing.T) {
	for _, c := range []struct{ exe, prefix, conf string }{
		{"/opt/hpcctl/libexec/hpcctl/hpcctl-starter", "/opt/hpcctl", "/etc/hpcctl/hpcctl.conf"}, // no file there
		{"/opt/hpcctl/bin/hpcctl-starter", "/opt/hpcctl", "/etc/hpcctl/hpcctl.conf"},
		{"/usr/libexec/hpcctl/hpcctl-starter", "/usr", "/etc/hpcctl/hpcctl.conf"},
		{"/somewhere/hpcctl-starter", "", "/etc/hpcctl/hpcctl.conf"},
	} {
		if got := Prefix(c.exe); got != c.prefix {
			t.Errorf("Prefix(%s) = %q, want %q", c.exe, got, c.prefix)
		}
		if got := ConfigPath(c.exe); got != c.conf {
			t.Errorf("ConfigPath(%s) = %q, want %q", c.exe, got, c.conf)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc", "hpcctl", "hpcctl.conf")
	os.MkdirAll(filepath.Dir(conf), 0o755) //nolint:errcheck // checked below
	os.WriteFile(conf, nil, 0o644)         //nolint:errcheck // checked below
	if got := ConfigPath(filepath.Join(dir, "libexec", "hpcctl", "hpcctl-starter")); got != conf {
		t.Errorf("ConfigPath under a prefix with a file = %q, want %q", got, conf)
	}
}

func TestOwnersOf(t *testing.T) {
	o := OwnersOf([]string{"1234", "root", "no-such-user-here"})
	if !o[0] || !o[1234] || len(o) != 2 {
		t.Errorf("OwnersOf = %v", o)
	}
}

// TestSafePath checks the rules on a tree of the test's own user, trusted as an owner, for
// another user.
func TestSafePath(t *testing.T) {
	me := uint32(os.Getuid())
	owners := Owners{0: true, me: true}
	dir := t.TempDir()
	// t.TempDir's parents are the test user's and sticky /tmp: fine.
	file := filepath.Join(dir, "img.sif")
	os.WriteFile(file, []byte("x"), 0o644) //nolint:errcheck // checked below
	other := int(me) + 1
	if err := owners.SafePath(file, other); err != nil {
		t.Fatalf("safe file: %v", err)
	}
	if err := owners.SafePath(file, int(me)); err == nil {
		t.Errorf("the owner's own file passed for the owner")
	}
	if err := (Owners{0: true, me + 7: true}).SafePath(file, other); err == nil && me != 0 {
		t.Errorf("a file of an untrusted owner passed")
	}
	os.Chmod(file, 0o664) //nolint:errcheck // checked below
	if err := owners.SafePath(file, other); err == nil {
		t.Errorf("a group-writable file passed")
	}
	os.Chmod(file, 0o644) //nolint:errcheck // checked below
	os.Chmod(dir, 0o777)  //nolint:errcheck // checked below
	if err := owners.SafePath(file, other); err == nil {
		t.Errorf("a file in a world-writable directory passed")
	}
	os.Chmod(dir, 0o777|os.ModeSticky) //nolint:errcheck // checked below
	if err := owners.SafePath(file, other); err != nil {
		t.Errorf("a file in a sticky directory: %v", err)
	}
	os.Chmod(dir, 0o755) //nolint:errcheck // checked below
	link := filepath.Join(dir, "link.sif")
	os.Symlink(file, link) //nolint:errcheck // checked below
	if err := owners.SafePath(link, other); err == nil {
		t.Errorf("a symbolic link passed")
	}
}

func TestTrustedImage(t *testing.T) {
	me := uint32(os.Getuid())
	owners := Owners{0: true, me: true}
	dir := t.TempDir()
	file := filepath.Join(dir, "img.sif")
	os.WriteFile(file, []byte("x"), 0o644) //nolint:errcheck // checked below
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err = owners.TrustedImage(f, int(me)+1); err != nil {
		t.Errorf("trusted image: %v", err)
	}
	os.Remove(file)
	if err = owners.TrustedImage(f, int(me)+1); err == nil {
		t.Errorf("a deleted image passed")
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := owners.TrustedImage(d, int(me)+1); err == nil {
		t.Errorf("a directory passed")
	}
}

func TestEnvironmentClean(t *testing.T) {
	for _, c := range []struct {
		env   []string
		clean bool
	}{
		{nil, true}, {[]string{"GOTRACEBACK=none"}, true},
		{[]string{"GOTRACEBACK=none", "GODEBUG=x=1"}, false}, {[]string{"LD_PRELOAD=x"}, false},
	} {
		if got := environmentClean(c.env); got != c.clean {
			t.Errorf("environmentClean(%q) = %v", c.env, got)
		}
	}
}
