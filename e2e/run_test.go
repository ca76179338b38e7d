package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cmdTimeout bounds every command a test runs, so that a hang fails the test with the command's
// output instead of stalling the whole run until go test's deadline.
const cmdTimeout = 2 * time.Minute

// result is what a finished command left behind.
type result struct {
	Stdout, Stderr string
	Code           int
}

// testUser is the unprivileged account the tests run as (scripts/install-test-deps.sh makes it).
type testUser struct {
	Name     string
	UID, GID int
	Home     string
}

// userEnv names the variables passed to commands run as the test user; everything else is
// dropped, as a login would.
var userEnv = []string{"SLURM_CONF", "HPCCTL_TEST_STRICT"}

// run runs a command as the test process's own user (root in CI) and returns its result; it
// fails the test only when the command cannot run or times out.
func run(t testing.TB, args ...string) result {
	t.Helper()
	return runCmd(t, exec.Command(args[0], args[1:]...))
}

// runAsUser runs a command as u through setpriv, with a login-like environment (HOME, USER,
// LOGNAME, SHELL, a default PATH) plus userEnv, in a work directory u owns.
func runAsUser(t testing.TB, u testUser, args ...string) result {
	t.Helper()
	return runCmd(t, userCmd(t, u, workDir(t, u), args...))
}

// runAsUserEnv is runAsUser with extra NAME=value variables, set last so they win: a host
// environment that should (or should not) leak into a container.
func runAsUserEnv(t testing.TB, u testUser, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, userCmd(t, u, workDir(t, u), append(append([]string{}, env...), args...)...))
}

// userCmd makes the command that runs args as u in dir. Leading NAME=value words in args are
// environment variables (env(1) reads them).
func userCmd(t testing.TB, u testUser, dir string, args ...string) *exec.Cmd {
	t.Helper()
	needRoot(t)
	full := []string{
		"setpriv", "--reuid=" + strconv.Itoa(u.UID), "--regid=" + strconv.Itoa(u.GID),
		"--init-groups", "--reset-env", "--", "env",
	}
	for _, name := range userEnv {
		if v, ok := os.LookupEnv(name); ok {
			full = append(full, name+"="+v)
		}
	}
	full = append(full, args...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Dir = dir
	return cmd
}

func runCmd(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Dir, c.Env, c.Stdout, c.Stderr = cmd.Dir, cmd.Env, &stdout, &stderr
	err := c.Run()
	res := result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s: timed out after %v\nstdout: %s\nstderr: %s", cmd, cmdTimeout, res.Stdout, res.Stderr)
	case errors.As(err, &exit):
		res.Code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", cmd, err)
	}
	return res
}

// mustSucceed fails the test unless the command exited 0.
func (r result) mustSucceed(t testing.TB, what string) result {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("%s: exit status %d\nstdout: %s\nstderr: %s", what, r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// workDir makes a fresh directory under the world-readable e2e root, owned by u, removed when the
// test ends.
func workDir(t testing.TB, u testUser) string {
	t.Helper()
	dir, err := os.MkdirTemp(filepath.Join(bins.root, "work"), sanitize(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeFile writes a file owned by u.
func writeFile(t testing.TB, u testUser, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, name)
}

// lookupUser finds the unprivileged test account: $HPCCTL_TEST_USER, default hpcuser.
func lookupUser() (testUser, error) {
	name := os.Getenv("HPCCTL_TEST_USER")
	if name == "" {
		name = "hpcuser"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return testUser{}, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return testUser{}, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return testUser{}, err
	}
	if uid == 0 {
		return testUser{}, errors.New(name + " is root, not an unprivileged user")
	}
	return testUser{Name: name, UID: uid, GID: gid, Home: u.HomeDir}, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
