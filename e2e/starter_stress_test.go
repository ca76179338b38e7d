package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStarterConcurrent starts 64 containers of one image at once through the starter, as the
// plain user without user namespaces: all succeed, they share one loop device, none is left.
func TestStarterConcurrent(t *testing.T) {
	e := starterSetup(t)
	const n = 64
	var peak atomic.Int64
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if l := int64(len(loopsOf(t, e.img))); l > peak.Load() {
				peak.Store(l)
			}
		}
	}()
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.run(t, true, nil, "hpcctl", "exec", e.img, "sh", "-c", "sleep 1; echo ok")
		}()
	}
	wg.Wait()
	close(stop)
	<-polled
	for i, r := range results {
		if r.Code != 0 || r.Stdout != "ok\n" {
			t.Errorf("container %d: status %d, stdout %q, stderr %q", i, r.Code, r.Stdout, r.Stderr)
		}
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("loop devices of the image at the peak: %d, want 1", p)
	}
	if l := loopsOf(t, e.img); len(l) != 0 {
		t.Errorf("loop devices left: %v", l)
	}
}

// TestStarterKilled kills hpcctl (SIGKILL) at points of a launch through the starter: nothing is
// left, no loop device, no container process, no process that keeps root.
func TestStarterKilled(t *testing.T) {
	e := starterSetup(t)
	mark := "9.731"
	for i, d := range []time.Duration{0, 1, 2, 4, 6, 8, 12, 16, 24, 32, 50, 80, 150} {
		for _, p := range []string{"default", "containall"} {
			c := e.cmd(t, true, workDir(t, e.u), nil, "hpcctl", "exec", "--profile", p, e.img, "sleep", mark)
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(d * time.Millisecond)
			c.Process.Kill() //nolint:errcheck // it may have failed already
			c.Wait()         //nolint:errcheck // killed
			_ = i
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := leftovers(t, e, mark)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left after SIGKILL of hpcctl: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leftovers lists what a killed launch may leave: loop devices of the image, the container's
// program, and processes of the user that keep root (effective or saved UID 0).
func leftovers(t *testing.T, e *stEnv, mark string) []string {
	t.Helper()
	var left []string
	if l := loopsOf(t, e.img); len(l) != 0 {
		left = append(left, "loop devices "+strings.Join(l, " "))
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p + "/cmdline")
		status, _ := os.ReadFile(p + "/status")
		if strings.Contains(string(cmdline), mark) {
			left = append(left, p+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
		for _, l := range strings.Split(string(status), "\n") {
			f := strings.Fields(l)
			if len(f) == 5 && f[0] == "Uid:" && f[1] == strconv.Itoa(e.u.UID) && (f[2] == "0" || f[3] == "0") {
				left = append(left, p+" keeps root: "+strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
	}
	if out, _ := exec.Command("grep", "-c", "squashfs", "/proc/self/mountinfo").Output(); strings.TrimSpace(string(out)) != "0" {
		// Only the host's own squashfs mounts may be there; the starter's are in private namespaces.
		b, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(b), filepath.Base(e.img)) {
			left = append(left, "a mount of the image on the host")
		}
	}
	return left
}
