package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
	"github.com/hpcctl/hpcctl/internal/testutil/layertest"
	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// TestBuildDebianMatchesUmoci builds the multi-layer Debian fixture (whiteouts, an opaque
// directory, hardlinks across layers, odd modes, xattrs) and compares the image with what umoci,
// an independent implementation of layer application, unpacks from the same archive: the
// metadata listing, every file's content, and the extended attributes.
func TestBuildDebianMatchesUmoci(t *testing.T) {
	needLoop(t)
	archive := btNeedEnvFile(t, "HPCCTL_TEST_DEBIAN_OCI_ARCHIVE")
	testutil.NeedCommands(t, "umoci", "tar", "mksquashfs", "unsquashfs", "mount", "umount", "getfattr", "diff")
	dir := t.TempDir()
	sif := filepath.Join(dir, "debian.sif")
	btRun(t, dir, []string{"HPCCTL_CACHEDIR=" + filepath.Join(dir, "cache")}, "build", sif, "oci-archive:"+archive).
		mustSucceed(t, "hpcctl build")

	// umoci reads a layout: unpack the archive itself, so both see the very same image.
	layout := filepath.Join(dir, "layout")
	if err := os.Mkdir(layout, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "-xf", archive, "-C", layout).mustSucceed(t, "untar the oci-archive")
	tree := filepath.Join(dir, "umoci")
	unpacked := time.Now().UTC().Truncate(time.Minute)
	run(t, "umoci", "raw", "unpack", "--image", layout+":latest", tree).mustSucceed(t, "umoci raw unpack")

	img := btInspect(t, sif)
	if want := btManifestDigest(t, archive); img.Provenance == nil || img.Provenance.SourceDigest != want {
		t.Errorf("provenance %+v, want the source digest %s", img.Provenance, want)
	}
	offset, _ := img.partition(t)
	t.Run("listing", func(t *testing.T) { btCompareListings(t, sif, offset, tree, unpacked) })

	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "squashfs", "-o", fmt.Sprintf("loop,ro,offset=%d", offset), sif, mnt).mustSucceed(t, "mount the partition")
	mounted := true
	unmount := func() {
		if mounted {
			run(t, "umount", mnt).mustSucceed(t, "umount")
			mounted = false
		}
	}
	t.Cleanup(unmount)
	t.Run("content", func(t *testing.T) { btDiffTrees(t, tree, mnt) })
	t.Run("xattrs", func(t *testing.T) { btCompareXattrs(t, tree, mnt) })
	t.Run("hardlinks", func(t *testing.T) {
		for _, pair := range [][2]string{
			{"opt/hpcctl-fixture/hardlink-a", "opt/hpcctl-fixture/hardlink-b"},
			{"usr/bin/python3.11", "opt/hpcctl-fixture/python-hardlink"}, // across layers
		} {
			a, b := inode(t, mnt, pair[0]), inode(t, mnt, pair[1])
			if a != b {
				t.Errorf("%s is inode %d, %s is %d: want one file", pair[0], a, pair[1], b)
			}
		}
	})
	unmount()
	btNoLoopDevice(t, sif)
}

// btListingLine is one line of `unsquashfs -lln`: "drwxr-xr-x 0/0 257 2024-01-01 00:00 squashfs-root/etc".
var btListingLine = regexp.MustCompile(`^(\S+) (\d+/\d+) +(\d+|\d+, *\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) squashfs-root(/.*)?$`)

type btListed struct{ mode, owner, size, mtime, name string }

// btListing lists a squashfs file (at offset) by path relative to its root.
func btListing(t *testing.T, sqfs string, offset int64) map[string]btListed {
	t.Helper()
	cmd := exec.Command("unsquashfs", "-lln", "-o", fmt.Sprint(offset), sqfs)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	r := runCmd(t, cmd).mustSucceed(t, "unsquashfs -lln "+sqfs)
	entries := map[string]btListed{}
	for _, line := range strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n") {
		m := btListingLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unsquashfs -lln %s: cannot read the line %q", sqfs, line)
		}
		name := strings.TrimPrefix(m[5], "/")
		key := name
		if m[1][0] == 'l' {
			key, _, _ = strings.Cut(name, " -> ")
		}
		entries[key] = btListed{mode: m[1], owner: m[2], size: m[3], mtime: m[4], name: name}
	}
	return entries
}

