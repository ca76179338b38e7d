package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hpcctl/hpcctl/internal/deffile"
	"github.com/hpcctl/hpcctl/internal/scratch"
)

// buildSandbox runs the plan with a directory as output: the build stage copies the final tree
// (ownership kept, so root's files stay root's inside the namespace) into a hidden directory
// beside the target, which is renamed into place only when complete.
func buildSandbox(ctx context.Context, opts Options, plan *runPlan, ns *fakeroot, work *scratch.Dir) (*Result, error) {
	target := filepath.Clean(opts.Sandbox)
	tmp, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w (check the directory above it exists and is writable)", target, err)
	}
	plan.Sandbox = tmp
	if _, err = ns.runStage(ctx, plan, nil, work); err != nil {
		// The stage removed what it copied (files of subordinate IDs); the directory is ours.
		os.Remove(tmp)
		return nil, err
	}
	if err = os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sandbox %s: %w (remove it first)", target, err)
	}
	if err = os.Rename(tmp, target); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", target, err)
	}
	if err = os.Chmod(target, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", target, err)
	}
	return &Result{Output: target}, nil
}

// buildSandboxFrom writes an image source (OCI reference, SIF, directory) as a sandbox: the
// recipe machinery with a one-stage recipe that has no sections, so the sandbox gets the same
// /.singularity.d metadata an image would.
func buildSandboxFrom(ctx context.Context, opts Options) (*Result, error) {
	agent, from := "localimage", opts.Source
	for a, t := range agents {
		if rest, ok := strings.CutPrefix(opts.Source, t); ok && t != "" {
			agent, from = a, rest
		}
	}
	def := &deffile.Definition{Stages: []deffile.Stage{{Header: map[string]string{"bootstrap": agent, "from": from}, Line: 1}}}
	raw := []byte(fmt.Sprintf("Bootstrap: %s\nFrom: %s\n", agent, from))
	return runRecipe(ctx, opts, raw, def)
}
