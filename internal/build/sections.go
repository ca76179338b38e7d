package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/deffile"
	"github.com/hpcctl/hpcctl/internal/mount"
)

// Paths %post writes through, as Apptainer names them ($APPTAINER_ENVIRONMENT, $APPTAINER_LABELS).
const (
	postEnvPath    = "/.singularity.d/env/91-environment.sh"
	postLabelsPath = "/.build.labels"
	postScriptPath = "/.post.script"
)

// runStage runs one stage in Apptainer's order: base environment, %setup, %files, %post, the
// metadata, %test. It returns the stage's labels.
func (r *runner) runStage(ctx context.Context, i int, st planStage, root stageRoot) (map[string]string, error) {
	if err := writeSDFiles(root.merged, baseSingularityD(), false); err != nil {
		return nil, err
	}
	if st.OCI {
		if err := writeSDFiles(root.merged, ociSingularityD(st.Env, st.Entrypoint, st.Cmd, st.Labels), true); err != nil {
			return nil, err
		}
	}
	for _, sec := range st.Stage.SectionsNamed("setup") {
		if err := r.runHostSection(ctx, sec, root); err != nil {
			return nil, err
		}
	}
	if err := r.copyFiles(ctx, st, root); err != nil {
		return nil, err
	}
	for _, sec := range st.Stage.SectionsNamed("post") {
		if err := r.runPost(ctx, sec, root); err != nil {
			return nil, err
		}
	}
	labels, err := r.insertMetadata(st, root)
	if err != nil {
		return nil, err
	}
	if r.plan.NoTest || i != len(r.plan.Stages)-1 {
		return labels, nil
	}
	for _, sec := range st.Stage.SectionsNamed("test") {
		if err := r.runTest(ctx, sec, root); err != nil {
			return nil, err
		}
	}
	return labels, nil
}

// writeSDFiles writes files into the tree at root; existing ones are kept unless overwrite.
func writeSDFiles(root string, files []sdFile, overwrite bool) error {
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		_, err := os.Lstat(p)
		exists := err == nil
		switch {
		case f.Dir:
			err = ensureDir(p)
		case exists && !overwrite:
			err = nil
		case f.Link != "":
			os.Remove(p)
			err = os.Symlink(f.Link, p)
		default:
			os.Remove(p)
			err = os.WriteFile(p, []byte(f.Data), os.FileMode(f.Mode))
		}
		if err != nil {
			return fmt.Errorf("write /%s into the image: %w", f.Path, err)
		}
	}
	return nil
}

// scriptArgs is how Apptainer runs a section's script (getSectionScriptArgs): /bin/sh -ex
// SCRIPT, the section's own arguments before it, and "-c CMD..." running "CMD... SCRIPT".
func scriptArgs(sec deffile.Section, script string) ([]string, error) {
	params := trimComment(sec.Args)
	for i, p := range params {
		if p == "-c" {
			if i == len(params)-1 {
				return nil, fmt.Errorf("%%%s -c needs a command (e.g. %%%s -c /bin/bash)", sec.Name, sec.Name)
			}
			return append(append([]string{"/bin/sh", "-ex"}, params[:i+1]...), strings.Join(params[i+1:], " ")+" "+script), nil
		}
	}
	return append(append([]string{"/bin/sh", "-ex"}, params...), script), nil
}

// sectionEnv is the clean environment sections start from (Apptainer's --cleanenv): the image's
// own environment comes from its /.singularity.d/env scripts; proxies pass, for package managers.
func sectionEnv(extra ...string) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C"}
	for _, k := range []string{"TERM", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}

// runPost runs %post as root inside the stage's tree, with the host network, after the image's
// environment scripts (through Apptainer's exec action, as `apptainer exec` does).
func (r *runner) runPost(ctx context.Context, sec deffile.Section, root stageRoot) error {
	if strings.TrimSpace(sec.Body) == "" {
		return nil
	}
	script := filepath.Join(root.merged, postScriptPath)
	if err := os.WriteFile(script, []byte(sec.Body), 0o755); err != nil {
		return fmt.Errorf("write the %%post script: %w", err)
	}
	defer os.Remove(script)
	args, err := scriptArgs(sec, postScriptPath)
	if err != nil {
		return r.sectionError(sec, err)
	}
	env := sectionEnv("APPTAINER_ENVIRONMENT="+postEnvPath, "SINGULARITY_ENVIRONMENT="+postEnvPath,
		"APPTAINER_LABELS="+postLabelsPath, "SINGULARITY_LABELS="+postLabelsPath,
		"APPTAINER_ROOTFS=/", "SINGULARITY_ROOTFS=/")
	return r.runIn(ctx, sec, root.run, append([]string{"/.singularity.d/actions/exec"}, args...), env)
}

