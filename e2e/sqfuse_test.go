package e2e

// hpcctl's own FUSE server (internal/sqfuse, in the session holder) against squashfuse_ll: a
// container sees the same tree through both.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// sqListing lists the whole root file system of the container (its overlay, whose lower layer
// is the image): every entry's metadata, every readable file's checksum, every entry's extended
// attributes. The mount points come first, to leave out what other file systems show there.
const sqListing = `set -e
echo MOUNTS; while read -r _ _ _ _ mnt _; do echo "$mnt"; done < /proc/self/mountinfo
echo LIST; find / -xdev -printf '%p %m %U %G %s %n %l %y\n' | LC_ALL=C sort
echo SUMS; find / -xdev -type f -readable -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
echo XATTRS; find / -xdev -print0 | python3 -c "$SQ_XATTRS"
`

// sqXattrs prints each path's extended attributes (getfattr is not in the images).
const sqXattrs = `
import os, sys
for p in sorted(sys.stdin.buffer.read().split(b"\0")):
    if not p:
        continue
    try:
        names = sorted(os.listxattr(p, follow_symlinks=False))
    except OSError as e:
        print(p, "listxattr", e.errno)
        continue
    for n in names:
        try:
            print(p, n, os.getxattr(p, n, follow_symlinks=False).hex())
        except OSError as e:
            print(p, n, "getxattr", e.errno)
`

// TestSessionServerMatchesSquashfuse lists three images through a session (hpcctl's server) and
// without one (squashfuse_ll): the Debian fixture, an odd tree added to it (hardlinks, symlinks,
// odd modes and owners, xattrs, a FIFO, devices, a sparse file, a long name), and the Debian OCI
// fixture built by hpcctl (whiteouts, an opaque directory, hardlinks across layers, xattrs). The
// listings must be the same, except where squashfuse_ll differs from the kernel's squashfs (root's
// launches) and hpcctl's server follows the kernel: a directory's size (the size squashfs stores;
// squashfuse_ll shows 0), security.* xattr names (squashfuse_ll lists none) and an empty xattr
// value (squashfuse_ll answers ENODATA for it).
func TestSessionServerMatchesSquashfuse(t *testing.T) {
	e := ltSetup(t)
	ltNeedUser(t)
	testutil.NeedCommands(t, "mksquashfs")
	deb, tree := ltDebian(t, e)
	dir := e.workdir(t)
	images := map[string]string{"debian": deb, "odd": sqOddImage(t, dir, tree)}
	if archive := os.Getenv("HPCCTL_TEST_DEBIAN_OCI_ARCHIVE"); archive != "" {
		img := filepath.Join(dir, "oci.sif")
		if r := e.run(t, asRoot, dir, []string{"HPCCTL_CACHEDIR=" + filepath.Join(dir, "cache")}, "", "build", "-q", img, "oci-archive:"+archive); r.code != 0 {
			t.Fatalf("build the OCI fixture: exit %d: %s", r.code, r.stderr)
		}
		images["oci"] = img
	}
	conf := filepath.Join(dir, "hpcctl.conf")
	if err := os.WriteFile(conf, []byte("[session]\nfuse_server = \"hpcctl\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, img := range images {
		t.Run(name, func(t *testing.T) {
			if err := os.Chmod(img, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { seKillHolders(img) })
			env := []string{"SQ_XATTRS=" + sqXattrs}
			own := e.run(t, asUser, dir, env, "", "exec", "--config", conf, img, "/bin/sh", "-c", sqListing)
			if h, s := seHolders(img); len(h) != 1 || len(s) != 0 {
				t.Errorf("holders %v, squashfuse_ll %v: want one holder serving the image itself", h, s)
			}
			ref := e.run(t, asUser, dir, env, "", "exec", "--config", conf, "--no-session", img, "/bin/sh", "-c", sqListing)
			if own.code != 0 || ref.code != 0 {
				t.Fatalf("listing: exit %d (session) %d (squashfuse_ll): %s %s", own.code, ref.code, own.stderr, ref.stderr)
			}
			a, b := sqComparable(own.stdout), sqComparable(ref.stdout)
			if len(a) < 100 {
				t.Fatalf("listing of %d lines: %q", len(a), own.stdout)
			}
			sqDiff(t, a, b)
			if name == "odd" {
				sqCheckOdd(t, own.stdout)
			}
			if want := "b'/opt/hpcctl-fixture/xattr-cap' security.capability "; name == "oci" && !strings.Contains(own.stdout, want) {
				t.Errorf("hpcctl's server does not list security.capability: no %q", want)
			}
		})
	}
}

// sqComparable drops the lines of mount points other than the root (what is mounted there is
// another file system) and masks directories' sizes.
func sqComparable(out string) []string {
	mounts := map[string]bool{}
	var lines []string
	section := ""
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		switch l {
		case "MOUNTS", "LIST", "SUMS", "XATTRS":
			section = l
			lines = append(lines, l)
			continue
		}
		switch section {
		case "MOUNTS":
			if l != "/" {
				mounts[l] = true
			}
			continue
		case "XATTRS":
			// squashfuse_ll lists no security.* names (getxattr of them agrees); the kernel's
			// squashfs and hpcctl's server list them.
			if strings.Contains(l, " security.") {
				continue
			}
			// squashfuse_ll answers ENODATA for an attribute it lists whose value is empty
			// (user.empty); the kernel's squashfs and hpcctl's server give the empty value.
			if v, ok := strings.CutSuffix(l, " getxattr 61"); ok {
				l = v + " "
			}
		case "LIST":
			f := strings.Split(l, " ")
			if mounts[strings.Join(f[:len(f)-7], " ")] {
				continue
			}
			if f[len(f)-1] == "d" {
				f[len(f)-4] = "-"
			}
			l = strings.Join(f, " ")
		}
		lines = append(lines, l)
	}
	return lines
}

