package oci

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

func TestConcurrentProcesses(t *testing.T) {
	dir := t.TempDir()
	img := testImage("proc")
	img.Layers = append(img.Layers, randomLayer(3, 2<<20))
	ocitest.WriteOCIArchive(t, filepath.Join(dir, "img.tar"), "", img)
	ref, cache := "oci-archive:"+filepath.Join(dir, "img.tar"), t.TempDir()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childPullEnv+"="+ref, CacheDirEnv+"="+cache)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v: %s", i, err, outs[i])
		}
	}
	got := pull(t, ref, SourceOptions{CacheDir: cache})
	if !got.Stats.CacheHit {
		t.Errorf("pull after the processes: stats %+v, want a cache hit", got.Stats)
	}
	checkImage(t, got, img)
}

func TestPullWaitsForLockUntilCancelled(t *testing.T) {
	src, cache := t.TempDir(), t.TempDir()
	ocitest.WriteLayout(t, src, "", testImage("lock"))
	c, err := openCache(cache)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := c.lock(context.Background(), SourceOptions{}.logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = Pull(ctx, "oci:"+src, SourceOptions{CacheDir: cache})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pull while the cache is locked: %v, want the context's deadline", err)
	}
	unlock()
	pull(t, "oci:"+src, SourceOptions{CacheDir: cache})
}

func TestProgressQuietOffTerminal(t *testing.T) {
	src := t.TempDir()
	ocitest.WriteLayout(t, src, "", testImage("quiet"))
	var out bytes.Buffer
	pull(t, "oci:"+src, SourceOptions{CacheDir: t.TempDir(), Progress: &out})
	if out.Len() != 0 {
		t.Errorf("progress written to a non-terminal: %q", out.String())
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv(CacheDirEnv, "/somewhere/cache")
	if d, err := DefaultCacheDir(); err != nil || d != "/somewhere/cache" {
		t.Errorf("DefaultCacheDir() = %q, %v with $%s set", d, err, CacheDirEnv)
	}
	t.Setenv(CacheDirEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := DefaultCacheDir(); err != nil || d != "/xdg/hpcctl" {
		t.Errorf("DefaultCacheDir() = %q, %v, want /xdg/hpcctl", d, err)
	}
}
