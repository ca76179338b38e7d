package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hpcctl/hpcctl/internal/sif/siftest"
	"github.com/hpcctl/hpcctl/internal/testutil"
)

// stEnv is the setuid installation the starter tests use (bins.suid), a busybox SIF that only
// root can change, and the nouserns helper.
type stEnv struct {
	hpcctl   string // PREFIX/bin/hpcctl
	img      string // root-owned busybox SIF in a root-owned directory
	tree     string // its tree, to make variants
	nouserns string
	// rawstarter runs the starter with a Spec as given (a hostile hpcctl).
	rawstarter string
	u          testUser
}

var (
	stOnce  sync.Once
	stState *stEnv
	stErr   error
)

func starterSetup(t *testing.T) *stEnv {
	t.Helper()
	needLoop(t)
	u := needUser(t)
	testutil.Need(t, bins.starter != "", "needs the setuid starter installed (cmd/hpcctl-starter, tests as root)")
	testutil.NeedCommands(t, "busybox")
	stOnce.Do(func() { stState, stErr = stBuild(u) })
	if stErr != nil {
		t.Fatal(stErr)
	}
	return stState
}

func stBuild(u testUser) (*stEnv, error) {
	dir := filepath.Join(bins.suid, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &stEnv{hpcctl: filepath.Join(bins.suid, "bin", "hpcctl"), img: filepath.Join(dir, "bb.sif"),
		tree: filepath.Join(bins.root, "st-tree"), nouserns: filepath.Join(bins.root, "bin", "nouserns"), u: u}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, err
	}
	if err = siftest.BusyboxTree(e.tree, busybox); err != nil {
		return nil, err
	}
	if err = siftest.Make(e.img, e.tree, nil); err != nil {
		return nil, err
	}
	if err = os.Chmod(e.img, 0o644); err != nil {
		return nil, err
	}
	modRoot, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(goTool(), "build", "-o", filepath.Join(bins.root, "bin")+"/", "./e2e/cmd/nouserns", "./e2e/cmd/rawstarter")
	cmd.Dir, cmd.Env = modRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, &exec.Error{Name: "go build nouserns rawstarter: " + string(out), Err: err}
	}
	e.rawstarter = filepath.Join(bins.root, "bin", "rawstarter")
	return e, nil
}

// run runs args as the test user (PREFIX/bin/hpcctl when args[0] is "hpcctl"), under the
// seccomp filter that refuses user namespaces when noUserns, with extra env first.
func (e *stEnv) run(t *testing.T, noUserns bool, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, e.cmd(t, noUserns, workDir(t, e.u), env, args...))
}

func (e *stEnv) cmd(t *testing.T, noUserns bool, dir string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	if args[0] == "hpcctl" {
		args = append([]string{e.hpcctl}, args[1:]...)
	}
	c := userCmd(t, e.u, dir, append(append([]string{}, env...), args...)...)
	if noUserns {
		c = exec.Command(e.nouserns, c.Args...)
		c.Dir = dir
	}
	return c
}

// loopsOf lists the loop devices bound to file.
func loopsOf(t *testing.T, file string) []string {
	t.Helper()
	out, err := exec.Command("losetup", "-n", "-O", "NAME", "-j", file).Output()
	if err != nil {
		t.Fatalf("losetup -j %s: %v", file, err)
	}
	return strings.Fields(string(out))
}

// userNSModes are the two host kinds the starter must work on.
var userNSModes = []struct {
	name     string
	noUserns bool
}{{"userns", false}, {"nouserns", true}}
