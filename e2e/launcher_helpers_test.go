package e2e

// Local helpers of the launcher's end-to-end tests, named lt*, to be folded into the shared harness.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/sif/siftest"
	"github.com/hpcctl/hpcctl/internal/testutil"
)

// ltUser is the plain user the unprivileged tests run as.
const ltUser = "hpcuser"

// ltEnv is the shared state: a world-readable directory with the binary and the images.
type ltEnv struct {
	dir    string
	bin    string
	bb     string // busybox SIF with an OCI config
	bbTree string // the busybox tree, as a sandbox directory
	bbSqfs string // the busybox tree as a bare squashfs file
	app    string // busybox SIF without config, with /.singularity.d like Apptainer's
	token  string // marks the environment of every hpcctl started here, to find its processes
}

var (
	ltOnce  sync.Once
	ltState *ltEnv
	ltErr   error
	debOnce sync.Once
	debSIF  string
	debErr  error
)

// ltSetup builds hpcctl and the busybox images once per test binary.
func ltSetup(t *testing.T) *ltEnv {
	t.Helper()
	testutil.NeedRoot(t)
	testutil.NeedCommands(t, "mksquashfs", "setpriv", "losetup")
	ltOnce.Do(func() { ltState, ltErr = ltBuild() })
	if ltErr != nil {
		t.Fatal(ltErr)
	}
	return ltState
}

// ltBuild makes the shared directory under e2e/testdata/cache (ignored by git), so that nothing is
// left in /tmp and the Debian image, slow to make, is reused while its fixture is unchanged.
func ltBuild() (*ltEnv, error) {
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(self))
	dir := filepath.Join(root, "e2e", "testdata", "cache", "launcher")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The plain user must reach the binary and the images.
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, st.Mode().Perm()|0o005); err != nil {
				return nil, err
			}
		}
	}
	old, _ := filepath.Glob(filepath.Join(dir, "work-*"))
	for _, w := range append(old, filepath.Join(dir, "bbtree"), filepath.Join(dir, "apptree")) {
		if err := os.RemoveAll(w); err != nil {
			return nil, err
		}
	}
	tok := make([]byte, 8)
	rand.Read(tok) // never fails
	// The harness's hpcctl, with hpcctl-image beside it as installed (--unsquash and signature
	// policies run it).
	e := &ltEnv{dir: dir, bin: bins.hpcctl, bb: filepath.Join(dir, "bb.sif"),
		bbTree: filepath.Join(dir, "bbtree"), bbSqfs: filepath.Join(dir, "bb.sqfs"), app: filepath.Join(dir, "app.sif"), token: hex.EncodeToString(tok)}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("needs busybox (busybox-static): %w", err)
	}
	if err := siftest.BusyboxTree(e.bbTree, busybox); err != nil {
		return nil, err
	}
	cfg := &v1.ImageConfig{Env: []string{"PATH=/bin", "FROM_IMAGE=yes"}, Cmd: []string{"/bin/sh", "-c", "echo run-cmd $0 \"$@\""}}
	if err := siftest.Make(e.bb, e.bbTree, cfg); err != nil {
		return nil, err
	}
	if out, err := exec.Command("mksquashfs", e.bbTree, e.bbSqfs, "-quiet", "-no-progress", "-noappend").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mksquashfs: %v: %s", err, out)
	}
	appTree := filepath.Join(dir, "apptree")
	if err := siftest.BusyboxTree(appTree, busybox); err != nil {
		return nil, err
	}
	files := map[string]string{
		".singularity.d/env/90-test.sh": "export FROM_APPTAINER_ENV=yes\n",
		".singularity.d/runscript":      "#!/bin/sh\necho runscript \"$@\" $FROM_APPTAINER_ENV\n",
		".singularity.d/test":           "#!/bin/sh\necho test-script-ran\nexit 4\n",
	}
	for name, content := range files {
		p := filepath.Join(appTree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			return nil, err
		}
	}
	return e, siftest.Make(e.app, appTree, nil)
}

