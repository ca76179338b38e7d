package sif

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// PartitionOffset is where Write places the system partition: after the header and the
// descriptor table, aligned as the SIF library aligns partitions. A builder writes the squashfs
// there first and then calls WriteAround, so that an image never needs twice its size on disk.
func PartitionOffset() (int64, error) {
	// Ask the library rather than repeat its layout: an empty partition in an empty image.
	part, err := sif.NewDescriptorInput(sif.DataPartition, bytes.NewReader(nil),
		sif.OptGroupID(SystemGroup), sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"))
	if err != nil {
		return 0, fmt.Errorf("write SIF: %w", err)
	}
	var buf sif.Buffer
	f, err := sif.CreateContainer(&buf, sif.OptCreateDeterministic(), sif.OptCreateWithDescriptors(part))
	if err != nil {
		return 0, fmt.Errorf("write SIF: %w", err)
	}
	d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return 0, fmt.Errorf("write SIF: %w", err)
	}
	return d.Offset(), nil
}

// WriteAround makes f, which holds the system partition's size bytes at PartitionOffset, a whole
// SIF: the same bytes Write would produce from the same partition and metadata.
func WriteAround(f *os.File, size int64, md Metadata) error {
	off, err := PartitionOffset()
	if err != nil {
		return err
	}
	w := &aroundWriter{f: f, off: off, end: off + size}
	return Write(w, io.LimitReader(unread{}, size), md)
}

// aroundWriter is the output as the SIF library sees it while it "copies" a partition that is
// already in place: writes to [off, end) carry unread's placeholder bytes and are dropped.
type aroundWriter struct {
	f        *os.File
	pos      int64
	off, end int64
}

func (w *aroundWriter) Write(p []byte) (int, error) {
	n := len(p)
	start, stop := w.pos, w.pos+int64(n)
	// The parts before and after the partition, if any, go to the file.
	if start < w.off {
		if err := w.writeAt(p[:min(stop, w.off)-start], start); err != nil {
			return 0, err
		}
	}
	if stop > w.end {
		from := max(start, w.end)
		if err := w.writeAt(p[from-start:], from); err != nil {
			return 0, err
		}
	}
	w.pos = stop
	return n, nil
}

func (w *aroundWriter) writeAt(p []byte, at int64) error {
	_, err := w.f.WriteAt(p, at)
	return err
}

func (w *aroundWriter) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += w.pos
	case io.SeekEnd:
		st, err := w.f.Stat()
		if err != nil {
			return 0, err
		}
		offset += st.Size()
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek to %d: negative position", offset)
	}
	w.pos = offset
	return offset, nil
}

func (w *aroundWriter) ReadAt(p []byte, off int64) (int, error) { return w.f.ReadAt(p, off) }
func (w *aroundWriter) Truncate(size int64) error               { return w.f.Truncate(size) }

// unread stands for the partition's bytes, which are never read: aroundWriter drops them.
type unread struct{}

func (unread) Read(p []byte) (int, error) { return len(p), nil }
