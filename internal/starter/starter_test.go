package starter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/starter/rules"
)

func TestConfigPath(t *testing.T) {
	for _, exe := range []string{"/opt/none/libexec/hpcctl/hpcctl-starter", "/usr/libexec/hpcctl/hpcctl-starter", "/somewhere/hpcctl-starter"} {
		if got := ConfigPath(exe); got != config.DefaultPath {
			t.Errorf("ConfigPath(%s) = %q, want %q (no file under the prefix)", exe, got, config.DefaultPath)
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

// TestReadSiteConfig refuses a configuration the test's user owns (unless the test runs as root,
// where it is accepted only if every directory above is root's too).
func TestReadSiteConfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "hpcctl.conf")
	os.WriteFile(conf, []byte("allow_setuid = true\n"), 0o644) //nolint:errcheck // checked below
	c, err := ReadSiteConfig(conf)
	if os.Getuid() != 0 && (err == nil || !strings.Contains(err.Error(), "owned by root")) {
		t.Errorf("a user's configuration: %v", err)
	}
	if os.Getuid() == 0 && (err != nil || !c.AllowSetuid) {
		t.Errorf("root's configuration in root's directories: %v", err)
	}
	if _, err := ReadSiteConfig(filepath.Join(dir, "none.conf")); err == nil || !strings.Contains(err.Error(), "allow_setuid = true") {
		t.Errorf("no configuration: %v", err)
	}
	link := filepath.Join(dir, "link.conf")
	os.Symlink(conf, link) //nolint:errcheck // checked below
	if _, err := ReadSiteConfig(link); err == nil {
		t.Errorf("a symbolic link was followed")
	}
}

// TestSafePath checks the rules on a tree of the test's own user, trusted as an owner, for
// another user.
func TestSafePath(t *testing.T) {
	me := uint32(os.Getuid())
	owners := rules.Owners{0: true, me: true}
	dir := t.TempDir()
	// t.TempDir's parents are the test user's and sticky /tmp: fine.
	file := filepath.Join(dir, "img.sif")
	os.WriteFile(file, []byte("x"), 0o644) //nolint:errcheck // checked below
	other := int(me) + 1
	if err := SafePath(owners, file, other); err != nil {
		t.Fatalf("safe file: %v", err)
	}
	if err := SafePath(owners, file, int(me)); err == nil {
		t.Errorf("the owner's own file passed for the owner")
	}
	if err := SafePath(rules.Owners{0: true, me + 7: true}, file, other); err == nil && me != 0 {
		t.Errorf("a file of an untrusted owner passed")
	}
	os.Chmod(file, 0o664) //nolint:errcheck // checked below
	if err := SafePath(owners, file, other); err == nil {
		t.Errorf("a group-writable file passed")
	}
	os.Chmod(file, 0o644) //nolint:errcheck // checked below
	os.Chmod(dir, 0o777)  //nolint:errcheck // checked below
	if err := SafePath(owners, file, other); err == nil {
		t.Errorf("a file in a world-writable directory passed")
	}
	os.Chmod(dir, 0o777|os.ModeSticky) //nolint:errcheck // checked below
	if err := SafePath(owners, file, other); err != nil {
		t.Errorf("a file in a sticky directory: %v", err)
	}
	os.Chmod(dir, 0o755) //nolint:errcheck // checked below
	link := filepath.Join(dir, "link.sif")
	os.Symlink(file, link) //nolint:errcheck // checked below
	if err := SafePath(owners, link, other); err == nil {
		t.Errorf("a symbolic link passed")
	}
}

func TestTrustedImage(t *testing.T) {
	me := uint32(os.Getuid())
	owners := rules.Owners{0: true, me: true}
	dir := t.TempDir()
	file := filepath.Join(dir, "img.sif")
	os.WriteFile(file, []byte("x"), 0o644) //nolint:errcheck // checked below
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err = TrustedImage(owners, f, int(me)+1); err != nil {
		t.Errorf("trusted image: %v", err)
	}
	os.Remove(file)
	if err = TrustedImage(owners, f, int(me)+1); err == nil {
		t.Errorf("a deleted image passed")
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := TrustedImage(owners, d, int(me)+1); err == nil {
		t.Errorf("a directory passed")
	}
}
