package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// btCacheClean checks that a failed build left no scratch files in the cache, and no cache at all
// when the command line was refused before any work.
func btCacheClean(t *testing.T, cache string, untouched bool) {
	t.Helper()
	_, err := os.Stat(cache)
	if untouched {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused command line made the cache %s (%v): validate flags before fetching", cache, err)
		}
		return
	}
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if tmp := filepath.Join(cache, "tmp"); btExists(tmp) {
		if left := btNames(t, tmp); len(left) != 0 {
			t.Errorf("left in %s: %q", tmp, left)
		}
	}
}

func btExists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestBuildInterrupted stops builds with a signal, while fetching into a cold cache and while
// writing from a warm one: the output directory must hold only what was there before, unchanged,
// and the cache must still serve the next build.
func TestBuildInterrupted(t *testing.T) {
	needRoot(t)
	archive := btNeedEnvFile(t, "HPCCTL_TEST_DEBIAN_OCI_ARCHIVE")
	src := "oci-archive:" + archive
	cache := filepath.Join(t.TempDir(), "cache")
	interrupt := func(t *testing.T, sig syscall.Signal) {
		dir := t.TempDir()
		out := filepath.Join(dir, "image.sif")
		if err := os.WriteFile(out, []byte("previous image\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := btCmd(dir, []string{"HPCCTL_CACHEDIR=" + cache}, "build", "--force", out, src)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		// The exit status is read from cmd.ProcessState below.
		go func() { defer close(done); _ = cmd.Wait() }()
		if !btWaitOpenIn(cmd.Process.Pid, dir, 30*time.Second) {
			cmd.Process.Kill() //nolint:errcheck // killed on a timeout; the test fails anyway
			<-done
			t.Fatalf("hpcctl build opened no output in %s: %q", dir, stderr.String())
		}
		time.Sleep(300 * time.Millisecond)
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill() //nolint:errcheck // killed on a timeout; the test fails anyway
			<-done
			t.Fatalf("hpcctl build still ran a minute after %v", sig)
		}
		t.Logf("after %v: exit status %d, stderr %q", sig, cmd.ProcessState.ExitCode(), stderr.String())
		if code := cmd.ProcessState.ExitCode(); code == 0 {
			t.Errorf("exit status 0 after %v, want a failure (stderr %q)", sig, stderr.String())
		}
		if s := stderr.String(); strings.Count(s, "\n") > 1 || (s != "" && !strings.HasPrefix(s, "hpcctl: ")) {
			t.Errorf("stderr %q, want at most one line \"hpcctl: ...\"", s)
		}
		if left := btNames(t, dir); !slices.Equal(left, []string{"image.sif"}) {
			t.Errorf("the output directory holds %q, want only the previous image.sif", left)
		}
		if b, _ := os.ReadFile(out); string(b) != "previous image\n" {
			t.Errorf("the previous output changed: %q", b)
		}
		btCacheClean(t, cache, false)
	}
	t.Run("fetching", func(t *testing.T) { interrupt(t, syscall.SIGINT) })
	dir := t.TempDir()
	btRun(t, dir, []string{"HPCCTL_CACHEDIR=" + cache}, "build", filepath.Join(dir, "whole.sif"), src).
		mustSucceed(t, "build with the cache an interrupted build left")
	t.Run("writing", func(t *testing.T) { interrupt(t, syscall.SIGTERM) })
	// SIGKILL gives hpcctl no chance to clean up: the output must never have had a name.
	t.Run("killed", func(t *testing.T) { interrupt(t, syscall.SIGKILL) })
	t.Run("stderr closed", func(t *testing.T) { btStderrClosed(t, cache, src) })
}

// btStderrClosed runs `hpcctl -d build ... 2>&1 | head -1`: the reader of stderr goes away
// mid-build. The build may finish or fail, but must leave either the previous output or a whole
// new image, and no temporary file.
func btStderrClosed(t *testing.T, cache, src string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "image.sif")
	if err := os.WriteFile(out, []byte("previous image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := btCmd(dir, []string{"HPCCTL_CACHEDIR=" + cache}, "-d", "build", "--force", out, src)
	cmd.Stderr = pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(pr).ReadString('\n')
	pr.Close()
	done := make(chan struct{})
	// The exit status is read from cmd.ProcessState below.
	go func() { defer close(done); _ = cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill() //nolint:errcheck // killed on a timeout; the test fails anyway
		<-done
		t.Fatal("hpcctl build still ran a minute after its stderr closed")
	}
	t.Logf("first line %q; then %v", line, cmd.ProcessState)
	if left := btNames(t, dir); !slices.Equal(left, []string{"image.sif"}) {
		t.Errorf("the output directory holds %q, want only image.sif (%v)", left, cmd.ProcessState)
	}
	if b, _ := os.ReadFile(out); string(b) != "previous image\n" && cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("the build failed (%v) and the previous output changed", cmd.ProcessState)
	}
}
