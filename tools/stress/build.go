package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// buildRounds stresses hpcctl build with the source (an oci-archive: reference): builds racing
// to one new path through one shared cache, SIGKILL at each stage of a cold build and pull, and
// a full disk. Each ends with its check: one winner and a valid image, no partial output, no
// scratch left in the cache once the next build has run.
func (e *env) buildRounds(source string) error {
	dir := filepath.Join(e.dir, "builds")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, round := range []struct {
		name string
		fn   func(dir, source string) error
	}{
		{"8 concurrent builds to one path, one cache", e.racingBuilds},
		{"SIGKILL during cold builds", e.killedBuilds},
		{"a full disk", e.fullDisk},
	} {
		// Each round in a directory of its own, which its checks read.
		rdir := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(rdir, 0o755); err != nil {
			return err
		}
		start := time.Now()
		if err := round.fn(rdir, source); err != nil {
			return fmt.Errorf("build, %s: %w", round.name, err)
		}
		fmt.Printf("build: %s in %v\n", round.name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func (e *env) build(ctx context.Context, cache string, args ...string) *exec.Cmd {
	c := e.cmd(ctx, "root", append([]string{"build"}, args...)...)
	c.Env = append(c.Env, "HPCCTL_CACHEDIR="+cache)
	return c
}

// racingBuilds: 8 builds of one new path at once through one cold cache; exactly one wins, the
// others say why, and the image is whole.
func (e *env) racingBuilds(dir, source string) error {
	out, cache := filepath.Join(dir, "race.sif"), filepath.Join(dir, "race-cache")
	var wg sync.WaitGroup
	results := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := e.build(context.Background(), cache, out, source).CombinedOutput()
			if err != nil && !strings.Contains(string(b), "--force") {
				err = fmt.Errorf("a losing build did not say to use --force: %v: %s", err, b)
				results <- err
				return
			}
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	won := 0
	for err := range results {
		var ee *exec.ExitError
		switch {
		case err == nil:
			won++
		case !errors.As(err, &ee):
			return err
		}
	}
	if won != 1 {
		return fmt.Errorf("%d builds succeeded, want exactly 1", won)
	}
	if b, err := exec.Command(e.o.hpcctl, "inspect", out).CombinedOutput(); err != nil {
		return fmt.Errorf("the winner's image does not inspect: %v: %s", err, b)
	}
	return onlyFiles(dir, "race.sif", "race-cache")
}

// killedBuilds kills cold builds at growing delays (fetching, flattening, writing, naming), then
// builds once more with the same cache: that build succeeds and sweeps what the killed ones left.
func (e *env) killedBuilds(dir, source string) error {
	cache := filepath.Join(dir, "kill-cache")
	for _, d := range []time.Duration{0, 20 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond, time.Second, 2 * time.Second} {
		os.RemoveAll(cache) // each kill starts cold
		c := e.build(context.Background(), cache, filepath.Join(dir, "killed.sif"), source)
		if err := c.Start(); err != nil {
			return err
		}
		time.Sleep(d)
		c.Process.Kill()                            //nolint:errcheck // it may have finished
		c.Wait()                                    //nolint:errcheck // killed on purpose
		os.Remove(filepath.Join(dir, "killed.sif")) // a build that finished first
		if err := onlyFiles(dir, "kill-cache"); err != nil {
			return fmt.Errorf("killed after %v: %w", d, err)
		}
		if b, err := e.build(context.Background(), cache, filepath.Join(dir, "after.sif"), source).CombinedOutput(); err != nil {
			return fmt.Errorf("the build after a kill at %v failed: %v: %s", d, err, b)
		}
		os.Remove(filepath.Join(dir, "after.sif")) // checked, not needed
		if left := scratchIn(cache); len(left) > 0 {
			return fmt.Errorf("killed after %v: the next build left the cache's scratch: %q", d, left)
		}
	}
	return os.RemoveAll(cache)
}

// fullDisk builds onto a 16 MiB file system: the build fails with one line, leaving nothing.
func (e *env) fullDisk(dir, source string) error {
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", full, "tmpfs", 0, "size=16m"); err != nil {
		return fmt.Errorf("mount a small tmpfs: %w", err)
	}
	defer unix.Unmount(full, unix.MNT_DETACH) //nolint:errcheck // best effort
	b, err := e.build(context.Background(), filepath.Join(dir, "full-cache"), filepath.Join(full, "img.sif"), source).CombinedOutput()
	if err == nil {
		return errors.New("a build onto a 16 MiB file system succeeded")
	}
	if lines := strings.Count(strings.TrimSpace(string(b)), "\n") + 1; lines != 1 || !strings.Contains(string(b), "space") {
		return fmt.Errorf("want one line saying the disk is full, got:\n%s", b)
	}
	ents, _ := os.ReadDir(full)
	if len(ents) > 0 {
		return fmt.Errorf("the failed build left %d files on the full disk", len(ents))
	}
	return nil
}

// onlyFiles checks dir holds nothing but the names given (no temporary output beside them).
func onlyFiles(dir string, names ...string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, en := range ents {
		ok := false
		for _, n := range names {
			ok = ok || en.Name() == n
		}
		if !ok {
			return fmt.Errorf("left in the output directory: %s", en.Name())
		}
	}
	return nil
}

// scratchIn lists what pulls left in a cache: scratch directories and staged blobs.
func scratchIn(cache string) []string {
	var left []string
	filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error { //nolint:errcheck // a walk of what exists
		if err == nil && (strings.HasPrefix(d.Name(), "oci-put-blob") || (filepath.Base(filepath.Dir(p)) == "tmp" && !strings.HasSuffix(p, ".lock"))) {
			left = append(left, p)
		}
		return nil
	})
	return left
}
