package build

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/hpcctl/hpcctl/internal/scratch"
)

// workPrefix names a recipe build's work directory in $TMPDIR.
const workPrefix = "hpcctl-build-"

// SweepAllArg, after StageArg, runs SweepWork and prints how many directories it removed:
// `hpcctl cache clean` runs hpcctl-image so (hpcctl itself does not link this package).
const SweepAllArg = "--sweep"

// sweepArg, after StageArg, makes the stage remove one directory instead of running a plan.
const sweepArg = "--remove"

// SweepWork removes the work directories of recipe builds that were killed (SIGKILL, the OOM
// killer, a time limit): their lock is free. A plain user's hold files that %post gave to other
// IDs (apt's _apt, a chown), which belong to the user's subordinate IDs on the host: only a
// process in a user namespace mapping those IDs can remove them, so those directories are
// removed from one, as the stage that made them would have. It returns how many it removed.
func SweepWork(log *slog.Logger) int {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var ns *fakeroot
	remove := func(dir string) error {
		if os.Getuid() == 0 {
			return errors.New("root could not remove it")
		}
		if ns == nil {
			var err error
			if ns, err = quietFakeroot(log); err != nil {
				return err
			}
		}
		return ns.remove(dir)
	}
	return scratch.SweepWith(os.TempDir(), workPrefix, log, remove)
}

// quietFakeroot is newFakeroot without its warning: without subordinate IDs no build could have
// left files it cannot remove, and a sweep has nothing to say about the next build's mapping.
func quietFakeroot(log *slog.Logger) (*fakeroot, error) {
	f, err := newFakerootTo(log, nil)
	if err != nil {
		return nil, err
	}
	if f.subu == nil {
		return nil, errors.New("no subordinate IDs in /etc/subuid and /etc/subgid to remove it with")
	}
	return f, nil
}

// remove deletes dir from a user namespace that maps the user to 0 and the subordinate ranges
// to the other IDs (the stage's, re-executed with sweepArg).
func (f *fakeroot) remove(dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer syncR.Close()
	defer syncW.Close()
	var stderr strings.Builder
	cmd := exec.Command(exe, StageArg, sweepArg, dir)
	cmd.Stderr = &stderr
	// Descriptor 3 is unused here (the stage's output); 4 is the sync pipe, as for a build.
	cmd.ExtraFiles = []*os.File{nil, syncR}
	cmd.Env = append(os.Environ(), stageWaitEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Cloneflags: syscall.CLONE_NEWUSER}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the remover: %w", err)
	}
	syncR.Close()
	if err := f.mapIDs(cmd.Process.Pid); err != nil {
		cmd.Process.Kill() //nolint:errcheck // it waits for the maps
		cmd.Wait()         //nolint:errcheck // the mapping error is the one to report
		return err
	}
	syncW.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("remove %s in the build's user namespace: %v: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// removeMain is the stage's remove mode: root in the namespace, it removes the directory.
func removeMain(dir string) int {
	if !strings.Contains(dir, workPrefix) {
		fmt.Fprintf(os.Stderr, "hpcctl-image: %s is not a build's work directory\n", dir)
		return 2
	}
	if err := scratch.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "hpcctl-image:", err)
		return 1
	}
	return 0
}
