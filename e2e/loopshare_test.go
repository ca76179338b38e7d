package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// waitReady is the program of a container that stays up until the test lets it go: it says it
// runs (ready-N in its working directory, bound from the host) and waits for the file go there.
const waitReady = `echo > "ready-$1"; while [ ! -e go ]; do sleep 0.05; done; echo ok`

// TestLoopSharedRootAndStarter runs containers of one image at once as root and, through the
// setuid starter, as the plain user: every kernel mount of the image uses one loop device (so
// one squashfs superblock and one page cache, issue 14), and none is left after them.
func TestLoopSharedRootAndStarter(t *testing.T) {
	e := starterSetup(t)
	for _, tc := range []struct {
		name        string
		root, users int
	}{{"root", 4, 0}, {"root and starter", 2, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := workDir(t, e.u)
			var cmds []*exec.Cmd
			for i := range tc.root + tc.users {
				args := []string{"hpcctl", "exec", e.img, "sh", "-c", waitReady, "sh", strconv.Itoa(i)}
				var c *exec.Cmd
				if i < tc.root {
					c = exec.Command(e.hpcctl, args[1:]...)
					c.Dir = dir
				} else {
					c = e.cmd(t, true, dir, nil, args...)
				}
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, c)
			}
			released := false
			release := func() {
				if !released {
					released = true
					os.WriteFile(filepath.Join(dir, "go"), nil, 0o644) //nolint:errcheck // a failure shows as containers that do not end
					for _, c := range cmds {
						c.Wait() //nolint:errcheck // their output is not the point: the loop devices are
					}
				}
			}
			defer release()
			for i := range cmds {
				if !ltWaitFile(filepath.Join(dir, "ready-"+strconv.Itoa(i)), time.Minute) {
					t.Fatalf("container %d did not start", i)
				}
			}
			if l := loopsOf(t, e.img); len(l) != 1 {
				t.Errorf("loop devices of the image with %d containers running: %v, want one", len(cmds), l)
			}
			release()
			for i, c := range cmds {
				if !c.ProcessState.Success() {
					t.Errorf("container %d: %v", i, c.ProcessState)
				}
			}
			if !waitNoLoop(t, e.img) {
				t.Errorf("loop devices left: %v", loopsOf(t, e.img))
			}
		})
	}
}

// waitNoLoop waits briefly for autoclear, which acts once the last mount namespace is gone.
func waitNoLoop(t *testing.T, img string) bool {
	t.Helper()
	for range 50 {
		if len(loopsOf(t, img)) == 0 {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
