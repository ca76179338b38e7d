package layer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/testutil/layertest"
)

// TestXattrLimits: an xattr Linux cannot hold is refused before anything reaches the sink,
// with the layer and entry named.
func TestXattrLimits(t *testing.T) {
	tests := []struct {
		name   string
		xattrs map[string]string
		want   string // "" accepts
	}{
		{"64 KiB value", map[string]string{"user.big": strings.Repeat("x", 64<<10)}, ""},
		{"value over 64 KiB", map[string]string{"user.big": strings.Repeat("x", 64<<10+1)}, `xattr "user.big" is 65537 bytes`},
		{"dropped namespace too", map[string]string{"system.big": strings.Repeat("x", 70000)}, `xattr "system.big"`},
		{"name over 255", map[string]string{"user." + strings.Repeat("n", 251): "v"}, "xattr name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layers := stack(
				[]layertest.File{layertest.Dir("etc")},
				[]layertest.File{{Name: "etc/file", Body: "x", Xattrs: tt.xattrs}},
			)
			entries := 0
			_, err := Flatten(context.Background(), layers, func(squashfs.Entry) error { entries++; return nil }, Options{})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "layer 2/2 sha256:l1") ||
				!strings.Contains(err.Error(), `"etc/file"`) {
				t.Errorf("err = %v, want one naming layer 2/2, etc/file and %q", err, tt.want)
			}
			if entries != 0 {
				t.Errorf("%d entries reached the sink before the refusal", entries)
			}
		})
	}
}

func diffID(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestDiffIDs: each layer's uncompressed content must have the digest the image config gives
// it, whatever the compression; a mismatch names the layer and both digests.
func TestDiffIDs(t *testing.T) {
	lower := layertest.Tar([]layertest.File{layertest.Dir("etc"), layertest.Reg("etc/a", "a\n")})
	upper := layertest.Tar([]layertest.File{layertest.Reg("etc/b", "b\n")})
	other := layertest.Tar([]layertest.File{layertest.Reg("etc/c", "c\n")})
	tests := []struct {
		name    string
		blobs   [][]byte
		diffIDs []string
		want    string
	}{
		{"match", [][]byte{lower, layertest.Gzip(upper)}, []string{diffID(lower), diffID(upper)}, ""},
		{"zstd match", [][]byte{layertest.Zstd(lower), upper}, []string{diffID(lower), diffID(upper)}, ""},
		{"mismatch", [][]byte{lower, layertest.Gzip(upper)}, []string{diffID(lower), diffID(other)}, "layer 2/2 sha256:l1: uncompressed content is " + diffID(upper)},
		{"compressed digest given", [][]byte{lower, layertest.Gzip(upper)}, []string{diffID(lower), diffID(layertest.Gzip(upper))}, "rootfs.diff_ids says"},
		{"bad diff_id", [][]byte{lower}, []string{"md5:abc"}, "unknown digest algorithm"},
		{"short diff_id", [][]byte{lower}, []string{"sha256:abc"}, "not a valid digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layers := blobs(tt.blobs...)
			for i := range layers {
				layers[i].DiffID = tt.diffIDs[i]
			}
			var rec recorder
			_, err := Flatten(context.Background(), layers, rec.add, Options{})
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			case tt.want != "" && len(rec.entries) != 0:
				t.Errorf("%d entries reached the sink before the refusal", len(rec.entries))
			}
		})
	}
}
