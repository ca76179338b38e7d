package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/squashfs/superblock"
)

// The attack suite (issue 12, "Hostile input and faults"): each case is a bad input or a hostile
// set-up that once misled or harmed hpcctl, run as root and as the plain user. Every one must end
// with one line naming the thing and what to do, a non-zero status, and nothing left behind.

// atOneLine checks a refusal: status want, one line on stderr holding every one of words.
func atOneLine(t *testing.T, r ltResult, want int, words ...string) {
	t.Helper()
	if r.code != want || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("exit %d, stderr %q; want exit %d and one line", r.code, r.stderr, want)
		return
	}
	for _, w := range words {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not say %q", r.stderr, w)
		}
	}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "/proc/self/fd") {
		t.Errorf("stderr %q shows hpcctl's internals", r.stderr)
	}
}

// atQuick runs hpcctl and requires it to finish within 10 seconds: the cases it runs once hung.
func (e *ltEnv) atQuick(t *testing.T, as ltAs, dir string, args ...string) ltResult {
	t.Helper()
	start := time.Now()
	r := e.run(t, as, dir, nil, "", args...)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("hpcctl %q took %v", args, d)
	}
	return r
}

func TestAttack(t *testing.T) {
	e := ltSetup(t)
	u := ltNeedUser(t)
	before := ltTake(t)
	t.Run("overlay links", func(t *testing.T) { atOverlayLinks(t, e, u) })
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			t.Run("hostile files", func(t *testing.T) { atHostileFiles(t, e, as) })
			t.Run("damaged tables", func(t *testing.T) { atDamagedTables(t, e, as) })
			t.Run("binds", func(t *testing.T) { atBinds(t, e, as) })
			t.Run("loose checks", func(t *testing.T) { atLooseChecks(t, e, as) })
			t.Run("unsquash leftover", func(t *testing.T) { atUnsquashLeftover(t, e, as, u) })
		})
	}
	e.nothingLeft(t, before, e.bb, e.bbSqfs)
}

// atOverlayLinks: a writable overlay directory that another user can write, or that holds their
// links, must not let them point root's overlay at root's own files.
func atOverlayLinks(t *testing.T, e *ltEnv, u *user.User) {
	dir := e.workdir(t)
	victim := filepath.Join(dir, "victim")        // root's: overlayfs would empty victim/work
	other := filepath.Join(dir, "other")          // where root's changes would go
	keep := filepath.Join(victim, "work", "keep") // what must survive
	for _, d := range []string{filepath.Dir(keep), other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	hostile := func(name string, mode os.FileMode, owner int) string {
		ov := filepath.Join(dir, name)
		if err := os.Mkdir(ov, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(ov, mode) //nolint:errcheck // umask
		for _, l := range [][2]string{{victim, "work"}, {other, "upper"}} {
			if err := os.Symlink(l[0], filepath.Join(ov, l[1])); err != nil {
				t.Fatal(err)
			}
			os.Lchown(filepath.Join(ov, l[1]), uid, gid) //nolint:errcheck // the other user's links
		}
		if err := os.Chown(ov, owner, owner); err != nil {
			t.Fatal(err)
		}
		return ov
	}
	cases := []struct {
		name  string
		ov    string
		words []string
	}{
		{"world-writable", hostile("ww", 0o1777, 0), []string{"writable by other users"}},
		// Root may use another user's overlay directory (as Apptainer's root can), never its links.
		{"another user's, with links inside", hostile("theirs", 0o755, uid), []string{"symbolic link"}},
		{"root's, with links inside", hostile("mine", 0o755, 0), []string{"symbolic link"}},
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name  string
		ov    string
		words []string
	}{"a link to root's directory", link, []string{"symbolic link"}})
	for _, c := range cases {
		r := e.run(t, asRoot, dir, nil, "", "exec", "--overlay", c.ov, e.bb, "sh", "-c", "echo pwned > /pwned")
		atOneLine(t, r, 255, append([]string{c.ov}, c.words...)...)
		if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
			t.Errorf("%s: the victim's work/keep: %q, %v", c.name, b, err)
		}
		if left, _ := os.ReadDir(other); len(left) != 0 {
			t.Errorf("%s: root's changes went through the link: %v", c.name, left)
		}
	}
	// The plain user is refused a link too (hpcctl follows none there for anyone).
	r := e.run(t, asUser, dir, nil, "", "exec", "--overlay", link, e.bb, "true")
	atOneLine(t, r, 255, "symbolic link")
}

