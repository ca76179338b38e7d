package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hpcctl/hpcctl/internal/deffile"
	"github.com/hpcctl/hpcctl/internal/oci"
	"github.com/hpcctl/hpcctl/internal/scratch"
	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// agents are the bootstrap agents hpcctl builds from, and the transport each maps to.
var agents = map[string]string{
	"docker": "docker://", "oci": "oci:", "oci-archive": "oci-archive:", "docker-archive": "docker-archive:",
	"localimage": "", "scratch": "",
}

// supportedSections are the stage sections hpcctl runs; %arguments is consumed by Expand.
var supportedSections = []string{"arguments", "setup", "files", "post", "environment", "runscript",
	"startscript", "test", "labels", "help"}

// IsRecipe reports whether the file at path is a definition file: it parses as one far enough
// to have a Bootstrap header. Build takes such a SOURCE as a recipe.
func IsRecipe(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() || st.Size() > deffile.MaxSize {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, _, ok := strings.Cut(l, ":")
		return ok && strings.EqualFold(strings.TrimSpace(k), "bootstrap")
	}
	return false
}

// LoadRecipe reads, expands and checks a definition file: everything that can be wrong with the
// recipe itself is reported before anything is fetched or run.
func LoadRecipe(path string, args map[string]string) (raw []byte, def *deffile.Definition, unused []string, err error) {
	raw, err = os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read definition file: %w", err)
	}
	name := filepath.Base(path)
	expanded, unused, err := deffile.Expand(name, raw, args)
	if err != nil {
		return nil, nil, nil, err
	}
	if def, err = deffile.Parse(name, expanded); err != nil {
		return nil, nil, nil, err
	}
	return raw, def, unused, checkRecipe(name, def)
}

func checkRecipe(name string, def *deffile.Definition) error {
	var seen []string
	for _, st := range def.Stages {
		agent := strings.ToLower(st.Header["bootstrap"])
		if _, ok := agents[agent]; !ok {
			return &deffile.Error{Name: name, Line: st.Line, Msg: fmt.Sprintf("unknown bootstrap agent %q: hpcctl builds from docker, oci, oci-archive, docker-archive, localimage and scratch", st.Header["bootstrap"])}
		}
		if agent != "scratch" && st.Header["from"] == "" {
			return &deffile.Error{Name: name, Line: st.Line, Msg: fmt.Sprintf("Bootstrap: %s needs a From: line naming the base image", agent)}
		}
		if apps := st.Apps(); len(apps) > 0 {
			sec := firstAppSection(st)
			return &deffile.Error{Name: name, Line: sec.Line, Msg: fmt.Sprintf("%%%s %s: per-app sections (SCIF apps) are not supported by hpcctl; move the app's steps into %%post, %%environment and %%runscript", sec.Name, apps[0])}
		}
		for _, sec := range st.Sections {
			if !slices.Contains(supportedSections, sec.Name) {
				return &deffile.Error{Name: name, Line: sec.Line, Msg: fmt.Sprintf("section %%%s is not supported (Apptainer dropped it too): use %%setup or %%post", sec.Name)}
			}
			if sec.Name != "files" {
				continue
			}
			if _, from, err := sec.Files(name); err != nil {
				return err
			} else if from != "" && !slices.Contains(seen, from) {
				return &deffile.Error{Name: name, Line: sec.Line, Msg: fmt.Sprintf("%%files from %s: no earlier stage is named %s (name one with Stage: %s)", from, from, from)}
			}
		}
		seen = append(seen, st.Header["stage"])
	}
	return nil
}

func firstAppSection(st deffile.Stage) deffile.Section {
	for _, sec := range st.Sections {
		if strings.HasPrefix(sec.Name, "app") {
			return sec
		}
	}
	return deffile.Section{}
}

// buildRecipe builds a definition file: each stage's base is fetched and made a read-only
// squashfs in a scratch directory, then one build stage process, in the fakeroot namespaces,
// runs every stage over an overlay and writes the last one's tree into the output.
func buildRecipe(ctx context.Context, opts Options) (res *Result, err error) {
	raw, def, unused, err := LoadRecipe(opts.Source, opts.BuildArgs)
	if err != nil {
		return nil, err
	}
	for _, u := range unused {
		fmt.Fprintf(os.Stderr, "hpcctl: warning: --build-arg %s is not used by %s\n", u, filepath.Base(opts.Source))
	}
	return runRecipe(ctx, opts, raw, def)
}

