package sif

import (
	"errors"
	"fmt"
	"os"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// ErrNotSquashfs is a partition of another file system (Apptainer's writable overlay
// partitions are ext3), which hpcctl does not mount.
var ErrNotSquashfs = errors.New("not a squashfs partition")

// Partition locates one squashfs partition of a SIF.
type Partition struct {
	ID           uint32
	Offset, Size int64
}

// FindPartition finds, in the SIF open as f, the partition with object ID id, or with id 0 the
// first overlay partition when overlay is true and the primary system partition otherwise. A
// partition of another file system fails with ErrNotSquashfs, naming it.
func FindPartition(f *os.File, id uint32, overlay bool) (Partition, error) {
	fi, err := Load(f)
	if err != nil {
		return Partition{}, err
	}
	defer fi.UnloadContainer() //nolint:errcheck // read-only: nothing to flush
	var d sif.Descriptor
	switch {
	case id != 0:
		d, err = fi.GetDescriptor(sif.WithID(id))
		if err == nil && d.DataType() != sif.DataPartition {
			err = fmt.Errorf("object %d is a %v, not a partition", id, d.DataType())
		}
	case overlay:
		d, err = fi.GetDescriptor(sif.WithPartitionType(sif.PartOverlay))
	default:
		d, err = fi.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	}
	if err != nil && id != 0 {
		return Partition{}, fmt.Errorf("%s: object %d: %w", f.Name(), id, err)
	}
	if err != nil && overlay {
		return Partition{}, fmt.Errorf("%s has no overlay partition: %w", f.Name(), err)
	}
	if err != nil {
		return Partition{}, fmt.Errorf("%s: %w", f.Name(), err)
	}
	fs, _, _, err := d.PartitionMetadata()
	if err != nil {
		return Partition{}, fmt.Errorf("%s: partition %d: %w", f.Name(), d.ID(), err)
	}
	if fs != sif.FsSquash {
		return Partition{}, fmt.Errorf("%s: partition %d is %v: %w", f.Name(), d.ID(), fs, ErrNotSquashfs)
	}
	return Partition{ID: d.ID(), Offset: d.Offset(), Size: d.Size()}, nil
}
