package session

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/config"
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
	for _, srv := range []serverChoice{
		{Kind: config.FUSEServerSquashfuse, Squashfuse: "/usr/bin/squashfuse_ll"},
		{Kind: config.FUSEServerHpcctl},
	} {
		a := holderArgs{Image: "/data/a b.sif", Server: srv, Sock: "/tmp/hpcctl-1/k.sock", Offset: 32768,
			Idle: 30 * time.Second, ID: Identity{Dev: 7, Ino: 8, Size: 9, MtimeNsec: 10}}
		b, err := decodeHolderArgs(a.encode())
		b.ID.Superblock = a.ID.Superblock
		if err != nil || b != a {
			t.Errorf("decoded %+v, %v; want %+v", b, err, a)
		}
	}
}

// TestHolderArgsRefused: a holder refuses a command line it cannot serve, in one line (it writes
// the error to the launch, which logs it).
func TestHolderArgsRefused(t *testing.T) {
	good := holderArgs{Image: "/i.sif", Server: serverChoice{Kind: config.FUSEServerHpcctl}, Sock: "/s.sock", Idle: time.Second}
	for name, c := range map[string]struct {
		change func([]string) []string
		want   string
	}{
		"short":                   {func(s []string) []string { return s[1:] }, "want 10"},
		"unknown kind":            {func(s []string) []string { s[2] = "squashfuse"; return s }, `unknown server "squashfuse"`},
		"squashfuse_ll, no path":  {func(s []string) []string { s[2] = string(config.FUSEServerSquashfuse); return s }, "no squashfuse_ll program"},
		"hpcctl with a program":   {func(s []string) []string { s[3] = "/usr/bin/squashfuse_ll"; return s }, "runs no squashfuse_ll program"},
		"offset not a number":     {func(s []string) []string { s[1] = "x"; return s }, `parsing "x"`},
		"idle timeout unreadable": {func(s []string) []string { s[4] = "soon"; return s }, `"soon"`},
	} {
		s := c.change(good.encode())
		_, err := decodeHolderArgs(s)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err %v, want one line with %q", name, err, c.want)
		}
	}
}

// TestServerChoice: hpcctl's own server needs hpcctl-image (the holder runs as it); without it,
// or when the site chose squashfuse_ll, the holder runs squashfuse_ll as this binary. The choice
// is part of the session key, so launches with different servers never share a session.
func TestServerChoice(t *testing.T) {
	const sqfs = "/usr/bin/squashfuse_ll"
	hpcctl, squashfuse := serverChoice{Kind: config.FUSEServerHpcctl}, serverChoice{Kind: config.FUSEServerSquashfuse, Squashfuse: sqfs}
	for _, c := range []struct {
		o       Options
		server  serverChoice
		program string
	}{
		{Options{Server: config.FUSEServerHpcctl, Companion: "/opt/hpcctl-image", Squashfuse: sqfs}, hpcctl, "/opt/hpcctl-image"},
		{Options{Server: "", Companion: "/opt/hpcctl-image", Squashfuse: sqfs}, hpcctl, "/opt/hpcctl-image"},
		{Options{Server: config.FUSEServerHpcctl, Squashfuse: sqfs}, squashfuse, "/proc/self/exe"},
		{Options{Server: config.FUSEServerSquashfuse, Companion: "/opt/hpcctl-image", Squashfuse: sqfs}, squashfuse, "/proc/self/exe"},
	} {
		s := c.o.server()
		if p := c.o.holderProgram(s); s != c.server || p != c.program {
			t.Errorf("%+v: server %+v program %q, want %+v %q", c.o, s, p, c.server, c.program)
		}
		if err := s.check(); err != nil {
			t.Errorf("%+v: %v", c.o, err)
		}
	}
	var id Identity
	keys := map[string]serverChoice{}
	for _, s := range []serverChoice{hpcctl, squashfuse, {Kind: config.FUSEServerSquashfuse, Squashfuse: "/opt/squashfuse_ll"}} {
		k := Key(1, id, 0, s.key(), "cg")
		if other, ok := keys[k]; ok {
			t.Errorf("servers %+v and %+v share a session key", s, other)
		}
		keys[k] = s
	}
}