// btCompareListings compares the metadata of every entry: type and mode, owner, size (not of
// directories, whose size is the writer's layout), link target and time. umoci leaves the time of
// unpacking on directories whose entries it changed, and the layers give no time for the root:
// those directory times are not compared. Entries only in the image must be added mount points.
func btCompareListings(t *testing.T, sif string, offset int64, tree string, unpacked time.Time) {
	sqfs := filepath.Join(t.TempDir(), "umoci.sqfs")
	run(t, "mksquashfs", tree, sqfs, "-noI", "-noD", "-noF", "-noX", "-no-progress", "-quiet", "-noappend").
		mustSucceed(t, "mksquashfs the umoci tree")
	ours, theirs := btListing(t, sif, offset), btListing(t, sqfs, 0)
	if len(ours) < 5000 {
		t.Fatalf("the image lists %d entries: not the Debian tree", len(ours))
	}
	for p, o := range ours {
		u, ok := theirs[p]
		if !ok {
			if btApptainerMeta(p) {
				if o.owner != "0/0" {
					t.Errorf("added Apptainer metadata %s: owner %s", p, o.owner)
				}
				continue
			}
			if !slices.Contains(btMountPoints, p) {
				t.Errorf("only in the image: %s", o.name)
			} else if o.owner != "0/0" || (o.mode != "drwxr-xr-x" && o.mode != "-rw-r--r--" && o.mode != "drwxrwxrwt" &&
				o.mode != "dr-xr-xr-x" && o.mode != "drwx------") {
				t.Errorf("added mount point %s: %s %s", p, o.mode, o.owner)
			}
			continue
		}
		if o.mode != u.mode || o.owner != u.owner || o.name != u.name {
			t.Errorf("%s: image %s %s %s, umoci %s %s %s", p, o.mode, o.owner, o.name, u.mode, u.owner, u.name)
		}
		dir := strings.HasPrefix(o.mode, "d")
		if !dir && o.size != u.size {
			t.Errorf("%s: size %s in the image, %s from umoci", p, o.size, u.size)
		}
		umociTime, _ := time.Parse("2006-01-02 15:04", u.mtime)
		if o.mtime != u.mtime && !(dir && (p == "" || !umociTime.Before(unpacked))) {
			t.Errorf("%s: time %s in the image, %s from umoci", p, o.mtime, u.mtime)
		}
	}
	for p, u := range theirs {
		if _, ok := ours[p]; !ok {
			t.Errorf("missing from the image: %s (%s %s)", u.name, u.mode, u.owner)
		}
	}
}

// btDiffTrees compares every file's content and every symlink's target. diff cannot compare
// device nodes (the listing has their numbers); an added mount point may be only in the image.
func btDiffTrees(t *testing.T, tree, mnt string) {
	r := run(t, "diff", "-r", "--no-dereference", tree, mnt)
	if r.Code > 1 {
		t.Fatalf("diff -r: exit %d: %s", r.Code, r.Stderr)
	}
	special := regexp.MustCompile(`^File \S+ is a (character|block) special file while file \S+ is a (character|block) special file$`)
	onlyIn := regexp.MustCompile(`^Only in ` + regexp.QuoteMeta(mnt) + `/?(.*): (.*)$`)
	for _, line := range strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n") {
		if line == "" || special.MatchString(line) {
			continue
		}
		if m := onlyIn.FindStringSubmatch(line); m != nil && btApptainerMeta(path.Join(m[1], m[2])) {
			continue
		}
		if m := onlyIn.FindStringSubmatch(line); m != nil && slices.Contains(btMountPoints, path.Join(m[1], m[2])) {
			if _, err := os.Lstat(filepath.Join(tree, m[1], m[2])); errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		t.Errorf("diff -r: %s", line)
	}
}

