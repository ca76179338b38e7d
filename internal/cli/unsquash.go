package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hpcctl/hpcctl/internal/scratch"
)

// UnsquashVerb is the companion's hidden command that extracts the squashfs partition of the
// image open as descriptor 3 into a directory, for --unsquash. The squashfs reader lives in
// hpcctl-image: its decompressors' package initialisation (zstd, xz, lz4) cost every hpcctl
// process about half a millisecond, and every job starts hpcctl twice, for a rarely used fallback.
const UnsquashVerb = "unsquash-image"

// unsquashPrefix starts the names of --unsquash's directories in $TMPDIR.
const unsquashPrefix = "hpcctl-unsquash-"

// sweepScratch removes the --unsquash directories a killed hpcctl of this user left behind; every
// launch does it, so that they do not wait for the user's next --unsquash.
func sweepScratch(g *Globals) {
	scratch.Sweep(os.TempDir(), unsquashPrefix, g.Logger)
}

// UnsquashArgs are the arguments of UnsquashVerb: the partition at offset..offset+size of image
// (the name its errors give) goes into the existing directory dest.
func UnsquashArgs(offset, size int64, image, dest string) []string {
	return []string{"--offset", strconv.FormatInt(offset, 10), "--size", strconv.FormatInt(size, 10), "--", image, dest}
}

// unsquash extracts the squashfs at offset..offset+size of the open image f into a private
// temporary directory, for machines that can mount neither with the kernel nor with FUSE. It
// returns the root and a cleanup that removes it. A copy that a killed hpcctl left behind is
// removed by the next --unsquash (package scratch); the companion holds the directory's lock too,
// so that it is not swept while an orphaned extraction still writes into it.
func unsquash(ctx context.Context, g *Globals, f *os.File, offset, size int64) (string, func(), error) {
	d, err := scratch.Make(os.TempDir(), unsquashPrefix, g.Logger)
	if err != nil {
		return "", nil, fmt.Errorf("--unsquash: %w", err)
	}
	cleanup := func() {
		if rerr := d.Remove(); rerr != nil {
			g.Logger.Warn("remove the extracted image", "dir", d.Path, "err", rerr)
		}
	}
	root := filepath.Join(d.Path, "root")
	if err = os.Mkdir(root, 0o755); err == nil {
		err = runCompanion(ctx, g, UnsquashVerb, UnsquashArgs(offset, size, f.Name(), root), f, d.LockFile())
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("--unsquash: %w", err)
	}
	return root, cleanup, nil
}
