// Package build turns an image source (a registry reference, an OCI layout or archive, a docker
// archive or a directory) into a reproducible SIF: layers are flattened as a stream straight into
// the squashfs writer, nothing is unpacked to disk, and the output appears only when complete.
package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// Options says what to build and how.
type Options struct {
	// Source is docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or a directory.
	Source string
	// Output is the SIF file to create.
	Output string
	// Force replaces an existing output.
	Force bool

	Compression squashfs.Compression
	Level       int
	BlockSize   uint32

	// Arch, OS and Variant pick a platform from a multi-platform index (default: the host's).
	Arch, OS, Variant string
	Insecure          bool
	AuthFile          string
	CacheDir          string

	// SourceDateEpoch, when set, is the time recorded in the image (SOURCE_DATE_EPOCH);
	// otherwise the image's own creation time is used.
	SourceDateEpoch *time.Time
	// Labels are added to the image's labels.
	Labels map[string]string
	// Version is hpcctl's version, recorded in the provenance object.
	Version string
	// Sign, when set, signs the finished SIF in f before it is given its name; at is the image's
	// time, for deterministic signatures.
	Sign func(ctx context.Context, f *os.File, at time.Time) error

	// BuildArgs are a recipe's {{ name }} values (--build-arg, --build-arg-file).
	BuildArgs map[string]string
	// NoTest skips a recipe's %test; KeepFailed keeps a failed recipe build's work directory.
	NoTest, KeepFailed bool
	// Sandbox, when set, is a directory to write the root file system to instead of Output.
	Sandbox string

	Logger *slog.Logger
	// Progress receives progress reports when it is a terminal; nil is quiet.
	Progress io.Writer
}

// Result describes a finished build.
type Result struct {
	Output       string
	SourceDigest string
	Squashfs     squashfs.Stats
	Size         int64
}

// Build makes the SIF. On any error, or when ctx is cancelled, nothing is left at Output and an
// existing file there is untouched.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if IsRecipe(opts.Source) {
		return buildRecipe(ctx, opts)
	}
	if opts.Sandbox != "" {
		return buildSandboxFrom(ctx, opts)
	}
	out, err := createPending(opts.Output, opts.Force)
	if err != nil {
		return nil, err
	}
	defer out.discard()
	src, err := openSource(ctx, opts)
	if err != nil {
		return nil, err
	}
	created := opts.imageTime(src.created())
	stats, err := writeSIF(ctx, out.File, src, created, opts)
	if err != nil {
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
	if err := out.commit(); err != nil {
		return nil, err
	}
	return &Result{Output: opts.Output, SourceDigest: src.digest(), Squashfs: stats, Size: st.Size()}, nil
}

func (o *Options) setDefaults() error {
	if o.Compression == 0 {
		o.Compression = squashfs.Zstd
	}
	level, err := squashfs.EffectiveLevel(o.Compression, o.Level)
	if err != nil {
		return err
	}
	o.Level = level
	if o.BlockSize == 0 {
		o.BlockSize = squashfs.DefaultBlockSize
	}
	if err := squashfs.CheckBlockSize(o.BlockSize); err != nil {
		return err
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// imageTime is the one time stamp recorded in the image: SOURCE_DATE_EPOCH, else the source's
// creation time, else the epoch; never the time of the build, which would break reproducibility.
func (o *Options) imageTime(sourceCreated *time.Time) time.Time {
	switch {
	case o.SourceDateEpoch != nil:
		return o.SourceDateEpoch.UTC()
	case sourceCreated != nil && !sourceCreated.IsZero():
		return sourceCreated.UTC()
	}
	return time.Unix(0, 0).UTC()
}

// ParseSourceDateEpoch reads SOURCE_DATE_EPOCH as the reproducible-builds convention defines it.
func ParseSourceDateEpoch(v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<32-1 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds since 1970 that fits 32 bits", v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// writeSIF writes the squashfs straight into its place in the output, then the SIF around it:
// a build needs the image's size on disk, not twice that (a scratch squashfs, then its copy).
func writeSIF(ctx context.Context, out *os.File, src source, created time.Time, opts Options) (squashfs.Stats, error) {
	off, err := sif.PartitionOffset()
	if err != nil {
		return squashfs.Stats{}, err
	}
	if _, err = out.Seek(off, io.SeekStart); err != nil {
		return squashfs.Stats{}, fmt.Errorf("output %s: %w", opts.Output, err)
	}
	cfg := src.config(opts.Labels)
	c := cfg.Config
	sd := append(baseSingularityD(), ociSingularityD(c.Env, c.Entrypoint, c.Cmd, c.Labels)...)
	stats, err := writeRootfs(ctx, out, src, created, opts, sd)
	if err != nil {
		return stats, err
	}
	end, err := out.Seek(0, io.SeekCurrent)
	if err != nil {
		return stats, fmt.Errorf("output %s: %w", opts.Output, err)
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return stats, fmt.Errorf("encode the image config: %w", err)
	}
	md := sif.Metadata{
		Arch:       opts.Arch,
		Created:    created,
		Config:     cfgJSON,
		Labels:     cfg.Config.Labels,
		Provenance: src.provenance(opts),
	}
	if err := sif.WriteAround(out, end-off, md); err != nil {
		return stats, err
	}
	return stats, nil
}

// writeRootfs writes the source's tree and, beside it, Apptainer's /.singularity.d files sd
// (those the image lacks), so that Apptainer runs an hpcctl image as its own build of the source.
func writeRootfs(ctx context.Context, f *os.File, src source, created time.Time, opts Options, sd []sdFile) (squashfs.Stats, error) {
	w, err := squashfs.NewWriter(f, squashfs.Options{
		Compression: opts.Compression, Level: opts.Level, BlockSize: opts.BlockSize, ModTime: created.Unix(),
	})
	if err != nil {
		return squashfs.Stats{}, fmt.Errorf("squashfs: %w", err)
	}
	p := startProgress(opts.Progress, "writing "+opts.Output)
	sink := newMountPointSink(w, p, created.Unix())
	err = src.write(ctx, sink)
	p.finish()
	if err == nil {
		err = sink.addMissing()
	}
	if err == nil {
		err = sink.addSingularityD(sd)
	}
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("squashfs: %w", cerr)
	}
	return w.Stats(), err
}
