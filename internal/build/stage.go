package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/mount"
	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// StageArg routes hpcctl-image to the build stage: the process that runs a recipe's sections
// inside the fakeroot namespaces (a user namespace mapping the user to root and their
// subordinate IDs to the rest, a mount namespace, a PID namespace). It is internal/build's own
// child, so that build never imports the launcher; its mounts go through internal/mount.
const StageArg = "__build-stage"

// stageWaitEnv tells the stage's first incarnation to wait for its ID maps, then re-execute
// itself: capabilities in a new user namespace are computed at execve, and the first execve
// happened before the parent could write the maps (newuidmap needs the child's PID).
const stageWaitEnv = "HPCCTL_BUILD_STAGE_WAIT"

// Descriptors the parent passes to the stage.
const (
	stageOutFD  = 3 // the output file, positioned at the partition's offset (absent for --sandbox)
	stageSyncFD = 4 // closed by the parent once the ID maps are written
)

// StageMain is the build stage's main: os.Args[2] is the plan's path. It writes the final
// stage's squashfs to descriptor 3 and its result (or failure) beside the plan.
func StageMain() int {
	if os.Getenv(stageWaitEnv) != "" {
		return waitAndReexec()
	}
	if len(os.Args) == 3 && os.Args[2] == SweepAllArg {
		fmt.Println(SweepWork(nil))
		return 0
	}
	if len(os.Args) == 4 && os.Args[2] == sweepArg {
		return removeMain(os.Args[3])
	}
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "hpcctl-image: the build stage is started by hpcctl build, not by hand")
		return 2
	}
	// The re-execution that gave the stage its capabilities cleared the parent-death signal
	// (the kernel clears it when an execve raises the permitted set): set it again.
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0) //nolint:errcheck // cannot fail for a valid signal
	plan, err := readPlan(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "hpcctl-image build stage:", err)
		return 2
	}
	// The parent's death (Pdeathsig), Ctrl-C and kill end the sections, then the stage cleans up.
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer stop()
	r := &runner{plan: plan, log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	res, err := r.run(ctx)
	return writeStageResult(plan, res, err)
}

func waitAndReexec() int {
	sync := os.NewFile(stageSyncFD, "sync")
	if _, err := sync.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "hpcctl-image build stage: wait for the ID maps:", err)
		return 2
	}
	sync.Close()
	os.Unsetenv(stageWaitEnv)
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	err = unix.Exec(exe, os.Args, os.Environ())
	fmt.Fprintln(os.Stderr, "hpcctl-image build stage: re-execute:", err)
	return 2
}

func readPlan(path string) (*runPlan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the build plan: %w", err)
	}
	var p runPlan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("read the build plan %s: %w", path, err)
	}
	return &p, nil
}

// stageReport is the result file: the result, or the failure as the parent re-creates it.
type stageReport struct {
	Result  *stageResult  `json:",omitempty"`
	Section *SectionError `json:",omitempty"`
	Error   string        `json:",omitempty"`
}

func writeStageResult(plan *runPlan, res *stageResult, err error) int {
	rep := stageReport{Result: res}
	var se *SectionError
	switch {
	case errors.As(err, &se):
		rep.Section = se
		if se.Err != nil && se.Status == 0 {
			rep.Error = se.Err.Error()
		}
	case err != nil:
		rep.Error = err.Error()
	}
	b, _ := json.Marshal(rep) // plain data: cannot fail
	if werr := os.WriteFile(filepath.Join(plan.Work, "result.json"), b, 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "hpcctl-image build stage: write the result:", werr)
		return 2
	}
	if err != nil {
		return 1
	}
	return 0
}

// runner runs the plan's stages inside the namespaces.
type runner struct {
	plan   *runPlan
	log    *slog.Logger
	roots  []stageRoot
	fuses  []*mount.Squashfuse
	failed bool
}

// stageRoot is one stage's file system: merged is the overlay (what the image gets), run a bind
// of it with /proc, /dev, /sys and the host's resolv.conf and hosts mounted for its sections.
type stageRoot struct {
	dir, merged, run string
}

