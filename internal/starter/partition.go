package starter

import (
	"fmt"
	"os"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// partition finds the squashfs partition of the image open as img itself: the Spec's offset and
// size are the user's to choose, and would let them point the kernel's squashfs driver at any
// bytes of a trusted file (a squashfs image stored as a file inside the image, say). A bare
// squashfs file is used whole; a SIF's primary system partition must be squashfs. What could go
// wrong: the SIF reader runs as root, but only on a file admit has found that the user cannot
// change.
func partition(img *os.File) (offset, size int64, err error) {
	magic := make([]byte, 4)
	if n, _ := img.ReadAt(magic, 0); n == 4 && string(magic) == "hsqs" {
		return 0, 0, nil
	}
	fi, err := sif.LoadContainer(img, sif.OptLoadWithFlag(os.O_RDONLY), sif.OptLoadWithCloseOnUnload(false))
	if err != nil {
		return 0, 0, fmt.Errorf("not a SIF or squashfs image: %w", err)
	}
	defer fi.UnloadContainer() //nolint:errcheck // read-only
	d, err := fi.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return 0, 0, fmt.Errorf("no primary system partition: %w", err)
	}
	if fs, _, _, err := d.PartitionMetadata(); err != nil || fs != sif.FsSquash {
		return 0, 0, fmt.Errorf("the system partition is not squashfs")
	}
	return d.Offset(), d.Size(), nil
}
