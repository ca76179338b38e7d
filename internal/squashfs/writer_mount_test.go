package squashfs_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// mountImage mounts img read-only with the kernel (fuse false) or squashfuse and unmounts it
// when the test ends.
func mountImage(t *testing.T, img string, fuse bool, offset int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if fuse {
		cmd = exec.Command("squashfuse", "-o", fmt.Sprintf("ro,offset=%d", offset), img, dir)
	} else {
		cmd = exec.Command("mount", "-t", "squashfs", "-o", fmt.Sprintf("loop,ro,offset=%d", offset), img, dir)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

var mountCompressors = []Options{{Compression: Zstd}, {Compression: Gzip}, {Compression: XZ}, {Compression: LZ4}, {Compression: LZ4, Level: 9}}

func TestWriterKernelMount(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedCommands(t, "mount", "umount")
	for _, opts := range append(mountCompressors, featureVariants...) {
		t.Run(variantName(opts), func(t *testing.T) {
			tt := newTestTree(int(cmp.Or(opts.BlockSize, DefaultBlockSize)))
			opts.ModTime = testModTime
			img := sqtest.WriteImage(t, opts, tt.fresh())
			dir := mountImage(t, img, false, 0)
			exp := tt.expected()
			if opts.NoXattrs {
				for _, w := range exp {
					w.Xattrs = nil
				}
			}
			checkDiskTree(t, dir, exp, compareOpts{owners: true, xattrs: true})
		})
	}
}

func TestWriterSquashfuse(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedCommands(t, "squashfuse", "umount")
	tt := newTestTree(DefaultBlockSize)
	exp := tt.expected()
	for _, opts := range mountCompressors {
		t.Run(fmt.Sprintf("%v-%d", opts.Compression, opts.Level), func(t *testing.T) {
			opts.ModTime = testModTime
			img := sqtest.WriteImage(t, opts, tt.fresh())
			dir := mountImage(t, img, true, 0)
			checkDiskTree(t, dir, exp, compareOpts{owners: true, xattrs: true, prefixSwapOK: true})
		})
	}
}

// TestWriterAtOffset writes an image inside a bigger file, as in a SIF, and mounts it there.
func TestWriterAtOffset(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedCommands(t, "mount", "umount", "squashfuse")
	const offset = 3 * 4096
	tt := newTestTree(16 << 10)
	img := filepath.Join(t.TempDir(), "sif")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = f.Write(make([]byte, offset)); err != nil {
		t.Fatal(err)
	}
	w := sqtest.Write(t, f, Options{ModTime: testModTime, BlockSize: 16 << 10}, sqtest.Add(tt.fresh()))
	end, _ := f.Seek(0, 1)
	if st, _ := f.Stat(); end != st.Size() || uint64(end-offset) != w.Stats().BytesOut {
		t.Errorf("position %d, file size %d, image %d bytes from %d", end, st.Size(), w.Stats().BytesOut, offset)
	}
	f.Close()
	for _, fuse := range []bool{false, true} {
		checkDiskTree(t, mountImage(t, img, fuse, offset), tt.expected(), compareOpts{owners: true, xattrs: true, prefixSwapOK: fuse})
	}
}

// TestWriterHugeFileMounted checks a sparse file over 4 GiB (extended inode, 64-bit size) through
// unsquashfs's listing and a kernel mount, reading only the marked places.
func TestWriterHugeFileMounted(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 4 GiB of generated zeros")
	}
	testutil.NeedRoot(t)
	testutil.NeedCommands(t, "unsquashfs", "mount", "umount")
	e, marks := hugeFile()
	img := sqtest.WriteImage(t, Options{ModTime: testModTime}, []Entry{e})
	got := unsquashfsEntries(t, img)["huge"]
	if !strings.Contains(got, fmt.Sprintf(" %d ", e.Size)) {
		t.Errorf("unsquashfs lists %q, want size %d", got, e.Size)
	}
	dir := mountImage(t, img, false, 0)
	f, err := os.Open(filepath.Join(dir, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != e.Size {
		t.Fatalf("mounted size %v, want %d (%v)", st.Size(), e.Size, err)
	}
	for at, s := range marks {
		from, to := max(at-1, 0), min(at+int64(len(s))+1, e.Size)
		buf := make([]byte, to-from)
		n, _ := f.ReadAt(buf, from)
		want := strings.Repeat("\x00", int(at-from)) + s + strings.Repeat("\x00", int(to-at)-len(s))
		if string(buf[:n]) != want {
			t.Errorf("at %d: read %q, want %q", at, buf[:n], want)
		}
	}
}

// TestWriterIncompressible stores a random file in a fragment and random xattr values, so the
// fragment block and the xattr metadata block fall back to uncompressed storage.
func TestWriterIncompressible(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedCommands(t, "mount", "umount")
	content := randomBytes(50000)
	value := string(randomBytes(6000))
	e := Entry{Path: "r", Type: TypeRegular, Mode: 0o644, ModTime: testTime, Size: int64(len(content)),
		Body: bytes.NewReader(content), Xattrs: map[string]string{"user.r": value}}
	img := sqtest.WriteImage(t, Options{ModTime: testModTime}, []Entry{e})
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	var sb Superblock
	if err := sb.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	// The fragment table index points at one metadata block holding one 16-byte entry, which
	// no compressor shrinks, so it is stored as is too.
	blk := binary.LittleEndian.Uint64(raw[sb.FragmentTableStart:])
	if hdr := binary.LittleEndian.Uint16(raw[blk:]); hdr != 16|MetadataUncompressed {
		t.Fatalf("fragment table block header %#x, want 16 bytes stored as is", hdr)
	}
	entry := raw[blk+2:]
	if size := binary.LittleEndian.Uint32(entry[8:]); size&DataUncompressed == 0 || size&^DataUncompressed != 50000 {
		t.Errorf("fragment size word %#x, want 50000 stored uncompressed", size)
	}
	exp := map[string]*want{
		".": {Entry: Entry{Type: TypeDir, Mode: 0o755, ModTime: testModTime}, nlink: 2},
		"r": {Entry: e, nlink: 1, content: content},
	}
	checkDiskTree(t, mountImage(t, img, false, 0), exp, compareOpts{owners: true, xattrs: true})
}
