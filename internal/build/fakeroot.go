package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hpcctl/hpcctl/internal/hostfacts"
	"github.com/hpcctl/hpcctl/internal/isolation"
	"github.com/hpcctl/hpcctl/internal/scratch"
)

// fakeroot is how the build stage gets root: real root needs no user namespace; a plain user
// gets one mapping them to 0 and their subordinate ranges to 1..N (through the setuid
// newuidmap/newgidmap, as Apptainer's --fakeroot), or, without ranges, only their own IDs.
type fakeroot struct {
	realRoot   bool
	uid, gid   int
	subu, subg *isolation.IDRange
	log        *slog.Logger
}

func newFakeroot(log *slog.Logger) (*fakeroot, error) { return newFakerootTo(log, os.Stderr) }

// newFakerootTo is newFakeroot writing its warning (no subordinate IDs) to warn, nil for none.
func newFakerootTo(log *slog.Logger, warn io.Writer) (*fakeroot, error) {
	f := &fakeroot{uid: os.Getuid(), gid: os.Getgid(), log: log}
	if f.uid == 0 {
		f.realRoot = true
		return f, nil
	}
	u, err := user.LookupId(strconv.Itoa(f.uid))
	name := ""
	if err == nil {
		name = u.Username
	}
	// The same ranges as a --fakeroot launch's (hostfacts reads them for both).
	f.subu = hostfacts.SubordinateRange(hostfacts.SubUIDFile, name, f.uid)
	f.subg = hostfacts.SubordinateRange(hostfacts.SubGIDFile, name, f.gid)
	if (f.subu == nil || f.subg == nil) && warn != nil {
		fmt.Fprintf(warn, "hpcctl: warning: no subordinate IDs for %s in /etc/subuid and /etc/subgid: the build maps only your own IDs to root, so %%post steps that change ownership (apt-get, chown) will fail; ask the site to add a range (e.g. %s:100000:65536)\n", name, name)
	}
	if f.subu == nil || f.subg == nil {
		f.subu, f.subg = nil, nil
		return f, nil
	}
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed: a recipe build as a plain user needs it to map /etc/subuid ranges (install the uidmap package)", tool)
		}
	}
	return f, nil
}

// runStage starts the build stage (hpcctl-image itself) in new mount and PID namespaces, and a
// user namespace unless real root, with out as its descriptor 3; it returns the stage's result
// or the failure it reported.
func (f *fakeroot) runStage(ctx context.Context, plan *runPlan, out *os.File, work *scratch.Dir) (*stageResult, error) {
	planPath := filepath.Join(plan.Work, "plan.json")
	b, err := json.Marshal(plan)
	if err != nil {
		return nil, fmt.Errorf("encode the build plan: %w", err)
	}
	if err = os.WriteFile(planPath, b, 0o644); err != nil {
		return nil, fmt.Errorf("write the build plan: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find hpcctl-image for the build stage: %w", err)
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer syncR.Close()
	defer syncW.Close()
	cmd := exec.Command(exe, StageArg, planPath)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	// A nil out leaves descriptor 3 closed (--sandbox writes no image). The scratch lock goes with it: a build stage outliving its parent keeps its directory.
	cmd.ExtraFiles = []*os.File{out, syncR, work.LockFile()}
	cmd.Env = os.Environ()
	// SIGTERM, not SIGKILL, on the parent's death: the stage ends its sections and removes its
	// files, which belong to subordinate IDs the parent could not remove.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM,
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID}
	if !f.realRoot {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.Env = append(cmd.Env, stageWaitEnv+"=1")
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the build stage: %w", err)
	}
	syncR.Close()
	if !f.realRoot {
		if err := f.mapIDs(cmd.Process.Pid); err != nil {
			cmd.Process.Kill() //nolint:errcheck // the stage may be gone already
			cmd.Wait()         //nolint:errcheck // the mapping error is the one to report
			return nil, err
		}
	}
	syncW.Close()
	stop := context.AfterFunc(ctx, func() { cmd.Process.Signal(syscall.SIGTERM) }) //nolint:errcheck // it may have ended
	werr := cmd.Wait()
	stop()
	return readStageResult(plan, werr, ctx)
}

func readStageResult(plan *runPlan, werr error, ctx context.Context) (*stageResult, error) {
	b, err := os.ReadFile(filepath.Join(plan.Work, "result.json"))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("build interrupted: %w", ctx.Err())
		}
		return nil, fmt.Errorf("the build stage ended without a result (%v)", werr)
	}
	var rep stageReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("read the build stage's result: %w", err)
	}
	switch {
	case rep.Section != nil:
		if rep.Error != "" {
			rep.Section.Err = errors.New(rep.Error)
		}
		return nil, rep.Section
	case rep.Error != "":
		return nil, errors.New(rep.Error)
	case rep.Result == nil || werr != nil:
		return nil, fmt.Errorf("the build stage failed: %v", werr)
	}
	return rep.Result, nil
}

// mapIDs writes the stage's ID maps: through newuidmap/newgidmap with subordinate ranges, or
// the user's own IDs alone (setgroups denied first, as the kernel requires of an unprivileged
// writer).
func (f *fakeroot) mapIDs(pid int) error {
	if f.subu == nil {
		proc := fmt.Sprintf("/proc/%d/", pid)
		for _, w := range []struct{ file, data string }{
			{"setgroups", "deny"}, {"uid_map", fmt.Sprintf("0 %d 1\n", f.uid)}, {"gid_map", fmt.Sprintf("0 %d 1\n", f.gid)},
		} {
			if err := os.WriteFile(proc+w.file, []byte(w.data), 0); err != nil {
				return fmt.Errorf("map the build's IDs: %w", err)
			}
		}
		return nil
	}
	for _, m := range []struct {
		tool string
		id   int
		r    *isolation.IDRange
	}{{"newuidmap", f.uid, f.subu}, {"newgidmap", f.gid, f.subg}} {
		args := []string{strconv.Itoa(pid), "0", strconv.Itoa(m.id), "1", "1", strconv.FormatUint(uint64(m.r.Start), 10), strconv.FormatUint(uint64(m.r.Count), 10)}
		if b, err := exec.Command(m.tool, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s (check /etc/subuid and /etc/subgid)", m.tool, strings.Join(args, " "), err, strings.TrimSpace(string(b)))
		}
	}
	return nil
}