// atHostileFiles: files a user names that are endless, block on open, or are not files at all.
func atHostileFiles(t *testing.T, e *ltEnv, as ltAs) {
	dir := e.workdir(t)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.conf")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), 200<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  []string
		words []string
	}{
		{[]string{"--config", "/dev/zero", e.bb, "true"}, []string{"/dev/zero", "character device"}},
		{[]string{"--config", fifo, e.bb, "true"}, []string{fifo, "FIFO"}},
		{[]string{"--config", dir, e.bb, "true"}, []string{dir, "directory"}},
		{[]string{"--config", big, e.bb, "true"}, []string{big, "larger than"}},
		{[]string{"--env-file", "/dev/zero", e.bb, "true"}, []string{"/dev/zero", "character device"}},
		{[]string{"--env-file", fifo, e.bb, "true"}, []string{fifo, "FIFO"}},
		{[]string{fifo, "true"}, []string{"image " + fifo, "FIFO"}},
		{[]string{"/dev/zero", "true"}, []string{"image /dev/zero", "character device"}},
	} {
		r := e.atQuick(t, as, dir, append([]string{"exec"}, c.args...)...)
		atOneLine(t, r, 255, c.words...)
	}
	// HPCCTL_CONFIG is read the same way.
	r := e.run(t, as, dir, []string{"HPCCTL_CONFIG=" + fifo}, "", "exec", e.bb, "true")
	atOneLine(t, r, 255, fifo, "FIFO")
}