// ltDebian returns a SIF of the Debian + python3 fixture tree, made once (mksquashfs takes a while).
func ltDebian(t *testing.T, e *ltEnv) (sifPath, tree string) {
	t.Helper()
	tree = testutil.NeedEnvDir(t, "HPCCTL_TEST_DEBIAN_ROOTFS")
	debOnce.Do(func() {
		st, err := os.Stat(filepath.Join(tree, "usr/bin/python3"))
		if err != nil {
			debErr = err
			return
		}
		// Named after the fixture's python3, so that a remade fixture makes a new image.
		debSIF = filepath.Join(e.dir, fmt.Sprintf("debian-%d.sif", st.ModTime().UnixNano()))
		if _, err := os.Stat(debSIF); err == nil {
			return
		}
		old, _ := filepath.Glob(filepath.Join(e.dir, "debian-*.sif"))
		for _, o := range old {
			os.Remove(o) // stale cache
		}
		debErr = siftest.Make(debSIF+".tmp", tree, &v1.ImageConfig{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}})
		if debErr == nil {
			debErr = os.Rename(debSIF+".tmp", debSIF)
		}
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debSIF, tree
}

// ltResult is one finished command.
type ltResult struct {
	stdout, stderr string
	code           int            // the exit status, or 128+N when signal N killed hpcctl
	signal         syscall.Signal // the signal that killed hpcctl, 0 when it exited
}

// ltAs names who runs a command.
type ltAs string

const (
	asRoot ltAs = "root"
	asUser ltAs = ltUser
)

// ltStarter reports whether a launch by as of the launcher's images (root's, in root's
// directories) takes the setuid starter: a plain user's, when the tests run through the setuid
// installation (viaStarterEnv). The few results that differ there by design (docs/launch.md, "The
// setuid starter") are checked against it.
func ltStarter(as ltAs) bool {
	return as == asUser && os.Getenv(viaStarterEnv) == "1"
}

// ltNeedUser makes the plain user usable: it exists and may open /dev/fuse.
func ltNeedUser(t *testing.T) *user.User {
	t.Helper()
	u, err := user.Lookup(ltUser)
	if err != nil {
		if out, uerr := exec.Command("useradd", "-m", ltUser).CombinedOutput(); uerr != nil {
			t.Fatalf("useradd %s: %v: %s", ltUser, uerr, out)
		}
		if u, err = user.Lookup(ltUser); err != nil {
			t.Fatal(err)
		}
	}
	testutil.NeedCommands(t, "squashfuse_ll")
	if err := os.Chmod("/dev/fuse", 0o666); err != nil {
		t.Fatalf("chmod /dev/fuse: %v", err)
	}
	return u
}

// ltCmd prepares hpcctl with args, run by as, in dir, with extra environment.
func (e *ltEnv) cmd(t *testing.T, as ltAs, dir string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	base := []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C", "HPCCTL_E2E_TOKEN=" + e.token}
	var c *exec.Cmd
	if os.Getenv("HPCCTL_NO_SESSION") == "1" {
		// The harness's switch (HPCCTL_TEST_SESSIONS=off, see harness_test.go) reaches hpcctl.
		base = append(base, "HPCCTL_NO_SESSION=1")
	}
	if as == asRoot {
		c = exec.Command(e.bin, args...)
		base = append(base, "HOME=/root", "USER=root")
	} else {
		u := ltNeedUser(t)
		c = exec.Command("setpriv", append([]string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups", "--", e.bin}, args...)...)
		base = append(base, "HOME="+u.HomeDir, "USER="+ltUser)
	}
	c.Dir = dir
	c.Env = append(base, env...)
	return c
}

// run runs hpcctl to completion (2 minutes at most).
func (e *ltEnv) run(t *testing.T, as ltAs, dir string, env []string, stdin string, args ...string) ltResult {
	t.Helper()
	c := e.cmd(t, as, dir, env, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr, c.Stdin = &out, &errb, strings.NewReader(stdin)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		c.Process.Kill() //nolint:errcheck // killed on a timeout; the test fails anyway
		t.Fatalf("hpcctl %q did not finish in 2 minutes", args)
	}
	r := ltResult{stdout: out.String(), stderr: errb.String(), code: c.ProcessState.ExitCode()}
	// hpcctl dies of the signal that killed the program: report it as a shell does, 128+N.
	if ws := c.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
		r.code, r.signal = 128+int(ws.Signal()), ws.Signal()
	}
	return r
}

// workdir makes a directory both users can write in.
func (e *ltEnv) workdir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(e.dir, "work-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) }) // best effort; the next run clears the rest
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// ltSnapshot is what must be the same before and after a container.
type ltSnapshot struct {
	mounts string
	tmp    []string
}

func ltTake(t *testing.T) ltSnapshot {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	tmp, _ := filepath.Glob(filepath.Join(os.TempDir(), "hpcctl-unsquash-*"))
	return ltSnapshot{mounts: string(b), tmp: tmp}
}

// ltNothingLeft checks that no mount, loop device, squashfuse_ll or temporary directory outlived
// the containers started since before was taken.
func (e *ltEnv) nothingLeft(t *testing.T, before ltSnapshot, images ...string) {
	t.Helper()
	var after ltSnapshot
	var left []string
	// Teardown of the last mount namespace and the loop autoclear finish just after the exit.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		after, left = ltTake(t), nil
		for _, img := range images {
			out, _ := exec.Command("losetup", "-j", img).Output()
			if s := strings.TrimSpace(string(out)); s != "" {
				left = append(left, "loop device: "+s)
			}
		}
		left = append(left, e.processes(t)...)
		if (len(left) == 0 && after.mounts == before.mounts && len(newTmp(before, after)) == 0) || time.Now().After(deadline) {
			break
		}
	}
	if after.mounts != before.mounts {
		t.Errorf("mounts changed:\nbefore:\n%s\nafter:\n%s", before.mounts, after.mounts)
	}
	// Only new ones: a launch sweeps what a killed launch left earlier (scratch.Sweep).
	if n := newTmp(before, after); len(n) > 0 {
		t.Errorf("temporary directories left: %q", n)
	}
	for _, l := range left {
		t.Errorf("left behind: %s", l)
	}
}

// newTmp lists the temporary directories in after that before did not have.
func newTmp(before, after ltSnapshot) []string {
	var n []string
	for _, d := range after.tmp {
		if !slices.Contains(before.tmp, d) {
			n = append(n, d)
		}
	}
	return n
}

// processes lists live processes started by this test's hpcctl (squashfuse_ll included), found by
// the token in their environment, but shared image session holders and their squashfuse_ll: they
// outlive a container by design, up to their idle timeout, which session_test.go checks.
func (e *ltEnv) processes(t *testing.T) []string {
	t.Helper()
	var found []string
	for _, p := range e.allProcesses(t) {
		if !p.session {
			found = append(found, p.desc)
		}
	}
	return found
}

// processesWithSessions is processes with the session holders and their squashfuse_ll, for tests
// that look for the image's FUSE server.
func (e *ltEnv) processesWithSessions(t *testing.T) []string {
	t.Helper()
	var found []string
	for _, p := range e.allProcesses(t) {
		found = append(found, p.desc)
	}
	return found
}

// ltProc is one process an hpcctl of this test started.
type ltProc struct {
	pid     int
	desc    string
	session bool // a session holder or its squashfuse_ll
}

// allProcesses lists live processes started by this test's hpcctl, session holders of this
// binary's images and their squashfuse_ll included. A holder carries the environment of the
// launch that started it, which may be another test's of this binary.
func (e *ltEnv) allProcesses(t *testing.T) []ltProc {
	t.Helper()
	type cand struct {
		ltProc
		ppid          int
		token, holder bool
	}
	var all []cand
	holders := map[int]bool{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if st, err := os.ReadFile(filepath.Join(d, "stat")); err != nil || strings.Contains(string(st), ") Z ") {
			continue
		}
		env, _ := os.ReadFile(filepath.Join(d, "environ"))
		cmdline, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		pid, _ := strconv.Atoi(filepath.Base(d))
		ppid, _ := ltParent(pid)
		c := cand{ltProc: ltProc{pid: pid, desc: fmt.Sprintf("process %d: %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))}, ppid: ppid,
			token:  bytes.Contains(env, []byte("HPCCTL_E2E_TOKEN="+e.token)),
			holder: bytes.Contains(cmdline, []byte(sessionHolderArg)) && (bytes.Contains(cmdline, []byte(e.dir)) || bytes.Contains(env, []byte("HPCCTL_E2E_TOKEN="+e.token)))}
		if c.holder {
			holders[pid] = true
		}
		all = append(all, c)
	}
	var found []ltProc
	for _, c := range all {
		if c.holder || holders[c.ppid] {
			c.session = true
			found = append(found, c.ltProc)
		} else if c.token {
			found = append(found, c.ltProc)
		}
	}
	return found
}

// sessionHolderArg is how a session holder shows in /proc/PID/cmdline (session.HolderArg).
const sessionHolderArg = "__hpcctl_session__"

// ltParent is a process's parent PID, from /proc/PID/stat (after the command name, which may hold
// spaces and parentheses).
func ltParent(pid int) (int, error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(st, ')')
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[1])
}
