package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Launch is one container launch under a profile: argv runs with stdout and stderr going to the
// files, and the host directory outputs (when not "") bound at Options.OutputsAt. It returns the program's status,
// ErrTimedOut (with the status) when it ran too long, or ErrNotStarted when the container or
// the program could not start.
type Launch func(ctx context.Context, profile string, argv []string, stdout, stderr *os.File, outputs string) (int, error)

// ErrTimedOut and ErrNotStarted are what a Launch returns when the program ran too long or
// could not start.
var (
	ErrTimedOut   = errors.New("timed out")
	ErrNotStarted = errors.New("not started")
)

// Options say what to run and where its files go.
type Options struct {
	Profiles []string
	Command  []string
	// OutputsDir, when not "", holds one empty directory per profile, OutputsDir/PROFILE, bound
	// in the container at OutputsAt, where the command writes its files.
	OutputsDir string
	OutputsAt  string
	// ShowValues keeps the values of environment variables in the probes.
	ShowValues bool
	// ImageEnv is the image's own environment (its OCI config's Env), so that a variable the
	// image sets is not taken for a host leak.
	ImageEnv []string
}

// RunAll runs the command, then the probe, under every profile, in order.
func RunAll(ctx context.Context, o Options, host Host, launch Launch) ([]Run, error) {
	scratch, err := os.MkdirTemp("", "hpcctl-audit-")
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer os.RemoveAll(scratch) // best effort
	var runs []Run
	for _, p := range o.Profiles {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := runOne(ctx, o, p, scratch, launch)
		if err != nil {
			return nil, err
		}
		r.Leaks = Leaks(r.Probe, host, o.ImageEnv)
		if !o.ShowValues && r.Probe != nil {
			r.Probe = Redact(r.Probe)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// PrepareOutputs makes OutputsDir/PROFILE for every profile, refusing ones that hold files from
// an earlier audit (their results would mix).
func PrepareOutputs(dir string, profiles []string) error {
	for _, p := range profiles {
		d := filepath.Join(dir, p)
		ents, err := os.ReadDir(d)
		if err == nil && len(ents) > 0 {
			return fmt.Errorf("--outputs: %s is not empty: remove it or choose another directory", d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("--outputs: %w", err)
		}
	}
	return nil
}

func runOne(ctx context.Context, o Options, profile, scratch string, launch Launch) (Run, error) {
	r := Run{Profile: profile}
	outputs := ""
	if o.OutputsDir != "" {
		outputs = filepath.Join(o.OutputsDir, profile)
	}
	stdout, stderr, err := streams(scratch, profile)
	if err != nil {
		return r, err
	}
	defer stdout.Close()
	defer stderr.Close()
	status, err := launch(ctx, profile, o.Command, stdout, stderr, outputs)
	switch {
	case errors.Is(err, ErrTimedOut):
		r.Outcome, r.Status = OutcomeTimedOut, status
	case errors.Is(err, ErrNotStarted):
		r.Outcome, r.Status, r.Error = OutcomeNoStart, status, err.Error()
	case err != nil:
		return r, fmt.Errorf("audit under %s: %w", profile, err)
	default:
		r.Outcome, r.Status = OutcomeExited, status
	}
	var text [2]string
	if r.Stdout, text[0], err = digestFile(stdout); err != nil {
		return r, err
	}
	if r.Stderr, text[1], err = digestFile(stderr); err != nil {
		return r, err
	}
	r.text = text[0] + "\n" + text[1]
	if outputs != "" {
		if r.Outputs, err = digestTree(outputs); err != nil {
			return r, err
		}
	}
	r.Probe, err = probe(ctx, profile, scratch, launch)
	return r, err
}

func streams(dir, profile string) (stdout, stderr *os.File, err error) {
	if stdout, err = createFile(filepath.Join(dir, profile+".out")); err != nil {
		return nil, nil, fmt.Errorf("audit: %w", err)
	}
	if stderr, err = createFile(filepath.Join(dir, profile+".err")); err != nil {
		stdout.Close()
		return nil, nil, fmt.Errorf("audit: %w", err)
	}
	return stdout, stderr, nil
}

// probe runs the probe script in a second launch under the profile. An image without a shell
// gives no probe, not an error.
func probe(ctx context.Context, profile, scratch string, launch Launch) (Probe, error) {
	out, err := createFile(filepath.Join(scratch, profile+".probe"))
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer out.Close()
	status, err := launch(ctx, profile, []string{"/bin/sh", "-c", ProbeScript}, out, out, "")
	if err != nil && !errors.Is(err, ErrNotStarted) && !errors.Is(err, ErrTimedOut) {
		return nil, fmt.Errorf("probe under %s: %w", profile, err)
	}
	if err != nil || status != 0 {
		return nil, nil
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		return nil, fmt.Errorf("probe under %s: %w", profile, err)
	}
	return ParseProbe(string(b)), nil
}

// textLimit is how much of the output is kept to find leaked values in it.
const textLimit = 1 << 20

func digestFile(f *os.File) (Stream, string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Stream{}, "", fmt.Errorf("audit: %w", err)
	}
	h := sha256.New()
	var head strings.Builder
	n, err := io.Copy(io.MultiWriter(h, &limitWriter{w: &head, n: textLimit}), f)
	if err != nil {
		return Stream{}, "", fmt.Errorf("audit: read %s: %w", f.Name(), err)
	}
	return Stream{Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n}, head.String(), nil
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k]) //nolint:errcheck // a strings.Builder
		l.n -= k
	}
	return len(p), nil
}

// digestTree digests every regular file under dir; symbolic links count by their target text.
func digestTree(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case d.Type().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			s, _, err := digestFile(f)
			out[rel] = s.Digest
			return err
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(path)
			out[rel] = "symlink:" + t
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("digest the outputs in %s: %w", dir, err)
	}
	return out, nil
}

// createFile is os.Create (read-write: the run reads its outputs back) for a file of the run's
// own directories, without following a symbolic link someone else put there.
func createFile(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
}
