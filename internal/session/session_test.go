package session

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestKeySeparates(t *testing.T) {
	id := Identity{Dev: 1, Ino: 2, Size: 3, MtimeNsec: 4}
	base := Key(1000, id, 0, "/usr/bin/squashfuse_ll", "0::/job_1")
	other := id
	other.Superblock[0] = 1
	changed := id
	changed.MtimeNsec++
	for name, k := range map[string]string{
		"user":       Key(1001, id, 0, "/usr/bin/squashfuse_ll", "0::/job_1"),
		"superblock": Key(1000, other, 0, "/usr/bin/squashfuse_ll", "0::/job_1"),
		"mtime":      Key(1000, changed, 0, "/usr/bin/squashfuse_ll", "0::/job_1"),
		"offset":     Key(1000, id, 4096, "/usr/bin/squashfuse_ll", "0::/job_1"),
		"server":     Key(1000, id, 0, "/opt/squashfuse_ll", "0::/job_1"),
		"cgroup":     Key(1000, id, 0, "/usr/bin/squashfuse_ll", "0::/job_2"),
	} {
		if k == base {
			t.Errorf("a different %s gives the same key", name)
		}
	}
	if Key(1000, id, 0, "/usr/bin/squashfuse_ll", "0::/job_1") != base {
		t.Error("the key is not stable")
	}
}

func TestEnsureDirRefuses(t *testing.T) {
	uid := os.Getuid()
	root := t.TempDir()
	open := filepath.Join(root, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	private := filepath.Join(root, "private")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dir string
		ok  bool
	}{{open, false}, {link, false}, {private, true}} {
		_, err := ensureDir(tt.dir, uid)
		var de *DirError
		if tt.ok != (err == nil) || (!tt.ok && !errors.As(err, &de)) {
			t.Errorf("%s: err %v, want ok=%v (a DirError otherwise)", tt.dir, err, tt.ok)
		}
	}
	if st, err := os.Stat(private); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("made %s: %v, %v (want mode 0700)", private, st, err)
	}
	if _, err := ensureDir(private, uid+1); err == nil {
		t.Error("a directory of another user was accepted")
	}
}

func TestIdentityChangesWithTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, []byte("hsqs and the rest of a superblock"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := identity(t, p)
	if !id.sameFile(dirFD(t, p), "img") {
		t.Error("the same file is not the same")
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if id.sameFile(dirFD(t, p), "img") || identity(t, p) == id {
		t.Error("a changed file kept its identity")
	}
}

func identity(t *testing.T, p string) Identity {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, err := IdentityOf(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func dirFD(t *testing.T, p string) int {
	t.Helper()
	d, err := os.Open(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return int(d.Fd())
}

func TestHolderArgsRoundTrip(t *testing.T) {
	a := holderArgs{Image: "/data/a b.sif", Squashfuse: "/usr/bin/squashfuse_ll", Sock: "/tmp/hpcctl-1/k.sock", Offset: 32768,
		Idle: 30 * time.Second, ID: Identity{Dev: 7, Ino: 8, Size: 9, MtimeNsec: 10}}
	b, err := decodeHolderArgs(a.encode())
	b.ID.Superblock = a.ID.Superblock
	if err != nil || b != a {
		t.Errorf("decoded %+v, %v; want %+v", b, err, a)
	}
	if _, err := decodeHolderArgs([]string{"x"}); err == nil {
		t.Error("a short argument list was accepted")
	}
}

// TestServerChoice: hpcctl's own server needs hpcctl-image (the holder runs as it); without it,
// or when the site chose squashfuse_ll, the holder runs squashfuse_ll as this binary. The choice
// is part of the session key, so launches with different servers never share a session.
func TestServerChoice(t *testing.T) {
	for _, c := range []struct {
		o               Options
		server, program string
	}{
		{Options{Server: ServerHpcctl, Companion: "/opt/hpcctl-image", Squashfuse: "/usr/bin/squashfuse_ll"}, ServerHpcctl, "/opt/hpcctl-image"},
		{Options{Server: "", Companion: "/opt/hpcctl-image", Squashfuse: "/usr/bin/squashfuse_ll"}, ServerHpcctl, "/opt/hpcctl-image"},
		{Options{Server: ServerHpcctl, Squashfuse: "/usr/bin/squashfuse_ll"}, "/usr/bin/squashfuse_ll", "/proc/self/exe"},
		{Options{Server: ServerSquashfuse, Companion: "/opt/hpcctl-image", Squashfuse: "/usr/bin/squashfuse_ll"}, "/usr/bin/squashfuse_ll", "/proc/self/exe"},
	} {
		if s, p := c.o.server(), c.o.holderProgram(); s != c.server || p != c.program {
			t.Errorf("%+v: server %q program %q, want %q %q", c.o, s, p, c.server, c.program)
		}
	}
	var id Identity
	if Key(1, id, 0, ServerHpcctl, "cg") == Key(1, id, 0, "/usr/bin/squashfuse_ll", "cg") {
		t.Error("the two servers share a session key")
	}
}
