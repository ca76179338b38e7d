package sif

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// The raw layout of a SIF, as github.com/sylabs/sif/v2 (v2.24) reads it with encoding/binary:
// pkg/sif/sif.go's header (launch script [32]byte, magic [10]byte, version [3]byte, arch [3]byte,
// ID [16]byte, then eight int64s) and descriptor.go's rawDescriptor (int32 data type, bool used,
// three uint32 IDs, seven int64s, name [128]byte, extra [384]byte), little-endian, unpadded.
const (
	headerSize     = 32 + 10 + 3 + 3 + 16 + 8*8    // 128
	descriptorSize = 4 + 1 + 3*4 + 7*8 + 128 + 384 // 585

	offMagic     = 32
	offDescFree  = 80 // after CreatedAt and ModifiedAt
	offDescTotal = 88
	offDescOff   = 96
	offDescSize  = 104
	offDataOff   = 112
	offDataSize  = 120

	// Offsets inside one raw descriptor.
	offDType  = 0
	offUsed   = 4
	offObjOff = 4 + 1 + 3*4 // 17
	offObjSz  = offObjOff + 8
	offName   = offObjOff + 7*8 // 73

	// maxDescriptors bounds what the library allocates for the descriptor table; the library
	// makes 48 and no SIF tool makes thousands.
	maxDescriptors = 1 << 16
	// maxMetadataObject bounds an object read into memory (configs, labels, definition files);
	// real ones are a few KiB.
	maxMetadataObject = 64 << 20
)

var sifMagic = []byte("SIF_MAGIC\x00")

// CorruptError says that a file claims to be a SIF but its header or a descriptor does not fit
// it: the file was cut short or damaged. Field names what is wrong, for tests and logs.
type CorruptError struct {
	Path  string
	Field string // e.g. "descriptor 3 size 1099511627776"
	Why   string // e.g. "exceeds the file (2 MiB)"
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s: %s %s: the SIF is corrupt; copy or build it again", e.Path, e.Field, e.Why)
}

// ErrNotSIF means the file does not start with a SIF header at all.
var ErrNotSIF = errors.New("not a SIF image")

// Check reads the raw header and descriptors of the SIF in r (size bytes, named path in errors)
// and refuses any count, offset or size that does not fit the file. The SIF library trusts them:
// it makes a slice of the header's descriptor count (a count of 1<<40 panicked in makeslice) and
// a buffer of an object's size (a 1 TiB config object), so every opener calls Check first.
func Check(r io.ReaderAt, size int64, path string) error {
	hdr := make([]byte, headerSize)
	n, err := r.ReadAt(hdr, 0)
	if n < offMagic+len(sifMagic) || !bytes.Equal(hdr[offMagic:offMagic+len(sifMagic)], sifMagic) {
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: read the SIF header: %w", path, err)
		}
		return fmt.Errorf("%s: %w (no SIF magic)", path, ErrNotSIF)
	}
	corrupt := func(field, why string, args ...any) error {
		return &CorruptError{Path: path, Field: field, Why: fmt.Sprintf(why, args...)}
	}
	if n < headerSize {
		return corrupt("header", "is cut short at %d of %d bytes", n, headerSize)
	}
	i64 := func(off int) int64 { return int64(binary.LittleEndian.Uint64(hdr[off:])) }
	free, total, descOff, descSize := i64(offDescFree), i64(offDescTotal), i64(offDescOff), i64(offDescSize)
	dataOff, dataSize := i64(offDataOff), i64(offDataSize)
	switch {
	case total < 0 || total > maxDescriptors:
		return corrupt(fmt.Sprintf("descriptor count %d", total), "is out of range (0 to %d)", maxDescriptors)
	case free < 0 || free > total:
		return corrupt(fmt.Sprintf("free descriptor count %d", free), "is out of range (0 to %d)", total)
	case descOff < headerSize || descOff > size:
		return corrupt(fmt.Sprintf("descriptor table offset %d", descOff), "lies outside the file (%s)", humanSize(size))
	case descSize < total*descriptorSize:
		return corrupt(fmt.Sprintf("descriptor table size %d", descSize), "is too small for %d descriptors", total)
	case total*descriptorSize > size-descOff:
		return corrupt(fmt.Sprintf("descriptor table of %d descriptors at %d", total, descOff), "exceeds the file (%s)", humanSize(size))
	case dataOff < 0 || dataSize < 0 || dataOff > size || dataSize > size-dataOff:
		return corrupt(fmt.Sprintf("data section at %d size %d", dataOff, dataSize), "exceeds the file (%s)", humanSize(size))
	}
	return checkDescriptors(r, size, path, descOff, total)
}

// checkDescriptors checks that every used object lies inside the file.
func checkDescriptors(r io.ReaderAt, size int64, path string, descOff, total int64) error {
	table := make([]byte, total*descriptorSize) // bounded by the file's size (Check)
	if _, err := r.ReadAt(table, descOff); err != nil {
		return fmt.Errorf("%s: read the SIF descriptors: %w", path, err)
	}
	for i := range total {
		d := table[i*descriptorSize : (i+1)*descriptorSize]
		if d[offUsed] == 0 {
			continue
		}
		off := int64(binary.LittleEndian.Uint64(d[offObjOff:]))
		sz := int64(binary.LittleEndian.Uint64(d[offObjSz:]))
		field := fmt.Sprintf("descriptor %d", i+1)
		switch {
		case off < 0 || off > size:
			return &CorruptError{Path: path, Field: fmt.Sprintf("%s offset %d", field, off),
				Why: fmt.Sprintf("lies outside the file (%s%s)", humanSize(size), describeRaw(d))}
		case sz < 0 || sz > size-off:
			return &CorruptError{Path: path, Field: fmt.Sprintf("%s size %d", field, sz),
				Why: fmt.Sprintf("exceeds the file (%s; object at offset %d%s)", humanSize(size), off, describeRaw(d))}
		}
	}
	return nil
}

// describeRaw names a raw descriptor's type and name, ", JSON.Generic oci-config.json".
func describeRaw(d []byte) string {
	t := sif.DataType(int32(binary.LittleEndian.Uint32(d[offDType:])))
	name := string(bytes.TrimRight(d[offName:offName+128], "\x00"))
	if t.String() == "Unknown" {
		return ""
	}
	if name == "" || !printable(name) {
		return ", " + t.String()
	}
	return ", " + t.String() + " " + name
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// humanSize prints a file size the way the messages use it: "2 MiB", "1536 bytes".
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// Load checks the SIF open in f (Check) and hands it to the SIF library, which will not close f
// on unload. f may be open for reading and writing, to add objects.
func Load(f *os.File) (*sif.FileImage, error) {
	if err := checkFile(f, f.Name()); err != nil {
		return nil, err
	}
	fi, err := sif.LoadContainer(f, sif.OptLoadWithCloseOnUnload(false))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", f.Name(), ErrNotSIF, err)
	}
	return fi, nil
}

// LoadPath opens the SIF at path with flag (os.O_RDONLY, or os.O_RDWR to add objects) and loads
// it (Load); unloading it closes the file.
func LoadPath(path string, flag int) (*sif.FileImage, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	if err = checkFile(f, path); err != nil {
		f.Close()
		return nil, err
	}
	fi, err := sif.LoadContainer(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w: %w", path, ErrNotSIF, err)
	}
	return fi, nil
}

func checkFile(f *os.File, path string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return Check(f, st.Size(), path)
}
