package rules

import (
	"fmt"

	"github.com/sylabs/sif/v2/pkg/sif"
	"golang.org/x/sys/unix"
)

// Partition finds the squashfs partition of the image open as img (an *os.File, read only): the Spec's offset and size
// are the user's to choose, and would let them point the kernel's squashfs driver at any bytes
// of a trusted file (a squashfs image stored as a file inside the image, say). A bare squashfs
// file is used whole (size 0); a SIF's primary system partition must be squashfs. It only reads
// img; the starter calls it as root, on a file it has found the user cannot change.
func Partition(img sif.ReadWriter) (offset, size int64, err error) {
	magic := make([]byte, 4)
	if n, _ := img.ReadAt(magic, 0); n == 4 && string(magic) == "hsqs" {
		return 0, 0, nil
	}
	fi, err := sif.LoadContainer(img, sif.OptLoadWithFlag(unix.O_RDONLY), sif.OptLoadWithCloseOnUnload(false))
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
