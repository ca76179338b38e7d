package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// dfSleepRecipe gives a file to another ID (a subordinate one on the host, for a plain user:
// only the build's namespace can remove it), says so, then sleeps in %post.
const dfSleepRecipe = `Bootstrap: oci-archive
From: %s

%%post
    mkdir -p /owned && touch /owned/f && chown -R 5:5 /owned
    echo sleeping
    sleep 4321
`

// TestDeffileKilled stops a recipe build in %post, as root and as a plain user, with Ctrl-C
// (SIGINT to its process group) and with kill -9 of the whole group. Neither may leave a process
// or a mount; Ctrl-C leaves no work directory, and what kill -9 leaves (for the plain user, files
// of subordinate IDs) goes at the next `hpcctl cache clean` or the next build.
func TestDeffileKilled(t *testing.T) {
	busybox := btNeedEnvFile(t, "HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE")
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	testutil.NeedCommands(t, "newuidmap", "newgidmap", "squashfuse_ll")
	t.Run("user", func(t *testing.T) { dfKilledAs(t, busybox, u, &u) })
	t.Run("root", func(t *testing.T) { dfKilledAs(t, busybox, u, nil) })
}

// dfKilledAs runs TestDeffileKilled's rounds as as (nil: root) in a directory of owner's.
func dfKilledAs(t *testing.T, busybox string, owner testUser, as *testUser) {
	dir := workDir(t, owner)
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if as != nil {
		run(t, "chown", fmt.Sprintf("%d:%d", as.UID, as.GID), tmp).mustSucceed(t, "chown tmp")
	}
	writeFile(t, owner, filepath.Join(dir, "sleep.def"), fmt.Sprintf(dfSleepRecipe, busybox), 0o644)
	writeFile(t, owner, filepath.Join(dir, "ok.def"), "Bootstrap: oci-archive\nFrom: "+busybox+"\n%post\n    true\n", 0o644)
	// The test's own cache, for root too: its cache clean must not touch root's default cache.
	env := []string{"TMPDIR=" + tmp, "HPCCTL_CACHEDIR=" + filepath.Join(dir, "cache")}

	dfKill(t, as, dir, env, syscall.SIGINT)
	if left := btNames(t, tmp); len(left) != 0 {
		t.Errorf("Ctrl-C left in $TMPDIR: %q", left)
	}

	dfKill(t, as, dir, env, syscall.SIGKILL)
	if n := dfForeignFiles(t, tmp, owner.UID); as != nil && n == 0 {
		t.Errorf("kill -9 left no file of a subordinate ID in %s: the sweep through the build's namespace goes untested", tmp)
	}
	r := dfRunEnv(t, as, dir, env, "cache", "clean").mustSucceed(t, "hpcctl cache clean")
	if left := btNames(t, tmp); len(left) != 0 {
		t.Errorf("hpcctl cache clean left in $TMPDIR: %q (stdout %q)", left, r.Stdout)
	}

	dfKill(t, as, dir, env, syscall.SIGKILL)
	dfRunEnv(t, as, dir, env, "build", "--force", filepath.Join(dir, "ok.sif"), "ok.def").mustSucceed(t, "the next build")
	if left := btNames(t, tmp); len(left) != 0 {
		t.Errorf("the next build left in $TMPDIR: %q", left)
	}
}

// dfKill starts the sleep recipe's build as u (nil: root), waits for %post to sleep, sends sig
// to the build's process group, and checks that no process of the build and no mount under dir
// is left.
func dfKill(t *testing.T, u *testUser, dir string, env []string, sig syscall.Signal) {
	t.Helper()
	mark := fmt.Sprintf("HPCCTL_E2E_KILL=%d-%d", os.Getpid(), time.Now().UnixNano())
	env = append([]string{mark}, env...)
	args := []string{"build", "--force", filepath.Join(dir, "out.sif"), "sleep.def"}
	var cmd *exec.Cmd
	if u != nil {
		cmd = userCmd(t, *u, dir, append(append(env, bins.hpcctl), args...)...)
	} else {
		cmd = btCmd(dir, env, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = cmd.Wait() }() // the status is checked below
	sleeping := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "sleeping" {
				sleeping <- true
			}
		}
		sleeping <- false
	}()
	select {
	case ok := <-sleeping:
		if !ok {
			<-done
			t.Fatalf("the build ended before %%post slept: %v", cmd.ProcessState)
		}
	case <-time.After(2 * time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // the test fails anyway
		<-done
		t.Fatal("the post section did not start sleeping in 2 minutes")
	}
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // the test fails anyway
		<-done
		t.Fatalf("the build still ran a minute after %v", sig)
	}
	if cmd.ProcessState.Success() {
		t.Errorf("the build succeeded after %v", sig)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.sif")); err == nil {
		t.Errorf("an image was written after %v", sig)
	}
	var left []string
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if left = dfProcesses(mark); len(left) == 0 || time.Now().After(end) {
			break
		}
	}
	if len(left) != 0 {
		t.Errorf("processes left after %v: %q", sig, left)
	}
	if m, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(m), dir) {
		t.Errorf("mounts under %s left after %v:\n%s", dir, sig, dfGrep(string(m), dir))
	}
}

// dfProcesses lists the processes with mark in their environment, or "sleep 4321" as their
// command (%post's, whose environment the build sets afresh).
func dfProcesses(mark string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		environ, _ := os.ReadFile(filepath.Join(p, "environ"))
		args := strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
		if args == "sleep 4321" || strings.Contains(string(environ), mark+"\x00") {
			out = append(out, fmt.Sprintf("%d %s", pid, args))
		}
	}
	return out
}

// dfForeignFiles counts the files under dir that do not belong to uid.
func dfForeignFiles(t *testing.T, dir string, uid int) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error { //nolint:errcheck // a partial count fails the caller's check
		var st syscall.Stat_t
		if err == nil && syscall.Lstat(p, &st) == nil && int(st.Uid) != uid {
			n++
		}
		return nil
	})
	return n
}