func (r *runner) run(ctx context.Context) (res *stageResult, err error) {
	defer func() {
		if err != nil {
			r.failed = true
		}
		r.cleanup()
	}()
	// Mounts made here must not reach the host's namespace, nor the host's mounts appear in the
	// stage roots once they are bound (MS_PRIVATE, recursively).
	if err = mount.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, err
	}
	var labels map[string]string
	for i, st := range r.plan.Stages {
		root, perr := r.prepareStage(i, st)
		if perr != nil {
			return nil, perr
		}
		r.roots = append(r.roots, root)
		if labels, err = r.runStage(ctx, i, st, root); err != nil {
			return nil, err
		}
	}
	last := r.roots[len(r.roots)-1]
	if r.plan.Sandbox != "" {
		if err = copySandbox(ctx, last.merged, r.plan.Sandbox); err != nil {
			// What was copied belongs to IDs only this namespace can remove.
			if ents, rerr := os.ReadDir(r.plan.Sandbox); rerr == nil {
				for _, e := range ents {
					os.RemoveAll(filepath.Join(r.plan.Sandbox, e.Name()))
				}
			}
			return nil, err
		}
		return &stageResult{Labels: labels}, nil
	}
	stats, err := r.pack(ctx, last.merged)
	if err != nil {
		return nil, err
	}
	return &stageResult{Stats: stats, Labels: labels}, nil
}

// cleanup ends the squashfuse servers and removes the stages' directories, whose upper layers
// hold files owned by subordinate IDs that only this namespace can remove; --keep-failed keeps
// them after a failure.
func (r *runner) cleanup() {
	for i := len(r.roots) - 1; i >= 0; i-- {
		mount.Detach(r.roots[i].run)                         //nolint:errcheck // best effort: the namespace ends next
		mount.Detach(r.roots[i].merged)                      //nolint:errcheck // as above
		mount.Detach(filepath.Join(r.roots[i].dir, "lower")) //nolint:errcheck // as above
	}
	for _, f := range r.fuses {
		f.Stop(0) //nolint:errcheck // the mount is gone; its server's status says nothing more
	}
	if r.failed && r.plan.KeepFailed {
		return
	}
	for i := range r.plan.Stages {
		os.RemoveAll(filepath.Join(r.plan.Work, fmt.Sprintf("stage%d", i)))
	}
}

// prepareStage mounts the stage's base (read-only), the overlay whose upper directory takes the
// stage's writes, and the run tree.
func (r *runner) prepareStage(i int, st planStage) (stageRoot, error) {
	dir := filepath.Join(r.plan.Work, fmt.Sprintf("stage%d", i))
	root := stageRoot{dir: dir, merged: filepath.Join(dir, "merged"), run: filepath.Join(dir, "run")}
	for _, d := range []string{"lower", "upper", "work", "merged", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return root, fmt.Errorf("stage %s: %w", st.Name, err)
		}
	}
	lower := filepath.Join(dir, "lower")
	switch {
	case st.BaseIsSqfs:
		if err := r.mountSquashfs(st, lower); err != nil {
			return root, fmt.Errorf("stage %s: mount the base image: %w", st.Name, err)
		}
	case st.Base != "":
		lower = st.Base
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if !r.plan.RealRoot {
		// In a user namespace overlayfs keeps its own metadata in user.* xattrs (Linux 5.11).
		data += ",userxattr"
	}
	if err := mount.Mount("overlay", root.merged, "overlay", 0, data); err != nil {
		return root, fmt.Errorf("stage %s: writable layer: %w", st.Name, err)
	}
	return root, r.mountRunTree(root)
}