// atDamagedTables: an image whose inode or directory table is damaged (squashfs has no
// checksums) must be called damaged, not make the program "not found".
func atDamagedTables(t *testing.T, e *ltEnv, as ltAs) {
	dir := e.workdir(t)
	b, err := os.ReadFile(e.bbSqfs)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := superblock.ReadAt(bytes.NewReader(b), 0, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for name, start := range map[string]uint64{"inodes": sb.InodeTableStart, "directories": sb.DirectoryTableStart} {
		bad := append([]byte(nil), b...)
		// Past the 2-byte metadata block header: the compressed data of the first block.
		for i := start + 2; i < start+40; i++ {
			bad[i] ^= 0xff
		}
		img := filepath.Join(dir, name+".sqfs")
		if err := os.WriteFile(img, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		r := e.run(t, as, dir, nil, "", "exec", img, "true")
		atOneLine(t, r, 255, img, "damaged", "copy or build it again")
	}
}

// atBinds: binds that the kernel or squashfuse_ll refused with nothing useful to say.
func atBinds(t *testing.T, e *ltEnv, as ltAs) {
	dir := e.workdir(t)
	src := filepath.Join(dir, "data")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, as, dir, nil, "", "exec", "-B", src+":/", e.bb, "true")
	atOneLine(t, r, 255, src, "root /")
	r = e.run(t, as, dir, nil, "", "exec", "-B", src+":/etc/passwd", e.bb, "true")
	atOneLine(t, r, 255, src, "/etc/passwd", "is a directory")
}

// atLooseChecks: host names and variable names that were taken as given, and root's missing
// passwd entry.
func atLooseChecks(t *testing.T, e *ltEnv, as ltAs) {
	dir := e.workdir(t)
	for _, args := range [][]string{
		{"--hostname", "evil\x1b[2Jname"}, {"--hostname", ""}, {"--hostname", "a b"},
		{"--env", "BAD NAME=1"}, {"--env", "1X=1"}, {"--env", "NOVALUE"},
	} {
		r := e.run(t, as, dir, nil, "", append(append([]string{"exec"}, args...), e.bb, "true")...)
		atOneLine(t, r, 255, args[0])
	}
	// An image without any /etc/passwd: root gets an entry, as the plain user always had.
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	busybox, _ := exec.LookPath("busybox")
	if out, err := exec.Command("cp", busybox, filepath.Join(tree, "bin", "busybox")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	// A bare squashfs has no OCI config: hpcctl runs the program through the image's /bin/sh.
	if err := os.Symlink("busybox", filepath.Join(tree, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "nopasswd.sqfs")
	if out, err := exec.Command("mksquashfs", tree, img, "-quiet", "-no-progress", "-noappend").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v: %s", err, out)
	}
	r := e.run(t, as, dir, nil, "", "exec", img, "/bin/busybox", "cat", "/etc/passwd")
	want := "root:x:0:0:"
	if as == asUser {
		want = ltUser + ":x:"
	}
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("/etc/passwd of an image without one: exit %d, stdout %q, stderr %q; want %q", r.code, r.stdout, r.stderr, want)
	}
}

// atUnsquashLeftover: a --unsquash directory whose hpcctl was killed goes at the same user's next
// launch of any kind; another user's stays.
func atUnsquashLeftover(t *testing.T, e *ltEnv, as ltAs, u *user.User) {
	tmp := e.workdir(t)
	uid, gid := 0, 0
	if as == asUser {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	mine := filepath.Join(tmp, "hpcctl-unsquash-killed")
	theirs := filepath.Join(tmp, "hpcctl-unsquash-theirs")
	for _, d := range []struct {
		path     string
		uid, gid int
	}{{mine, uid, gid}, {theirs, 4242, 4242}} {
		if err := os.MkdirAll(filepath.Join(d.path, "root", "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d.path+".lock", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{d.path, filepath.Join(d.path, "root"), filepath.Join(d.path, "root", "bin"), d.path + ".lock"} {
			if err := os.Chown(p, d.uid, d.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := e.run(t, as, tmp, []string{"TMPDIR=" + tmp}, "", "exec", e.bb, "true")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(mine); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the killed --unsquash directory is still there (%v)", err)
	}
	if _, err := os.Stat(theirs); err != nil {
		t.Errorf("another user's directory went: %v", err)
	}
}

// TestAttackVerifyData: squashfs has no checksums, so a damaged data block passes silently;
// --verify-data (and verify_data in hpcctl.conf) checks a signed image's data against its
// signature's digests first, whoever signed it.
func TestAttackVerifyData(t *testing.T) {
	e := plSetup(t)
	before := ltTake(t)
	conf := plWrite(t, filepath.Join(e.root, "verify.conf"), "[signature]\nverify_data = true\n")
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			for _, img := range []string{e.signed, e.other} {
				if r := e.run(t, as, "/", nil, "", "exec", "--verify-data", img, "true"); r.code != 0 {
					t.Errorf("--verify-data %s: exit %d, stderr %q", img, r.code, r.stderr)
				}
			}
			atOneLine(t, e.run(t, as, "/", nil, "", "exec", "--verify-data", e.tampered, "true"), 255, e.tampered, "does not match its signature", "copy it again")
			atOneLine(t, e.run(t, as, "/", nil, "", "exec", "--config", conf, e.tampered, "true"), 255, e.tampered, "does not match its signature")
			atOneLine(t, e.run(t, as, "/", nil, "", "exec", "--verify-data", e.unsigned, "true"), 255, e.unsigned, "not signed")
			atOneLine(t, e.run(t, as, "/", nil, "", "exec", "--verify-data", e.bbSqfs, "true"), 255, e.bbSqfs, "not a SIF")
		})
	}
	e.nothingLeft(t, before, e.signed, e.tampered)
}
