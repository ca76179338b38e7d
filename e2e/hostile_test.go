package e2e

// Hostile and damaged inputs on the image side (issue 12): every one gets one line naming the
// thing and what to do, a non-zero status, no panic, and nothing left behind.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/sif/siftest"
	"github.com/hpcctl/hpcctl/internal/testutil"
	"github.com/hpcctl/hpcctl/internal/testutil/layertest"
	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// SIF header fields (github.com/sylabs/sif/v2 pkg/sif/sif.go): the descriptor count and the
// descriptor table's offset; in a descriptor, the object's size.
const (
	htDescTotal    = 88
	htDescOffset   = 96
	htDescSize     = 585
	htObjSizeField = 25
)

// htGoodSIF makes a small SIF (squashfs of a tiny tree, OCI config as object 2) in dir.
func htGoodSIF(t *testing.T, dir string) string {
	t.Helper()
	testutil.NeedCommands(t, "mksquashfs")
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc/hello"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "good.sif")
	if err := siftest.Make(p, tree, &v1.ImageConfig{Cmd: []string{"/bin/true"}}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCorruptSIF(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	good, err := os.ReadFile(htGoodSIF(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	put := func(b []byte, off int64, v int64) []byte {
		binary.LittleEndian.PutUint64(b[off:], uint64(v))
		return b
	}
	configDesc := int64(binary.LittleEndian.Uint64(good[htDescOffset:])) + htDescSize // descriptor 2
	damaged := map[string][]byte{
		"count-1<<40":  put(append([]byte(nil), good...), htDescTotal, 0x00000100_00000000),
		"count-neg":    put(append([]byte(nil), good...), htDescTotal, -1),
		"config-1TiB":  put(append([]byte(nil), good...), configDesc+htObjSizeField, 1<<40),
		"truncated":    good[:len(good)-1000],
		"header-short": good[:100],
	}
	wants := map[string]string{
		"count-1<<40": "descriptor count 1099511627776", "count-neg": "descriptor count -1",
		"config-1TiB": "descriptor 2 size 1099511627776 exceeds the file", "truncated": "exceeds the file",
		"header-short": "header is cut short",
	}
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "HPCCTL_KEY_PASSPHRASE=e2e"}
	btRun(t, dir, env, "key", "newpair", "--name", "site").mustSucceed(t, "hpcctl key newpair")
	for name, b := range damaged {
		p := filepath.Join(dir, strings.ReplaceAll(name, "<", "")+".sif")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, verb := range [][]string{{"inspect"}, {"inspect", "--json"}, {"sif", "list"}, {"exec"}, {"verify"}, {"sign", "--key", "site"}} {
			args := append(append([]string{}, verb...), p)
			if verb[0] == "exec" {
				args = append(args, "/bin/true")
			}
			t.Run(name+"/"+strings.Join(verb, "-"), func(t *testing.T) {
				r := btRun(t, dir, env, args...)
				if verb[0] == "verify" {
					r.Stdout = "" // the report says NOT verified; the reason is on stderr
				}
				btCheckFailure(t, r, 255, p, wants[name], "copy or build it again")
			})
		}
		if after, err := os.ReadFile(p); err != nil || string(after) != string(b) {
			t.Errorf("%s changed: %v", p, err)
		}
	}
}

// TestBuildParallelSameOutput: of 8 builds to the same new path exactly one wins and the others
// fail with one line naming it and --force; with --force all succeed and the file is whole.
func TestBuildParallelSameOutput(t *testing.T) {
	needRoot(t)
	src := "oci-archive:" + btNeedEnvFile(t, "HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE")
	outDir := t.TempDir()
	env := []string{"HPCCTL_CACHEDIR=" + filepath.Join(t.TempDir(), "cache")}
	warm := filepath.Join(t.TempDir(), "warm.sif")
	btRun(t, outDir, env, "build", warm, src).mustSucceed(t, "hpcctl build (warm the cache)")
	out := filepath.Join(outDir, "out.sif")
	for _, force := range []bool{false, true} {
		args := []string{"build", out, src}
		if force {
			args = []string{"build", "--force", out, src}
		}
		results := make([]result, 8)
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func() { defer wg.Done(); results[i] = btRun(t, outDir, env, args...) }()
		}
		wg.Wait()
		wins := 0
		for _, r := range results {
			if r.Code == 0 {
				wins++
				continue
			}
			btCheckFailure(t, r, 255, out, "--force")
		}
		if want := map[bool]int{false: 1, true: 8}[force]; wins != want {
			t.Errorf("force=%v: %d builds succeeded, want %d", force, wins, want)
		}
		btInspect(t, out)
		if left := btNames(t, outDir); len(left) != 1 || left[0] != "out.sif" {
			t.Errorf("force=%v: the output directory holds %q, want only out.sif", force, left)
		}
	}
}

// TestClosedStdout: `hpcctl inspect x | head` and the like end quietly, with the status of a
// program killed by SIGPIPE, not with "broken pipe" on stderr.
func TestClosedStdout(t *testing.T) {
	needRoot(t)
	img := htGoodSIF(t, t.TempDir())
	for _, args := range [][]string{{"inspect", img}, {"inspect", "--json", img}, {"sif", "list", img}, {"sif", "dump", img, "1"}} {
		t.Run(strings.Join(args[:len(args)-1], "-"), func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close() // the reader has gone before hpcctl writes: every write fails with EPIPE
			cmd := btCmd("/", nil, args...)
			cmd.Stdout = w
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err = cmd.Run()
			w.Close()
			code := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != 141 || stderr.Len() != 0 {
				t.Errorf("exit status %d, stderr %q; want 141 (128+SIGPIPE) and nothing", code, stderr.String())
			}
		})
	}
}

// htPutBlobs lists the blobs containers/image is staging (or a killed pull left) in the cache.
func htPutBlobs(cache string) []string {
	m, _ := filepath.Glob(filepath.Join(cache, "oci", "oci-put-blob*"))
	return m
}

// TestPullKilledLeavesNoStagedBlob: SIGKILL while a layer is being copied into the cache leaves
// a staged "oci-put-blob*" file; the next build removes it.
func TestPullKilledLeavesNoStagedBlob(t *testing.T) {
	needRoot(t)
	src := "oci-archive:" + btNeedEnvFile(t, "HPCCTL_TEST_DEBIAN_OCI_ARCHIVE")
	cache := filepath.Join(t.TempDir(), "cache")
	dir := t.TempDir()
	cmd := btCmd(dir, []string{"HPCCTL_CACHEDIR=" + cache}, "build", filepath.Join(dir, "killed.sif"), src)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	staged := false
	for end := time.Now().Add(time.Minute); time.Now().Before(end) && !staged; time.Sleep(2 * time.Millisecond) {
		staged = len(htPutBlobs(cache)) > 0
	}
	cmd.Process.Kill() //nolint:errcheck // it may have exited
	cmd.Wait()         //nolint:errcheck // killed
	if !staged {
		t.Fatal("the build staged no blob in the cache within a minute")
	}
	if len(htPutBlobs(cache)) == 0 {
		t.Log("the staged blob was renamed before the kill; nothing to sweep this time")
	}
	btRun(t, dir, []string{"HPCCTL_CACHEDIR=" + cache}, "build", filepath.Join(dir, "next.sif"), src).mustSucceed(t, "the next build")
	if left := htPutBlobs(cache); len(left) != 0 {
		t.Errorf("staged blobs left after the next build: %q", left)
	}
}

// htRewrite edits the manifest and config of the single image in an OCI layout, storing the new
// blobs and pointing index.json at the new manifest.
func htRewrite(t *testing.T, dir string, edit func(m *v1.Manifest, cfg *v1.Image)) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	readJSON := func(p string, v any) {
		b, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(b, v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	put := func(v any) (digest.Digest, int64) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d, int64(len(b))
	}
	var index v1.Index
	readJSON(filepath.Join(dir, "index.json"), &index)
	var m v1.Manifest
	readJSON(filepath.Join(blobs, index.Manifests[0].Digest.Encoded()), &m)
	var cfg v1.Image
	readJSON(filepath.Join(blobs, m.Config.Digest.Encoded()), &cfg)
	edit(&m, &cfg)
	m.Config.Digest, m.Config.Size = put(cfg)
	index.Manifests[0].Digest, index.Manifests[0].Size = put(m)
	b, err := json.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBuildRefusesLooseLayers: an xattr Linux cannot hold, a layer that is not the one its
// config's diff_ids name, and a layer media type hpcctl cannot read each fail the build with one
// line naming the layer (and entry), leaving nothing in the output directory.
func TestBuildRefusesLooseLayers(t *testing.T) {
	needRoot(t)
	base := layertest.Tar([]layertest.File{layertest.Dir("etc"), layertest.Reg("etc/a", "a\n")})
	top := layertest.Tar([]layertest.File{layertest.Reg("etc/b", "b\n")})
	other := layertest.Tar([]layertest.File{layertest.Reg("etc/c", "c\n")})
	bigXattr := layertest.Tar([]layertest.File{{Name: "etc/big", Body: "x", Xattrs: map[string]string{"user.big": strings.Repeat("x", 70000)}}})
	tests := []struct {
		name   string
		layers [][]byte
		edit   func(m *v1.Manifest, cfg *v1.Image)
		names  []string
	}{
		{"xattr over 64 KiB", [][]byte{base, bigXattr}, nil, []string{"layer 2/2", "etc/big", "user.big", "70000 bytes"}},
		{"diff_id mismatch", [][]byte{base, top}, func(m *v1.Manifest, cfg *v1.Image) {
			cfg.RootFS.DiffIDs[1] = digest.FromBytes(other)
		}, []string{"layer 2/2", digest.FromBytes(top).String(), digest.FromBytes(other).String(), "diff_ids"}},
		{"diff_id missing", [][]byte{base, top}, func(m *v1.Manifest, cfg *v1.Image) {
			cfg.RootFS.DiffIDs = cfg.RootFS.DiffIDs[:1]
		}, []string{"1 rootfs.diff_ids for 2 layers"}},
		{"unknown media type", [][]byte{base, top}, func(m *v1.Manifest, cfg *v1.Image) {
			m.Layers[1].MediaType = "application/vnd.oci.image.layer.v1.tar+encrypted"
		}, []string{"layer 2/2", "application/vnd.oci.image.layer.v1.tar+encrypted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "layout")
			ocitest.WriteLayout(t, src, "latest", ocitest.Image{Layers: tt.layers})
			if tt.edit != nil {
				htRewrite(t, src, tt.edit)
			}
			outDir := t.TempDir()
			env := []string{"HPCCTL_CACHEDIR=" + filepath.Join(t.TempDir(), "cache")}
			r := btRun(t, outDir, env, "build", filepath.Join(outDir, "out.sif"), "oci:"+src+":latest")
			btCheckFailure(t, r, 255, tt.names...)
			if left := btNames(t, outDir); len(left) != 0 {
				t.Errorf("left in the output directory: %q", left)
			}
		})
	}
}

// htDiskIn sums the blocks of the files process pid holds open in dir, named or not, and of
// the files named there: what a build costs that directory's file system at this moment.
func htDiskIn(pid int, dir string) int64 {
	seen := map[uint64]bool{}
	var total int64
	add := func(p string) {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && !seen[st.Ino] {
			seen[st.Ino] = true
			total += st.Blocks * 512
		}
	}
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(fds)
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			add(filepath.Join(fds, e.Name()))
		}
	}
	names, _ := os.ReadDir(dir)
	for _, n := range names {
		add(filepath.Join(dir, n.Name()))
	}
	return total
}