// runTest runs %test on the finished tree, read-only, through Apptainer's test action.
func (r *runner) runTest(ctx context.Context, sec deffile.Section, root stageRoot) error {
	if strings.TrimSpace(sec.Body) == "" {
		return nil
	}
	fd, err := unix.Open(root.run, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", root.run, err)
	}
	err = mount.RemountReadOnly(fd)
	unix.Close(fd)
	if err != nil {
		return err
	}
	os.Stderr.WriteString("hpcctl: running %test\n")
	return r.runIn(ctx, sec, root.run, []string{"/.singularity.d/actions/test"}, sectionEnv())
}

// runHostSection runs %setup on the host side (not chrooted), as root of the build's user
// namespace, with $APPTAINER_ROOTFS naming the stage's tree.
func (r *runner) runHostSection(ctx context.Context, sec deffile.Section, root stageRoot) error {
	if strings.TrimSpace(sec.Body) == "" {
		return nil
	}
	script := filepath.Join(root.dir, sec.Name+".script")
	if err := os.WriteFile(script, []byte(sec.Body), 0o755); err != nil {
		return fmt.Errorf("write the %%%s script: %w", sec.Name, err)
	}
	defer os.Remove(script)
	args, err := scriptArgs(sec, script)
	if err != nil {
		return r.sectionError(sec, err)
	}
	env := append(os.Environ(), "APPTAINER_ROOTFS="+root.merged, "SINGULARITY_ROOTFS="+root.merged,
		"APPTAINER_ENVIRONMENT="+postEnvPath, "SINGULARITY_ENVIRONMENT="+postEnvPath)
	return r.runIn(ctx, sec, "", args, env)
}

// runIn runs a section's command, chrooted into root unless root is "", in its own process
// group, streaming its output; a cancelled build kills the group.
func (r *runner) runIn(ctx context.Context, sec deffile.Section, root string, args, env []string) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if root != "" {
		cmd.SysProcAttr.Chroot = root
		cmd.Dir = "/"
	} else {
		cmd.Dir = r.plan.Cwd
	}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%%%s: build interrupted", sec.Name)
		}
		return r.sectionError(sec, err)
	}
	return nil
}

func (r *runner) sectionError(sec deffile.Section, err error) error {
	return &SectionError{File: r.plan.DefName, Section: sec.Name, Line: sec.Line, Status: exitStatus(err), Err: err}
}

