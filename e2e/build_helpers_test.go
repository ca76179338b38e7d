package e2e

// Helpers of the build tests (build_test.go), named bt*.

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// btMountPoints are the paths the build adds when an image lacks them (internal/build's
// mountPoints): the only differences from an independent unpacking that a build may make.
var btMountPoints = []string{
	"proc", "sys", "dev", "tmp", "var/tmp", "home", "root", "mnt",
	"etc/hosts", "etc/resolv.conf", "etc/localtime", "etc/passwd", "etc/group",
}

// btApptainerMeta reports whether p is one of the paths every build adds for Apptainer
// (internal/build's baseSingularityD and ociSingularityD): /.singularity.d and its top-level links.
func btApptainerMeta(p string) bool {
	return p == ".singularity.d" || strings.HasPrefix(p, ".singularity.d/") ||
		slices.Contains([]string{"singularity", ".run", ".exec", ".test", ".shell", "environment"}, p)
}

// btNeedEnvFile requires the environment variable to name an existing regular file (an archive
// fixture made by scripts/fixtures.sh) and returns it.
func btNeedEnvFile(t testing.TB, name string) string {
	t.Helper()
	p := os.Getenv(name)
	st, err := os.Stat(p)
	testutil.Need(t, p != "" && err == nil && st.Mode().IsRegular(), "needs $"+name+" naming a fixture file (make fixtures)")
	return p
}

// btEnv is the test's environment without the variables that change what a build makes, plus env.
func btEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != "SOURCE_DATE_EPOCH" && name != "HPCCTL_CACHEDIR" {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// btCmd prepares hpcctl, run as the test process (root), in dir, with env added to btEnv.
func btCmd(dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bins.hpcctl, args...)
	cmd.Dir = dir
	cmd.Env = btEnv(env...)
	return cmd
}

// btRun runs hpcctl as the test process to completion.
func btRun(t testing.TB, dir string, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, btCmd(dir, env, args...))
}

// btRunUser runs hpcctl as u (login-like environment plus env).
func btRunUser(t testing.TB, u testUser, env []string, args ...string) result {
	t.Helper()
	return runAsUserEnv(t, u, env, append([]string{bins.hpcctl}, args...)...)
}

func btSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// btImage is the part of `hpcctl inspect --json` the build tests read.
type btImage struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Objects []struct {
		Type   string `json:"type"`
		Name   string `json:"name"`
		Offset int64  `json:"offset"`
		Size   int64  `json:"size"`
		FSType string `json:"fsType"`
	} `json:"objects"`
	Provenance *struct {
		Source       string `json:"source"`
		SourceDigest string `json:"sourceDigest"`
	} `json:"provenance"`
}

// btInspect runs `hpcctl inspect --json` as root.
func btInspect(t testing.TB, sif string) btImage {
	t.Helper()
	r := btRun(t, "/", nil, "inspect", "--json", sif).mustSucceed(t, "hpcctl inspect --json "+sif)
	var img btImage
	if err := json.Unmarshal([]byte(r.Stdout), &img); err != nil {
		t.Fatalf("hpcctl inspect --json %s: %v\n%s", sif, err, r.Stdout)
	}
	return img
}

// partition returns the offset and size of the image's squashfs partition.
func (img btImage) partition(t testing.TB) (offset, size int64) {
	t.Helper()
	for _, o := range img.Objects {
		if o.Type == "FS" && o.FSType == "Squashfs" {
			return o.Offset, o.Size
		}
	}
	t.Fatalf("no squashfs partition among the objects: %+v", img.Objects)
	return 0, 0
}

// btPartition reads the bytes of a SIF's squashfs partition.
func btPartition(t testing.TB, sif string) []byte {
	t.Helper()
	off, size := btInspect(t, sif).partition(t)
	f, err := os.Open(sif)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read the partition of %s: %v", sif, err)
	}
	return b
}

// btManifestDigest reads the digest of the image that index.json of an oci-archive names: what
// the build must record as the source digest.
func btManifestDigest(t testing.TB, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s has no index.json", archive)
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		if strings.TrimPrefix(hdr.Name, "./") != "index.json" {
			continue
		}
		var index struct{ Manifests []struct{ Digest string } }
		if err := json.NewDecoder(tr).Decode(&index); err != nil || len(index.Manifests) != 1 {
			t.Fatalf("%s: index.json: %v (%d manifests, want 1)", archive, err, len(index.Manifests))
		}
		return index.Manifests[0].Digest
	}
}

// btNames lists a directory, dot files included, sorted.
func btNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// btCheckFailure checks how a build failed: the exit status, nothing on stdout, and exactly one
// line on stderr, "hpcctl: ...", containing every one of names.
func btCheckFailure(t testing.TB, r result, code int, names ...string) {
	t.Helper()
	if r.Code != code {
		t.Errorf("exit status %d, want %d (stderr %q)", r.Code, code, r.Stderr)
	}
	if r.Stdout != "" {
		t.Errorf("stdout %q, want nothing", r.Stdout)
	}
	if !strings.HasPrefix(r.Stderr, "hpcctl: ") || strings.Count(r.Stderr, "\n") != 1 || !strings.HasSuffix(r.Stderr, "\n") {
		t.Errorf("stderr %q, want exactly one line starting \"hpcctl: \"", r.Stderr)
	}
	for _, n := range names {
		if !strings.Contains(r.Stderr, n) {
			t.Errorf("stderr %q does not name %q", r.Stderr, n)
		}
	}
}

// btCopy copies a file into dir with mode 0644 (readable by the plain user) and returns its path.
func btCopy(t testing.TB, src, dir string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, filepath.Base(src))
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// btWaitOpenIn waits until process pid holds a file open in dir: the build's output, which has
// no name there while it is written (O_TMPFILE shows as "dir/#N (deleted)" in /proc).
func btWaitOpenIn(pid int, dir string, d time.Duration) bool {
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		ents, _ := os.ReadDir(fds)
		for _, e := range ents {
			if target, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
				return true
			}
		}
	}
	return false
}