func (r *runner) mountSquashfs(st planStage, target string) error {
	f, err := os.Open(st.Base)
	if err != nil {
		return err
	}
	defer f.Close()
	if r.plan.RealRoot {
		size := st.BaseSize
		if size == 0 {
			fi, serr := f.Stat()
			if serr != nil {
				return serr
			}
			size = fi.Size() - st.BaseOffset
		}
		dev, path, lerr := mount.AttachLoop(f, st.BaseOffset, size)
		if lerr != nil {
			return lerr
		}
		defer dev.Close()
		return mount.Mount(path, target, "squashfs", unix.MS_RDONLY|unix.MS_NODEV, "")
	}
	conn, err := mount.MountFUSE(target, "squashfuse", 0, 0)
	if err != nil {
		return err
	}
	defer conn.Close()
	srv, err := mount.StartSquashfuse(r.plan.Squashfuse, f, st.BaseOffset, conn, r.log)
	if err != nil {
		return err
	}
	r.fuses = append(r.fuses, srv)
	return nil
}

// mountRunTree binds merged to run, and the host's /dev, /sys, a new /proc (the stage's PID
// namespace) and the host's resolv.conf and hosts under it, as Apptainer's build gives %post.
// They are mounted on run, never on merged, so none of them ends up in the image.
func (r *runner) mountRunTree(root stageRoot) error {
	if err := mount.Mount(root.merged, root.run, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	for _, d := range []string{"dev", "proc", "sys", "etc"} {
		if err := ensureDir(filepath.Join(root.merged, d)); err != nil {
			return err
		}
	}
	if err := mount.Mount("/dev", filepath.Join(root.run, "dev"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := mount.Mount("/sys", filepath.Join(root.run, "sys"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := mount.Mount("proc", filepath.Join(root.run, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
		target := filepath.Join(root.merged, f)
		if fi, err := os.Lstat(target); err == nil && !fi.Mode().IsRegular() {
			continue // a link the image manages itself (systemd-resolved's): leave it
		} else if err != nil {
			if werr := os.WriteFile(target, nil, 0o644); werr != nil {
				return fmt.Errorf("make %s in the image: %w", f, werr)
			}
		}
		if _, err := os.Stat(f); err != nil {
			continue
		}
		if err := mount.Mount(f, filepath.Join(root.run, f), "", unix.MS_BIND, ""); err != nil {
			return err
		}
	}
	return nil
}

// ensureDir makes p a directory unless something is already there (a symlinked /etc is the
// image's business).
func ensureDir(p string) error {
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("make %s: %w", p, err)
	}
	return nil
}

// pack writes the final stage's tree as the image's squashfs to the output descriptor, with
// every time clamped to the image time and the mount points the launcher needs.
func (r *runner) pack(ctx context.Context, merged string) (squashfs.Stats, error) {
	out := os.NewFile(stageOutFD, "output")
	defer out.Close()
	w, err := squashfs.NewWriter(out, squashfs.Options{
		Compression: r.plan.Compression, Level: r.plan.Level, BlockSize: r.plan.BlockSize, ModTime: r.plan.Created,
	})
	if err != nil {
		return squashfs.Stats{}, fmt.Errorf("squashfs: %w", err)
	}
	sink := newMountPointSink(clampTimes{w: w, max: r.plan.Created}, nil, r.plan.Created)
	err = squashfs.WriteTree(ctx, sink, merged)
	if err == nil {
		err = sink.addMissing()
	}
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("squashfs: %w", cerr)
	}
	return w.Stats(), err
}

// clampTimes caps every entry's time at the image time (SOURCE_DATE_EPOCH's "clamp"): files a
// recipe's %post writes carry the time of the build, which would make every build differ.
type clampTimes struct {
	w   adder
	max int64
}

func (c clampTimes) Add(e squashfs.Entry) error {
	if e.ModTime > c.max {
		e.ModTime = c.max
	}
	return c.w.Add(e)
}

// exitStatus is a finished command's exit status, or 128+signal as a shell reports it.
func exitStatus(err error) int {
	var ee interface{ Sys() any }
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
	}
	return 0
}

// trimComment drops a trailing # comment from a section's arguments.
func trimComment(args []string) []string { return strings.Fields(sectionArgs(args)) }