// btCompareXattrs compares all extended attributes of both trees and checks the fixture's own.
func btCompareXattrs(t *testing.T, tree, mnt string) {
	ours, theirs := btXattrs(t, mnt), btXattrs(t, tree)
	if fmt.Sprint(ours) != fmt.Sprint(theirs) {
		t.Errorf("xattrs differ:\nimage: %v\numoci: %v", ours, theirs)
	}
	// VFS_CAP_REVISION_2 | effective, permitted CAP_NET_BIND_SERVICE: mkfixtures' value.
	c := make([]byte, 20)
	binary.LittleEndian.PutUint32(c[0:], 0x02000001)
	binary.LittleEndian.PutUint32(c[4:], 1<<10)
	want := map[string]string{
		"opt/hpcctl-fixture/xattr-user": `user.hpcctl="fixture"`,
		"opt/hpcctl-fixture/xattr-cap":  "security.capability=0s" + base64.StdEncoding.EncodeToString(c),
	}
	for file, attr := range want {
		if !slices.Contains(ours[file], attr) {
			t.Errorf("%s: xattrs %q in the image, want %s", file, ours[file], attr)
		}
	}
}

// btXattrs dumps every extended attribute under root, by relative path.
func btXattrs(t *testing.T, root string) map[string][]string {
	t.Helper()
	cmd := exec.Command("getfattr", "-R", "-h", "-d", "-m", "-", ".")
	cmd.Dir = root
	r := runCmd(t, cmd).mustSucceed(t, "getfattr -R "+root)
	attrs := map[string][]string{}
	file := ""
	for _, line := range strings.Split(r.Stdout, "\n") {
		switch {
		case strings.HasPrefix(line, "# file: "):
			file = strings.TrimPrefix(strings.TrimPrefix(line, "# file: "), "./")
		case line != "":
			attrs[file] = append(attrs[file], line)
		}
	}
	return attrs
}

// btNoLoopDevice waits briefly for the kernel to release the loop device (autoclear happens just
// after the unmount) and fails if one still backs file.
func btNoLoopDevice(t *testing.T, file string) {
	t.Helper()
	var left string
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if left = strings.TrimSpace(run(t, "losetup", "-j", file).Stdout); left == "" {
			return
		}
	}
	t.Errorf("loop device left behind: %s", left)
}