// runRecipe builds a checked recipe into opts.Output (or opts.Sandbox).
func runRecipe(ctx context.Context, opts Options, raw []byte, def *deffile.Definition) (res *Result, err error) {
	ns, err := newFakeroot(opts.Logger)
	if err != nil {
		return nil, err
	}
	var out *pendingFile
	if opts.Sandbox == "" {
		if out, err = createPending(opts.Output, opts.Force); err != nil {
			return nil, err
		}
		defer out.discard()
	} else if err = checkSandboxTarget(opts.Sandbox, opts.Force); err != nil {
		return nil, err
	}
	// What killed builds left goes first, also what only their namespace could remove.
	SweepWork(opts.Logger)
	work, err := scratch.Make(os.TempDir(), workPrefix, opts.Logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && opts.KeepFailed {
			fmt.Fprintf(os.Stderr, "hpcctl: the failed build's work directory is kept in %s\n", work.Path)
			return
		}
		work.Remove() //nolint:errcheck // best effort: a later build sweeps what is left
	}()
	plan, digest, created, err := makePlan(ctx, opts, raw, def, work.Path, ns.realRoot)
	if err != nil {
		return nil, err
	}
	if opts.Sandbox != "" {
		return buildSandbox(ctx, opts, plan, ns, work)
	}
	off, err := sif.PartitionOffset()
	if err != nil {
		return nil, err
	}
	if _, err = out.Seek(off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("output %s: %w", opts.Output, err)
	}
	result, err := ns.runStage(ctx, plan, out.File, work)
	if err != nil {
		return nil, err
	}
	end, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", opts.Output, err)
	}
	labels := mergeLabels(result.Labels, opts.Labels)
	md := sif.Metadata{Arch: opts.Arch, Created: created, Labels: labels, Deffile: raw,
		Provenance: newProvenance(opts, digest)}
	if err = sif.WriteAround(out.File, end-off, md); err != nil {
		return nil, err
	}
	if opts.Sign != nil {
		if err = opts.Sign(ctx, out.File, created); err != nil {
			return nil, fmt.Errorf("sign %s: %w", opts.Output, err)
		}
	}
	st, err := out.Stat()
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", opts.Output, err)
	}
	if err = out.commit(); err != nil {
		return nil, err
	}
	return &Result{Output: opts.Output, SourceDigest: digest, Squashfs: result.Stats, Size: st.Size()}, nil
}

// makePlan fetches every stage's base and describes the run. digest and created are the last
// stage's base's (what the image records).
func makePlan(ctx context.Context, opts Options, raw []byte, def *deffile.Definition, work string, realRoot bool) (*runPlan, string, time.Time, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("working directory: %w", err)
	}
	plan := &runPlan{Work: work, DefName: filepath.Base(opts.Source), Deffile: raw,
		Compression: opts.Compression, Level: opts.Level, BlockSize: opts.BlockSize, Arch: opts.Arch,
		Version: opts.Version, NoTest: opts.NoTest, RealRoot: realRoot, Sandbox: opts.Sandbox,
		KeepFailed: opts.KeepFailed, Cwd: cwd}
	var digest string
	var baseCreated *time.Time
	for i, st := range def.Stages {
		ps, d, c, perr := prepareBase(ctx, opts, st, i, work)
		if perr != nil {
			return nil, "", time.Time{}, perr
		}
		plan.Stages = append(plan.Stages, ps)
		digest, baseCreated = d, c
	}
	created := opts.imageTime(baseCreated)
	plan.Created = created.Unix()
	if !realRoot {
		if plan.Squashfuse, err = exec.LookPath("squashfuse_ll"); err != nil {
			return nil, "", time.Time{}, errors.New("a recipe build as a plain user mounts its base image with squashfuse_ll, which is not installed: install squashfuse")
		}
	}
	return plan, digest, created, nil
}