// copyFiles runs the stage's %files sections: host paths (globs, relative to the build's
// directory) or, with "from STAGE", paths of an earlier stage, copied as Apptainer does
// (cp -fLr: links followed, files owned by root inside the image).
func (r *runner) copyFiles(ctx context.Context, st planStage, root stageRoot) error {
	for _, sec := range st.Stage.SectionsNamed("files") {
		entries, from, err := sec.Files(r.plan.DefName)
		if err != nil {
			return err
		}
		srcRoot := ""
		if from != "" {
			i := r.stageIndex(from)
			if i < 0 || i >= len(r.roots)-1 {
				return &deffile.Error{Name: r.plan.DefName, Line: sec.Line, Msg: fmt.Sprintf("%%files from %q: no earlier stage has that name", from)}
			}
			srcRoot = r.roots[i].merged
		}
		for _, e := range entries {
			if err := r.copyEntry(ctx, sec, e, srcRoot, root.merged); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) stageIndex(name string) int {
	for i, st := range r.plan.Stages {
		if st.Name == name || fmt.Sprint(i+1) == name {
			return i
		}
	}
	return -1
}

func (r *runner) copyEntry(ctx context.Context, sec deffile.Section, e deffile.FileEntry, srcRoot, dstRoot string) error {
	pattern := e.Source
	switch {
	case srcRoot != "":
		pattern = filepath.Join(srcRoot, filepath.Clean("/"+e.Source))
	case !filepath.IsAbs(pattern):
		pattern = filepath.Join(r.plan.Cwd, pattern)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil || len(matches) == 0 {
		return &deffile.Error{Name: r.plan.DefName, Line: e.Line, Msg: fmt.Sprintf("%%files: %s matches nothing: check the path (relative paths are from the directory hpcctl build runs in)", e.Source)}
	}
	dst := e.Destination
	if dst == "" {
		dst = e.Source
	}
	target := filepath.Join(dstRoot, filepath.Clean("/"+dst))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("%%files: %s: %w", dst, err)
	}
	if len(matches) > 1 || strings.HasSuffix(dst, "/") {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("%%files: %s: %w", dst, err)
		}
	}
	args := append(append([]string{"-fLr"}, matches...), target)
	cmd := exec.CommandContext(ctx, "cp", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return &deffile.Error{Name: r.plan.DefName, Line: e.Line, Msg: fmt.Sprintf("%%files: copy %s to %s: %v", e.Source, dst, err)}
	}
	return nil
}

// insertMetadata writes what Apptainer's insertMetadata does: runscript.help, labels.json, the
// definition file, %environment, startscript, runscript and test.
func (r *runner) insertMetadata(st planStage, root stageRoot) (map[string]string, error) {
	sd := func(p string) string { return filepath.Join(root.merged, ".singularity.d", p) }
	var files []sdFile
	help := joinBodies(st.Stage.SectionsNamed("help"))
	if help != "" {
		files = append(files, sdFile{Path: ".singularity.d/runscript.help", Mode: 0o644, Data: help + "\n"})
	}
	labels, err := r.stageLabels(st, root, help != "")
	if err != nil {
		return nil, err
	}
	files = append(files, sdFile{Path: ".singularity.d/labels.json", Mode: 0o644, Data: labelsJSON(labels)},
		sdFile{Path: ".singularity.d/Singularity", Mode: 0o644, Data: string(r.plan.Deffile)})
	if env := joinBodies(st.Stage.SectionsNamed("environment")); env != "" {
		old, err := os.ReadFile(sd("env/90-environment.sh"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read /.singularity.d/env/90-environment.sh: %w", err)
		}
		data := "#!/bin/sh\n\n" + env + "\n"
		if len(old) > 0 {
			data = string(old) + "\n" + env + "\n"
		}
		files = append(files, sdFile{Path: ".singularity.d/env/90-environment.sh", Mode: 0o755, Data: data})
	}
	for _, s := range []struct{ section, path string }{{"startscript", "startscript"}, {"runscript", "runscript"}, {"test", "test"}} {
		secs := st.Stage.SectionsNamed(s.section)
		if body := joinBodies(secs); body != "" {
			files = append(files, sdFile{Path: ".singularity.d/" + s.path, Mode: 0o755, Data: recipeScript(body, secs[len(secs)-1].Args)})
		}
	}
	return labels, writeSDFiles(root.merged, files, true)
}

// stageLabels merges, as Apptainer does: the base's labels.json, what %post appended to
// $APPTAINER_LABELS, the build's own labels, then %labels.
func (r *runner) stageLabels(st planStage, root stageRoot, hasHelp bool) (map[string]string, error) {
	labels := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(root.merged, ".singularity.d/labels.json")); err == nil {
		if err := json.Unmarshal(b, &labels); err != nil {
			labels = map[string]string{}
		}
	}
	built := filepath.Join(root.merged, postLabelsPath)
	if b, err := os.ReadFile(built); err == nil {
		maps.Copy(labels, parseLabels(string(b)))
		os.Remove(built)
	}
	maps.Copy(labels, buildLabels(time.Unix(r.plan.Created, 0), r.plan.Arch, st.Stage.Header, hasHelp, r.plan.Version))
	maps.Copy(labels, parseLabels(joinBodies(st.Stage.SectionsNamed("labels"))))
	return labels, nil
}

// joinBodies is the text of sections that occur more than once, which Apptainer appends.
func joinBodies(secs []deffile.Section) string {
	var parts []string
	for _, s := range secs {
		if b := strings.TrimRight(s.Body, "\n"); strings.TrimSpace(b) != "" {
			parts = append(parts, b)
		}
	}
	return strings.Join(parts, "\n")
}

// copySandbox copies the finished tree to a sandbox directory, ownership and modes kept.
func copySandbox(ctx context.Context, from, to string) error {
	cmd := exec.CommandContext(ctx, "cp", "-a", "--", from+"/.", to)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("write sandbox %s: %w", to, err)
	}
	return nil
}