// sqDiff reports the first lines that differ and how many do.
func sqDiff(t *testing.T, own, ref []string) {
	t.Helper()
	in := map[string]int{}
	for _, l := range ref {
		in[l]++
	}
	var extra, missing []string
	for _, l := range own {
		if in[l] > 0 {
			in[l]--
		} else {
			extra = append(extra, l)
		}
	}
	for l, n := range in {
		for range n {
			missing = append(missing, l)
		}
	}
	if len(extra)+len(missing) > 0 {
		t.Errorf("hpcctl's server shows %d lines squashfuse_ll does not, e.g. %q; and lacks %d, e.g. %q",
			len(extra), extra[:min(len(extra), 10)], len(missing), missing[:min(len(missing), 10)])
	}
}

// sqCheckOdd checks that the odd entries are there, so that an empty listing on both sides
// cannot pass.
func sqCheckOdd(t *testing.T, out string) {
	t.Helper()
	var odd []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "/odd") {
			odd = append(odd, l)
		}
	}
	defer func() {
		if t.Failed() {
			t.Logf("the listing's /odd lines: %q", odd)
		}
	}()
	// Inside the user namespace only the user's own uid is mapped: others show as 65534 (N).
	for _, want := range []string{
		"/odd/file 644 N N 6 3  f", "/odd/hard1 644 N N 6 3  f", "/odd/sub/hard2 644 N N 6 3  f",
		"/odd/sym-rel 777 N N 4 1 file l", "/odd/sym-abs 777 N N 11 1 /etc/passwd l", "/odd/sym-dangling 777 N N 7 1 nowhere l",
		"/odd/sub 755 N N ", "/odd/private 700 N N ", "/odd/m0000 0 N N 1 1  f", "/odd/m4755 4755 N N 1 1  f", "/odd/m2711 2711 N N 1 1  f",
		"/odd/m7777 7777 N N 1 1  f", "/odd/sticky 1777 N N ", "/odd/fifo 600 N N 0 1  p",
		"/odd/null 666 N N 0 1  c", "/odd/disk 660 N N 0 1  b", "/odd/sparse 644 N N 10485760 1  f",
		"/odd/" + strings.Repeat("n", 255) + " 644 N N 1 1  f",
		`b'/odd/xattr' user.hpcctl 6f6464`, `b'/odd/xattr' user.empty `,
	} {
		want = strings.ReplaceAll(want, " N N ", " 65534 65534 ")
		if !strings.Contains(out, want) {
			t.Errorf("the listing lacks %q", want)
		}
	}
}

// sqOddImage makes a squashfs of the Debian tree with an odd directory added as /odd.
func sqOddImage(t *testing.T, dir, tree string) string {
	t.Helper()
	parent := t.TempDir()
	odd := filepath.Join(parent, "odd")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(odd, name) }
	must(os.MkdirAll(p("sub"), 0o755))
	must(os.Chmod(odd, 0o755))
	must(os.Mkdir(p("private"), 0o700))
	must(os.WriteFile(p("private/secret"), []byte("s"), 0o600))
	must(os.WriteFile(p("file"), []byte("hello\n"), 0o644))
	must(os.Link(p("file"), p("hard1")))
	must(os.Link(p("file"), p("sub/hard2")))
	must(os.Symlink("file", p("sym-rel")))
	must(os.Symlink("/etc/passwd", p("sym-abs")))
	must(os.Symlink("nowhere", p("sym-dangling")))
	for name, mode := range map[string]os.FileMode{"m0000": 0, "m4755": 0o4755, "m2711": 0o2711, "m7777": 0o7777} {
		must(os.WriteFile(p(name), []byte("x"), 0o644))
		if name == "m7777" {
			must(os.Chown(p(name), 1234, 5678))
		}
		must(unix.Chmod(p(name), uint32(mode)))
	}
	must(os.Chown(p("sub"), 1234, 5678))
	must(os.Mkdir(p("sticky"), 0o755))
	must(unix.Chmod(p("sticky"), 0o1777))
	must(os.Mkdir(p("empty"), 0o755))
	must(unix.Mkfifo(p("fifo"), 0o600))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(p("disk"), unix.S_IFBLK|0o660, int(unix.Mkdev(259, 70000))))
	must(os.Chown(p("disk"), 0, 6))
	must(unix.Chmod(p("disk"), 0o660))
	must(unix.Chmod(p("null"), 0o666))
	must(os.WriteFile(p(strings.Repeat("n", 255)), []byte("n"), 0o644))
	f, err := os.Create(p("sparse"))
	must(err)
	_, err = f.WriteAt([]byte("middle"), 5<<20)
	must(err)
	must(f.Truncate(10 << 20))
	must(f.Close())
	must(os.WriteFile(p("xattr"), []byte("x"), 0o644))
	if err := unix.Setxattr(p("xattr"), "user.hpcctl", []byte("odd"), 0); err != nil {
		t.Skipf("user xattrs on %s: %v", odd, err)
	}
	must(unix.Setxattr(p("xattr"), "user.empty", nil, 0))
	img := filepath.Join(dir, "odd.sqfs")
	for _, args := range [][]string{
		{tree, img, "-noappend", "-comp", "zstd", "-quiet", "-no-progress"},
		// Appending a directory adds its entries to the root: odd's parent's, so /odd.
		{parent, img, "-no-recovery", "-quiet", "-no-progress"},
	} {
		if out, err := exec.Command("mksquashfs", args...).CombinedOutput(); err != nil {
			t.Fatalf("mksquashfs %q: %v: %s", args, err, out)
		}
	}
	return img
}
