package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	hsif "github.com/hpcctl/hpcctl/internal/sif"
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
			case <-done: //nolint:errcheck // the exit status is read from c.ProcessState below
			case <-time.After(time.Minute):
				c.Process.Kill() //nolint:errcheck // killed on a timeout; the test fails anyway
				t.Fatal("hpcctl still ran a minute after SIGTERM")
			}
			if code := c.ProcessState.ExitCode(); code != 143 {
				t.Errorf("exit status %d, want 143 (stderr %q)", code, stderr.String())
			}
			if s := stderr.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "SIGTERM") {
				t.Errorf("stderr %q, want one line naming SIGTERM", s)
			}
			if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
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

// TestLauncherDamagedImage: squashfuse_ll serves an image whose superblock is damaged, and the
// program then fails as if it were missing; hpcctl must refuse such an image first, as root
// (kernel mount) and as a plain user (FUSE) alike, with one line, and start nothing.
func TestLauncherDamagedImage(t *testing.T) {
	e := ltSetup(t)
	img, err := hsif.Open(e.bb)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(e.bb)
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(e.workdir(t), "damaged.sif")
	// The inode table's start (superblock offset 64) now lies past the end of the image.
	copy(b[img.Offset+64:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0})
	if err := os.WriteFile(damaged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			before := ltTake(t)
			r := e.run(t, as, "/", nil, "", "exec", damaged, "true")
			if r.code != 255 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, damaged) || !strings.Contains(r.stderr, "damaged") {
				t.Errorf("exit %d, stderr %q; want 1 and one line saying %s is damaged", r.code, r.stderr, damaged)
			}
			e.nothingLeft(t, before, damaged)
		})
	}
}