// prepareBase makes a stage's base available to the build stage: an OCI image as a squashfs
// written from its layers (the stream builds use; nothing is unpacked), a SIF's or squashfs
// file's partition where it is, a sandbox directory as it is, or nothing for scratch.
func prepareBase(ctx context.Context, opts Options, st deffile.Stage, i int, work string) (planStage, string, *time.Time, error) {
	agent := strings.ToLower(st.Header["bootstrap"])
	from := st.Header["from"]
	ps := planStage{Name: st.Header["stage"], Stage: st}
	switch agent {
	case "scratch":
		return ps, "", nil, nil
	case "localimage":
		return prepareLocal(ps, from)
	}
	ref := agents[agent] + from
	if agent != "docker" {
		if err := checkLocalPath(agents[agent], from); err != nil {
			return ps, "", nil, fmt.Errorf("stage %d (line %d): %w", i+1, st.Line, err)
		}
	}
	img, err := oci.Pull(ctx, ref, oci.SourceOptions{
		Arch: opts.Arch, OS: opts.OS, Variant: opts.Variant, Insecure: opts.Insecure,
		AuthFile: opts.AuthFile, CacheDir: opts.CacheDir, Logger: opts.Logger, Progress: opts.Progress,
	})
	if err != nil {
		return ps, "", nil, fmt.Errorf("stage %d (line %d): %w", i+1, st.Line, err)
	}
	base := filepath.Join(work, fmt.Sprintf("base%d.sqfs", i))
	if err := writeBase(ctx, base, &ociSource{img: img, logger: opts.Logger}, opts); err != nil {
		return ps, "", nil, fmt.Errorf("stage %d: base image %s: %w", i+1, ref, err)
	}
	c := img.Config.Config
	ps.Base, ps.BaseIsSqfs, ps.OCI = base, true, true
	ps.Env, ps.Entrypoint, ps.Cmd, ps.Labels = c.Env, c.Entrypoint, c.Cmd, c.Labels
	return ps, img.Digest.String(), img.Config.Created, nil
}

// writeBase writes an OCI base as a squashfs for the build stage to mount: zstd's fastest
// level, since it is read once and thrown away.
func writeBase(ctx context.Context, path string, src source, opts Options) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := squashfs.NewWriter(f, squashfs.Options{Compression: squashfs.Zstd, Level: 1, BlockSize: squashfs.DefaultBlockSize})
	if err != nil {
		return err
	}
	err = src.write(ctx, w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// prepareLocal takes a localimage base: a sandbox directory, an hpcctl or Apptainer SIF, or a
// bare squashfs file.
func prepareLocal(ps planStage, from string) (planStage, string, *time.Time, error) {
	st, err := os.Stat(from)
	if err != nil {
		return ps, "", nil, fmt.Errorf("localimage base %s: %w (give a SIF, squashfs or sandbox directory)", from, err)
	}
	abs, err := filepath.Abs(from)
	if err != nil {
		return ps, "", nil, err
	}
	if strings.ContainsAny(abs, ",:") {
		return ps, "", nil, fmt.Errorf("localimage base %s: overlayfs cannot take a path with ',' or ':'; move or link it elsewhere", from)
	}
	if st.IsDir() {
		ps.Base = abs
		return ps, "", nil, nil
	}
	ps.Base, ps.BaseIsSqfs = abs, true
	img, err := sif.Open(abs)
	if err != nil {
		// Not a SIF: a bare squashfs image, mounted from its start.
		return ps, "", nil, nil //nolint:nilerr // a bare squashfs is not an error
	}
	ps.BaseOffset, ps.BaseSize = img.Offset, img.Size
	if c := img.Config; c != nil {
		ps.OCI = true
		ps.Env, ps.Entrypoint, ps.Cmd, ps.Labels = c.Env, c.Entrypoint, c.Cmd, c.Labels
	}
	return ps, "", nil, nil
}

// checkSandboxTarget refuses to write into an existing non-empty directory unless forced.
func checkSandboxTarget(dir string, force bool) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("sandbox %s: %w", dir, err)
	case len(ents) > 0 && !force:
		return fmt.Errorf("sandbox %s exists and is not empty: use --force to replace it", dir)
	case len(ents) > 0:
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("sandbox %s: replace: %w", dir, err)
		}
	}
	return nil
}