// TestBuildReproducible builds the same source several times, as root and as the plain user,
// with fresh caches, and wants the same bytes; SOURCE_DATE_EPOCH changes the recorded time and
// nothing else varies.
func TestBuildReproducible(t *testing.T) {
	u := needUser(t)
	fixture := btNeedEnvFile(t, "HPCCTL_TEST_DEBIAN_OCI_ARCHIVE")
	shared := workDir(t, u)
	// One copy readable by both users (the image records only the file's name, not its directory).
	archive := btCopy(t, fixture, shared)
	src := "oci-archive:" + archive
	dir := t.TempDir()
	build := func(name, cache string, env ...string) string {
		t.Helper()
		out := filepath.Join(dir, name)
		env = append(env, "HPCCTL_CACHEDIR="+filepath.Join(dir, cache))
		btRun(t, dir, env, "build", out, src).mustSucceed(t, "hpcctl build "+name)
		return out
	}
	a, b := build("a.sif", "cache-a"), build("b.sif", "cache-b")
	userOut := filepath.Join(shared, "user.sif")
	btRunUser(t, u, []string{"HPCCTL_CACHEDIR=" + filepath.Join(shared, "cache")}, "build", userOut, src).
		mustSucceed(t, "hpcctl build as "+u.Name)
	want := btSHA256(t, a)
	for _, p := range []string{b, userOut} {
		if got := btSHA256(t, p); got != want {
			t.Errorf("%s: sha256 %s, want %s as the first build", p, got, want)
		}
	}

	const epoch = "SOURCE_DATE_EPOCH=1700000000"
	// The caches are warm now: that must not matter either.
	e1, e2 := build("e1.sif", "cache-a", epoch), build("e2.sif", "cache-b", epoch)
	if btSHA256(t, e1) == want {
		t.Errorf("SOURCE_DATE_EPOCH changed nothing in the image")
	}
	if x, y := btSHA256(t, e1), btSHA256(t, e2); x != y {
		t.Errorf("two builds with %s differ: %s and %s", epoch, x, y)
	}
	if got := btInspect(t, e1).Created; !got.Equal(time.Unix(1700000000, 0)) || got.Location() != time.UTC {
		t.Errorf("created %v, want 2023-11-14T22:13:20Z", got)
	}
	off, _ := btInspect(t, e1).partition(t)
	r := run(t, "unsquashfs", "-s", "-o", fmt.Sprint(off), e1)
	if !strings.Contains(r.Stdout, "Creation or last append time Tue Nov 14 22:13:20 2023") {
		t.Errorf("the squashfs superblock does not carry SOURCE_DATE_EPOCH:\n%s", r.Stdout)
	}

	t.Run("other path", func(t *testing.T) {
		// A copy of the archive in another directory is the same source: the whole SIF must be
		// the same bytes, since the image records the archive's name but not where it lay.
		other := btCopy(t, fixture, t.TempDir())
		out := filepath.Join(dir, "other.sif")
		btRun(t, dir, []string{"HPCCTL_CACHEDIR=" + filepath.Join(dir, "cache-other")}, "build", out, "oci-archive:"+other).
			mustSucceed(t, "hpcctl build")
		if !bytes.Equal(btPartition(t, out), btPartition(t, a)) {
			t.Errorf("the same image at another path gives another file system")
		}
		if btSHA256(t, out) != want {
			t.Errorf("the same archive in another directory gives another SIF")
		}
	})
	t.Run("busybox", func(t *testing.T) { btReproducibleBusybox(t, dir) })
}

// btReproducibleBusybox builds the busybox layout, and the docker-archive skopeo makes of it,
// twice each with fresh caches.
func btReproducibleBusybox(t *testing.T, dir string) {
	layout := testutil.NeedEnvDir(t, "HPCCTL_TEST_BUSYBOX_OCI")
	testutil.NeedCommands(t, "skopeo")
	docker := filepath.Join(dir, "busybox-docker.tar")
	run(t, "skopeo", "copy", "--quiet", "oci:"+layout+":latest", "docker-archive:"+docker+":e2e/busybox:1").
		mustSucceed(t, "skopeo copy to a docker-archive")
	for k, src := range []string{"oci:" + layout + ":latest", "docker-archive:" + docker} {
		var sums []string
		for i := range 2 {
			out := filepath.Join(dir, fmt.Sprintf("bb-%d-%d.sif", k, i))
			btRun(t, dir, []string{fmt.Sprintf("HPCCTL_CACHEDIR=%s/bbcache-%d-%d", dir, k, i)}, "build", out, src).
				mustSucceed(t, "hpcctl build "+src)
			sums = append(sums, btSHA256(t, out))
		}
		if sums[0] != sums[1] {
			t.Errorf("%s: two builds differ: %s", src, sums)
		}
	}
}

// btCounter is a reverse proxy in front of the registry that counts blob requests, to see what
// a build fetched.
type btCounter struct {
	mu    sync.Mutex
	blobs []string
}

func (c *btCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.blobs
	c.blobs = nil
	return b
}

func btProxy(t *testing.T, registry string) (string, *btCounter) {
	t.Helper()
	c := &btCounter{}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: registry})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			c.mu.Lock()
			c.blobs = append(c.blobs, r.Method+" "+r.URL.Path)
			c.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), c
}