// TestBuildDiskUse: the squashfs is written in place inside the SIF, so a build needs about the
// image's size in the output directory, not twice that (a scratch squashfs, then its copy).
func TestBuildDiskUse(t *testing.T) {
	needRoot(t)
	src := "oci-archive:" + btNeedEnvFile(t, "HPCCTL_TEST_DEBIAN_OCI_ARCHIVE")
	env := []string{"HPCCTL_CACHEDIR=" + filepath.Join(t.TempDir(), "cache")}
	warmDir := t.TempDir()
	btRun(t, warmDir, env, "build", filepath.Join(warmDir, "warm.sif"), src).mustSucceed(t, "hpcctl build (warm the cache)")
	dir := t.TempDir()
	out := filepath.Join(dir, "image.sif")
	cmd := btCmd(dir, env, "build", out, src)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("hpcctl build: %v", err)
			}
			running = false
		case <-time.After(5 * time.Millisecond):
			peak = max(peak, htDiskIn(cmd.Process.Pid, dir))
		}
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %d bytes, peak disk use in the output directory %d bytes (%.2fx)", st.Size(), peak, float64(peak)/float64(st.Size()))
	if peak > st.Size()*5/4 {
		t.Errorf("the build used %d bytes in the output directory for a %d-byte image: more than 1.25x", peak, st.Size())
	}
}
