package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// These tests check unexported parts of the writer directly and need no helper of the external
// tests (package squashfs_test), so they stay in the package.

func TestCompressorOptions(t *testing.T) {
	for _, tc := range []struct {
		kind  Compression
		level int
		want  []byte
	}{
		{Gzip, 0, nil},
		{Gzip, 6, []byte{6, 0, 0, 0, 15, 0, 0, 0}},
		{Zstd, 0, []byte{3, 0, 0, 0}},
		{Zstd, 15, nil},
		{XZ, 0, nil},
		{LZ4, 0, []byte{1, 0, 0, 0, 0, 0, 0, 0}},
		{LZ4, 9, []byte{1, 0, 0, 0, 1, 0, 0, 0}},
	} {
		c, err := newBlockCodec(tc.kind, tc.level, DefaultBlockSize)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.options(); !bytes.Equal(got, tc.want) {
			t.Errorf("%v level %d: options %v, want %v", tc.kind, tc.level, got, tc.want)
		}
	}
}

// TestDirectoryListing checks headers and the index of a large directory by decoding them.
func TestDirectoryListing(t *testing.T) {
	d := &treeNode{}
	for i := range 3000 {
		c := &treeNode{name: fmt.Sprintf("entry-%05d-%s", i, strings.Repeat("x", i%40)), attr: Entry{Type: TypeRegular}}
		c.ino = uint32(10 + i*20) // deltas beyond int16 force extra headers
		c.ref = inodeRef(uint64(i/100)*8000, uint16(i%100*80))
		d.sorted = append(d.sorted, c)
	}
	const startU = 5000
	b, index := buildListing(d, startU)
	le := binary.LittleEndian
	headers := map[uint32]string{}
	var names []string
	for off := 0; off < len(b); {
		count := int(le.Uint32(b[off:])) + 1
		block, base := le.Uint32(b[off+4:]), le.Uint32(b[off+8:])
		if count > maxDirHeaderEntries {
			t.Fatalf("header at %d has %d entries", off, count)
		}
		hdr := uint32(off)
		off += 12
		for i := range count {
			delta := int16(le.Uint16(b[off+2:]))
			size := int(le.Uint16(b[off+6:])) + 1
			name := string(b[off+8 : off+8+size])
			c := d.sorted[len(names)]
			if name != c.name || uint32(int64(base)+int64(delta)) != c.ino || uint64(block)<<16|uint64(le.Uint16(b[off:])) != c.ref {
				t.Fatalf("entry %q decodes wrongly", name)
			}
			if i == 0 {
				headers[hdr] = name
			}
			names = append(names, name)
			off += 8 + size
		}
	}
	if len(names) != 3000 || !slices.IsSorted(names) {
		t.Fatalf("decoded %d names, sorted %v", len(names), slices.IsSorted(names))
	}
	if want := (startU + len(b)) / metadataBlockSize; len(index) != want {
		t.Errorf("%d index entries for a listing over %d blocks", len(index), want+1)
	}
	for _, ix := range index {
		if headers[ix.off] != ix.name || ix.ublock != (startU+uint64(ix.off))/metadataBlockSize {
			t.Errorf("index %+v does not point at a header starting with its name", ix)
		}
	}
}