// TestBuildFromRegistry pulls from the local registry as the plain user, builds again from the
// cache without fetching a blob, refuses plain HTTP without --insecure, and runs the image.
func TestBuildFromRegistry(t *testing.T) {
	registry := needRegistry(t)
	u := needUser(t)
	layout := testutil.NeedEnvDir(t, "HPCCTL_TEST_BUSYBOX_OCI")
	testutil.NeedCommands(t, "skopeo")
	const repo = "e2e/busybox:1"
	run(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:"+layout+":latest", "docker://"+registry+"/"+repo).
		mustSucceed(t, "skopeo copy to the registry")
	addr, counter := btProxy(t, registry)
	dir := workDir(t, u)
	env := []string{"HPCCTL_CACHEDIR=" + filepath.Join(dir, "cache")}
	first, second := filepath.Join(dir, "first.sif"), filepath.Join(dir, "second.sif")

	btRunUser(t, u, env, "build", "--insecure", first, "docker://"+addr+"/"+repo).mustSucceed(t, "first build")
	if got := counter.take(); len(got) == 0 {
		t.Errorf("the first build fetched no blob through the proxy")
	}
	r := btRunUser(t, u, env, "-d", "build", "--insecure", second, "docker://"+addr+"/"+repo).mustSucceed(t, "second build")
	if got := counter.take(); len(got) != 0 {
		t.Errorf("the second build fetched blobs again: %q", got)
	}
	if !strings.Contains(r.Stderr, `msg="image in cache"`) {
		t.Errorf("the second build did not report the cache hit at -d:\n%s", r.Stderr)
	}
	if btSHA256(t, first) != btSHA256(t, second) {
		t.Errorf("the build from the cache differs from the first")
	}

	refused := filepath.Join(dir, "refused.sif")
	r = btRunUser(t, u, env, "build", refused, "docker://"+registry+"/"+repo)
	btCheckFailure(t, r, 255, "--insecure", registry)
	if _, err := os.Lstat(refused); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %v, want no output after a refused pull", refused, err)
	}

	needUserNS(t, u)
	needFUSE(t, u)
	r = btRunUser(t, u, nil, "exec", first, "/bin/busybox", "echo", "ok")
	if r.Code != 0 || r.Stdout != "ok\n" {
		t.Errorf("hpcctl exec as %s: exit %d, stdout %q, stderr %q; want ok", u.Name, r.Code, r.Stdout, r.Stderr)
	}
}

