package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLauncherStoppedWhilePreparing sends SIGTERM (what Slurm's scancel sends hpcctl) while hpcctl
// still extracts the image for --unsquash: it must stop there with status 143 and one line, leave
// no extracted copy, and never start the program.
func TestLauncherStoppedWhilePreparing(t *testing.T) {
	e := ltSetup(t)
	deb, _ := ltDebian(t, e)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			tmp, work := e.workdir(t), e.workdir(t)
			marker := filepath.Join(work, "ran")
			c := e.cmd(t, as, work, []string{"TMPDIR=" + tmp}, "exec", "--unsquash", "-B", work, deb, "touch", marker)
			var stderr bytes.Buffer
			c.Stderr = &stderr
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			if !lsExtracting(tmp, done) {
				t.Fatalf("hpcctl never started extracting into %s: %q", tmp, stderr.String())
			}
			// setpriv execs hpcctl, so the process started is hpcctl itself.
			if err := c.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(time.Minute):
				c.Process.Kill() //nolint:errcheck
				t.Fatal("hpcctl still ran a minute after SIGTERM")
			}
			if code := c.ProcessState.ExitCode(); code != 143 {
				t.Errorf("exit status %d, want 143 (stderr %q)", code, stderr.String())
			}
			if s := stderr.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "SIGTERM") {
				t.Errorf("stderr %q, want one line naming SIGTERM", s)
			}
			if _, err := os.Stat(marker); !os.IsNotExist(err) {
				t.Errorf("the program ran after SIGTERM (%v)", err)
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				left, _ := filepath.Glob(filepath.Join(tmp, "*"))
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("left in TMPDIR: %q", left)
				}
			}
		})
	}
}

// lsExtracting waits until an extraction under tmp holds files, or hpcctl has exited.
func lsExtracting(tmp string, done chan error) bool {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-done:
			go func() { done <- err }() // put it back for the caller
			return false
		default:
		}
		if got, _ := filepath.Glob(filepath.Join(tmp, "hpcctl-unsquash-*", "root", "*")); len(got) > 0 {
			return true
		}
	}
	return false
}
