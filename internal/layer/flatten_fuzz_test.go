package layer

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/testutil/layertest"
)

// fuzzSeeds are two-layer stacks of hostile and tricky tar streams: whiteouts and opaque
// markers, hardlinks across layers and to hidden targets, unsafe names, devices, xattrs,
// compressed and truncated streams.
func fuzzSeeds() [][2][]byte {
	lower := layertest.Tar([]layertest.File{
		layertest.Dir("etc"), layertest.Reg("etc/a", "a\n"), layertest.Reg("etc/b", "b\n"),
		layertest.Hardlink("etc/a-link", "etc/a"), layertest.Symlink("lib", "usr/lib"),
		layertest.CharDev("dev/null", 1, 3),
		{Name: "etc/x", Body: "x", Xattrs: map[string]string{"user.k": "v", "system.posix_acl_access": "acl"}},
	})
	upper := layertest.Tar([]layertest.File{
		layertest.Whiteout("etc/b"), layertest.Opaque("etc"), layertest.Reg("etc/a", "new\n"),
		layertest.Hardlink("etc/late", "etc/a-link"), layertest.Reg("etc", "file over dir"),
	})
	hostile := layertest.Tar([]layertest.File{
		layertest.Reg("../evil", "x"), layertest.Reg("/abs", "x"), layertest.Hardlink("h", "."),
		layertest.Whiteout(".."), layertest.Reg(".wh.x/y", "z"),
	})
	return [][2][]byte{
		{lower, upper},
		{layertest.Gzip(lower), layertest.Zstd(upper)},
		{lower, hostile},
		{lower[:len(lower)/2], upper},
		{layertest.Gzip(upper)[:40], nil},
	}
}

// FuzzFlatten flattens two mutated layers: any outcome but a panic, a hang or an allocation
// beyond the limits is fine, and bodies must match their sizes (the sink checks).
func FuzzFlatten(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, lower, upper []byte) {
		var rec recorder
		opts := Options{MaxBytes: 16 << 20, MaxEntries: 4096, Parallel: 1}
		_, _ = Flatten(context.Background(), blobs(lower, upper), func(e squashfs.Entry) error {
			if len(rec.entries) > 4096 {
				return io.ErrShortWrite
			}
			return rec.add(e)
		}, opts)
	})
}

// TestWriteFlattenFuzzSeeds rewrites testdata/fuzz/FuzzFlatten from fuzzSeeds when
// HPCCTL_WRITE_FUZZ_SEEDS is set.
func TestWriteFlattenFuzzSeeds(t *testing.T) {
	if os.Getenv("HPCCTL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set HPCCTL_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzFlatten")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzFlatten")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range fuzzSeeds() {
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, l := range s {
			b.WriteString("[]byte(" + strconv.Quote(string(l)) + ")\n")
		}
		if err := os.WriteFile(filepath.Join(dir, "seed-"+strconv.Itoa(i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