// TestBuildBadInputs checks that every bad input fails with one line naming it, the right exit
// status, and nothing left in the output directory.
func TestBuildBadInputs(t *testing.T) {
	needRoot(t)
	bbArchive := btNeedEnvFile(t, "HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE")
	inputs := t.TempDir()
	random := filepath.Join(inputs, "random.tar")
	noise := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{'h', 'p', 'c'}).Read(noise) //nolint:errcheck // never fails
	if err := os.WriteFile(random, noise, 0o644); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(bbArchive)
	if err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(inputs, "half.tar")
	if err := os.WriteFile(half, whole[:len(whole)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(inputs, "evil")
	ocitest.WriteLayout(t, evil, "latest", ocitest.Image{Layers: [][]byte{layertest.Tar([]layertest.File{
		layertest.Dir("etc"), layertest.Reg("etc/ok", "ok\n"), layertest.Reg("../evil", "outside\n"),
	})}})
	good := "oci-archive:" + bbArchive

	tests := []struct {
		name  string
		args  func(out string) []string // out is a .sif path in the test's empty output directory
		usage bool                      // refused before anything is fetched
		names []string
	}{
		{"missing source", func(o string) []string { return []string{o, "oci-archive:/nonexistent.tar"} }, false, []string{"/nonexistent.tar"}},
		{"corrupt archive", func(o string) []string { return []string{o, "oci-archive:" + random} }, false, []string{random}},
		{"truncated archive", func(o string) []string { return []string{o, "oci-archive:" + half} }, false, []string{half}},
		{"unknown transport", func(o string) []string { return []string{o, "foo://x"} }, false, []string{"foo://x"}},
		{"hostile layer", func(o string) []string { return []string{o, "oci:" + evil + ":latest"} }, false, []string{"../evil"}},
		{"missing output directory", func(o string) []string { return []string{filepath.Join(o, "..", "no-such-dir", "x.sif"), good} }, false, []string{"no-such-dir"}},
		{"bad compression", func(o string) []string { return []string{"--compression", "bogus", o, good} }, true, []string{"bogus"}},
		{"bad block size", func(o string) []string { return []string{"--block-size", "3K", o, good} }, true, []string{"block"}},
		{"bad level", func(o string) []string { return []string{"--level", "99", o, good} }, true, []string{"level", "99"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outDir := t.TempDir()
			cache := filepath.Join(t.TempDir(), "cache")
			r := btRun(t, outDir, []string{"HPCCTL_CACHEDIR=" + cache}, append([]string{"build"}, tt.args(filepath.Join(outDir, "out.sif"))...)...)
			btCheckFailure(t, r, 255, tt.names...)
			if left := btNames(t, outDir); len(left) != 0 {
				t.Errorf("left in the output directory: %q", left)
			}
			btCacheClean(t, cache, tt.usage)
		})
	}
	t.Run("existing output", func(t *testing.T) {
		outDir := t.TempDir()
		out := filepath.Join(outDir, "exists.sif")
		if err := os.WriteFile(out, []byte("precious\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		env := []string{"HPCCTL_CACHEDIR=" + filepath.Join(t.TempDir(), "cache")}
		btCheckFailure(t, btRun(t, outDir, env, "build", out, good), 255, "exists.sif", "--force")
		if b, err := os.ReadFile(out); err != nil || string(b) != "precious\n" {
			t.Errorf("the existing output changed: %q, %v", b, err)
		}
		r := btRun(t, outDir, env, "build", "--force", out, good).mustSucceed(t, "hpcctl build --force")
		if !strings.HasPrefix(r.Stdout, "built "+out) {
			t.Errorf("stdout %q, want built %s ...", r.Stdout, out)
		}
		if img := btInspect(t, out); len(img.Objects) == 0 {
			t.Errorf("--force did not replace the file with an image")
		}
		if left := btNames(t, outDir); !slices.Equal(left, []string{"exists.sif"}) {
			t.Errorf("the output directory holds %q, want only exists.sif", left)
		}
	})
}

// TestBuildRunPythonInSlurm builds the Debian image as the plain user and runs its python3 in a
// Slurm batch job.
func TestBuildRunPythonInSlurm(t *testing.T) {
	needSlurm(t)
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	fixture := btNeedEnvFile(t, "HPCCTL_TEST_DEBIAN_OCI_ARCHIVE")
	dir := workDir(t, u)
	archive := btCopy(t, fixture, dir)
	img := filepath.Join(dir, "debian.sif")
	btRunUser(t, u, []string{"HPCCTL_CACHEDIR=" + filepath.Join(dir, "cache")}, "build", img, "oci-archive:"+archive).
		mustSucceed(t, "hpcctl build as "+u.Name)

	script := fmt.Sprintf("#!/bin/sh\nexec %s exec %s python3 -c 'import sys; print(sys.version_info[:2])'\n", bins.hpcctl, img)
	res := runInSlurm(t, u, script)
	if res.State != "COMPLETED" || res.ExitCode != 0 || res.Output != "(3, 11)\n" {
		t.Errorf("job: state %s exit %d:%d, output %q; want COMPLETED 0:0 and (3, 11)", res.State, res.ExitCode, res.Signal, res.Output)
	}

	r := btRunUser(t, u, nil, "inspect", img).mustSucceed(t, "hpcctl inspect")
	want := fmt.Sprintf("oci-archive:%s (%s)", filepath.Base(archive), btManifestDigest(t, archive))
	var source string
	for _, line := range strings.Split(r.Stdout, "\n") {
		if rest, ok := strings.CutPrefix(line, "Source:"); ok {
			source = strings.TrimSpace(rest)
		}
	}
	if source != want {
		t.Errorf("inspect shows Source %q, want %q:\n%s", source, want, r.Stdout)
	}
}
