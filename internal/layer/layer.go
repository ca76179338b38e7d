package layer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"

	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// Sink receives the flattened entries. Entries come in a deterministic order, but not in tree order:
// a directory may follow its children, a hardlink may precede its target, and parents may be implicit.
// A regular file's Body is valid only until Sink returns.
type Sink func(e squashfs.Entry) error

// Layer is one layer blob, bottom layer first in the slice given to Flatten (the manifest's order).
type Layer struct {
	// Digest names the layer in errors and logs.
	Digest string
	// MediaType is informational: the compression is detected from the blob's magic bytes, because
	// registries and archives mislabel it often enough.
	MediaType string
	// Open returns the blob, compressed (gzip, zstd) or not. Flatten opens every layer twice (see Flatten).
	Open func() (io.ReadCloser, error)
	// DiffID, when set, is the digest ("sha256:...") the image config's rootfs.diff_ids gives the
	// layer's uncompressed tar: the first pass checks it, so that a blob whose compressed digest
	// is right but which is not the layer the config describes is refused.
	DiffID string
}

// DevicePolicy says what happens to character and block devices found in a layer.
type DevicePolicy int

const (
	// DevicesKeep stores device nodes, as OCI runtimes do; the launcher mounts the image nodev.
	DevicesKeep DevicePolicy = iota
	// DevicesSkip leaves device nodes out of the image (they still hide lower layers' paths).
	DevicesSkip
	// DevicesReject fails the flatten on the first device node.
	DevicesReject
)

// Options tunes Flatten. The zero value is usable.
type Options struct {
	// Logger receives debug messages (dropped xattrs, hidden entries); nil discards them.
	Logger *slog.Logger
	// Devices is the device node policy.
	Devices DevicePolicy
	// MaxBytes bounds the total uncompressed size of all entries of all layers (a decompression bomb
	// guard); 0 means no limit. It is checked while indexing, before any entry reaches the sink.
	MaxBytes int64
	// MaxEntries bounds the number of tar entries of all layers (the index keeps every name in
	// memory); 0 means no limit.
	MaxEntries int64
	// Parallel is how many layers are indexed at once; 0 means GOMAXPROCS.
	Parallel int
}

// Stats counts what Flatten did.
type Stats struct {
	Layers    int
	Entries   int   // entries given to the sink
	Bytes     int64 // regular file content given to the sink
	Hidden    int   // tar entries hidden by upper layers or by a later duplicate in the same layer
	Whiteouts int   // whiteout and opaque markers read
	Hardlinks int   // TypeHardlink entries given to the sink
	Copied    int   // hardlinks whose target was hidden, stored as the target's content instead
	Skipped   int   // entries left out by policy (devices, aufs metadata)
}

// Flatten merges layers (bottom first, as in the manifest) into one stream of entries given to sink.
//
// Each layer is read twice. The first pass (layers in parallel) reads only tar headers and records
// names; the second pass, top layer first, streams the contents into the sink. The index is what makes
// two things correct without unpacking anything to disk: within one layer the LAST entry of a
// duplicated name wins, and a hardlink whose target is hidden by an upper layer becomes a copy of
// the target's content, which streams past before the link in the same or a lower layer.
// The package documentation states the rules.
func Flatten(ctx context.Context, layers []Layer, sink Sink, opts Options) (Stats, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.GOMAXPROCS(0)
	}
	idx, err := indexAll(ctx, layers, opts)
	if err != nil {
		return Stats{}, err
	}
	p, err := makePlan(layers, idx, opts)
	if err != nil {
		return Stats{}, err
	}
	st := p.stats
	st.Layers = len(layers)
	em := emitter{sink: sink, opts: opts, st: &st}
	for li := len(layers) - 1; li >= 0; li-- {
		if err := em.layer(ctx, layers[li], layerName(layers[li], li, len(layers)), idx[li], p.acts[li]); err != nil {
			return st, err
		}
	}
	for _, d := range p.dirs {
		// Mode 0755 root:root with time 0, as containerd makes a missing parent directory.
		if err := sink(squashfs.Entry{Path: d, Type: squashfs.TypeDir, Mode: 0o755}); err != nil {
			return st, fmt.Errorf("directory %q: %w", d, err)
		}
		st.Entries++
	}
	return st, nil
}

// layerName names a layer in errors: "layer 2/5 sha256:ab12...".
func layerName(l Layer, li, n int) string {
	d := l.Digest
	if d == "" {
		d = "(no digest)"
	}
	return fmt.Sprintf("layer %d/%d %s", li+1, n, d)
}
