package superblock

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func good() Superblock {
	return Superblock{
		Magic: Magic, BlockSize: 128 << 10, BlockLog: 17, Compression: Zstd, VersionMajor: 4,
		InodeTableStart: 1000, DirectoryTableStart: 2000, IDTableStart: 2500, BytesUsed: 3000,
	}
}

// at places the encoded superblock at offset 100 of a larger file, as in a SIF.
func at(t *testing.T, s Superblock) *bytes.Reader {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(append(append(make([]byte, 100), b...), make([]byte, 4000)...))
}

func TestReadAt(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Superblock)
		size int64
		want string // "" for no error
	}{
		{"good", func(*Superblock) {}, 3000, ""},
		{"bad magic", func(s *Superblock) { s.Magic = 0 }, 3000, "not a squashfs"},
		{"version 3", func(s *Superblock) { s.VersionMajor = 3 }, 3000, "version 3.0"},
		{"block size and log disagree", func(s *Superblock) { s.BlockLog = 16 }, 3000, "invalid block size"},
		{"tables out of order", func(s *Superblock) { s.InodeTableStart = 0xffffffffffff }, 3000, "out of order"},
		{"partition cut short", func(*Superblock) {}, 2999, "bytes_used is 3000"},
		{"smaller than a superblock", func(*Superblock) {}, 50, "image is 50 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.mod(&s)
			got, err := ReadAt(at(t, s), 100, tc.size)
			if tc.want == "" {
				if err != nil || got.BytesUsed != 3000 {
					t.Fatalf("ReadAt: %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
	if _, err := ReadAt(bytes.NewReader(make([]byte, 120)), 100, 3000); !errors.Is(err, ErrTruncated) {
		t.Errorf("a file that ends inside the superblock: err = %v, want ErrTruncated", err)
	}
}
