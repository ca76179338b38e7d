package squashfs_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// memFile is an in-memory io.WriteSeeker with Truncate, like *os.File.
type memFile struct {
	b   []byte
	off int64
}

func (m *memFile) Write(p []byte) (int, error) {
	if end := m.off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	copy(m.b[m.off:], p)
	m.off += int64(len(p))
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += m.off
	case io.SeekEnd:
		off += int64(len(m.b))
	}
	m.off = off
	return off, nil
}

func (m *memFile) Truncate(n int64) error { m.b = m.b[:n]; return nil }

func buildImage(t *testing.T, opts Options, entries []Entry) []byte {
	t.Helper()
	var m memFile
	w := sqtest.Write(t, &m, opts, sqtest.Add(entries))
	if uint64(len(m.b)) != w.Stats().BytesOut || len(m.b)%4096 != 0 {
		t.Fatalf("image is %d bytes, stats say %d", len(m.b), w.Stats().BytesOut)
	}
	return m.b
}

// TestWriterDeterministic: the same entries give the same bytes whatever the number of workers.
func TestWriterDeterministic(t *testing.T) {
	tt := newTestTree(DefaultBlockSize)
	for _, c := range []Compression{Zstd, Gzip, LZ4} {
		var first []byte
		for _, workers := range []int{1, 8, 1, 3} {
			img := buildImage(t, Options{Compression: c, Workers: workers, ModTime: testModTime}, tt.fresh())
			if first == nil {
				first = img
			} else if !bytes.Equal(first, img) {
				t.Errorf("%v: image with %d workers differs from the first", c, workers)
			}
		}
	}
}

// TestWriterOrderIndependent: directories, links and special files may arrive in any order
// (children before parents, hardlinks before targets); only file data order shapes the image.
func TestWriterOrderIndependent(t *testing.T) {
	tt := newTestTree(DefaultBlockSize)
	want := buildImage(t, Options{ModTime: testModTime}, tt.fresh())
	var files, others []Entry
	for _, e := range tt.fresh() {
		if e.Type == TypeRegular {
			files = append(files, e)
		} else {
			others = append(others, e)
		}
	}
	slices.Reverse(others)
	got := buildImage(t, Options{ModTime: testModTime}, append(others, files...))
	if !bytes.Equal(got, want) {
		t.Error("reordering non-file entries changed the image")
	}
}

func TestWriterSuperblock(t *testing.T) {
	img := buildImage(t, Options{Compression: Gzip, BlockSize: 64 << 10, ModTime: 12345}, newTestTree(64<<10).fresh())
	var sb Superblock
	if err := sb.UnmarshalBinary(img); err != nil {
		t.Fatal(err)
	}
	if sb.Compression != Gzip || sb.BlockSize != 64<<10 || sb.BlockLog != 16 || sb.ModTime != 12345 {
		t.Errorf("superblock %+v", sb)
	}
	if sb.Flags&FlagCompressorOptions != 0 {
		t.Error("gzip level 9 must not write an options record (squashfs-tools writes none)")
	}
	if sb.BytesUsed > uint64(len(img)) || sb.InodeTableStart >= sb.DirectoryTableStart ||
		sb.DirectoryTableStart >= sb.FragmentTableStart || sb.FragmentTableStart >= sb.ExportTableStart ||
		sb.ExportTableStart >= sb.IDTableStart || sb.IDTableStart >= sb.XattrIDTableStart {
		t.Errorf("tables out of order: %+v", sb)
	}
}

// errReader fails after n bytes.
type errReader struct{ n int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("disk on fire")
	}
	k := min(r.n, len(p))
	r.n -= k
	return k, nil
}

func TestWriterErrors(t *testing.T) {
	file := func(p string, size int64, body io.Reader) Entry {
		return Entry{Path: p, Type: TypeRegular, Mode: 0o644, Size: size, Body: body}
	}
	for _, tc := range []struct {
		name    string
		entries []Entry
		want    string // in the error of Add or Close
	}{
		{"dotdot", []Entry{file("a/../../x", 0, nil)}, "leaves the image root"},
		{"long name", []Entry{file(strings.Repeat("x", 256), 0, nil)}, "longer than 255"},
		{"unknown type", []Entry{{Path: "weird", Type: 99}}, "weird: unknown entry type"},
		{"short body", []Entry{file("short", 10, strings.NewReader("abc"))}, "short: body ended after 3 of 10"},
		{"long body", []Entry{file("long", 2, strings.NewReader("abc"))}, "long: body is longer than its size 2"},
		{"big short body", []Entry{file("bs", 300000, strings.NewReader("abc"))}, "bs: body ended after 3 of 300000"},
		{"body error", []Entry{file("bad", 200000, &errReader{n: 140000})}, "bad: read body: disk on fire"},
		{"no body", []Entry{file("nobody", 5, nil)}, "nobody: no body"},
		{"duplicate", []Entry{file("f", 0, nil), file("f", 0, nil)}, "f: duplicate entry"},
		{"dir over file", []Entry{file("f", 0, nil), {Path: "f", Type: TypeDir}}, "f: duplicate entry"},
		{"file over dir", []Entry{file("d/x", 0, nil), file("d", 0, nil)}, "d: file entry at a path that earlier entries use as a directory"},
		{"parent is file", []Entry{file("f", 0, nil), file("f/x", 0, nil)}, "f/x: parent f is a file"},
		{"root not dir", []Entry{file(".", 0, nil)}, "the root must be a directory"},
		{"empty symlink", []Entry{{Path: "l", Type: TypeSymlink}}, "l: symlink target"},
		{"long symlink", []Entry{{Path: "l", Type: TypeSymlink, Linkname: strings.Repeat("x", 4096)}}, "l: symlink target"},
		{"device", []Entry{{Path: "dev", Type: TypeCharDevice, DevMajor: 5000}}, "dev: device number 5000:0"},
		{"xattr prefix", []Entry{{Path: "x", Type: TypeDir, Xattrs: map[string]string{"system.posix_acl_access": "x"}}}, `x: xattr "system.posix_acl_access"`},
		{"hardlink missing", []Entry{{Path: "h", Type: TypeHardlink, Linkname: "nowhere"}}, "h: hardlink target nowhere is not in the image"},
		{"hardlink to dir", []Entry{{Path: "d", Type: TypeDir}, {Path: "h", Type: TypeHardlink, Linkname: "d"}}, "h: hardlink target d is a directory"},
		{"hardlink loop", []Entry{{Path: "a", Type: TypeHardlink, Linkname: "b"}, {Path: "b", Type: TypeHardlink, Linkname: "a"}}, "hardlink loop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m memFile
			w, err := NewWriter(&m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var first error
			for _, e := range tc.entries {
				if err := w.Add(e); err != nil {
					first = err
					break
				}
			}
			closeErr := w.Close()
			if first == nil {
				first = closeErr
			} else if !errors.Is(closeErr, first) {
				t.Errorf("Close returned %v, want the Add error %v", closeErr, first)
			}
			if first == nil || !strings.Contains(first.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", first, tc.want)
			}
			if err := w.Add(Entry{Path: "later", Type: TypeDir}); err == nil {
				t.Error("Add after a failure succeeded")
			}
		})
	}
}

func TestNewWriterOptionErrors(t *testing.T) {
	for _, opts := range []Options{
		{BlockSize: 1000}, {BlockSize: 2 << 20}, {BlockSize: 3 << 12},
		{Compression: Gzip, Level: 10}, {Compression: Zstd, Level: 23}, {Compression: XZ, Level: 3},
		{Compression: LZ4, Level: 12}, {Compression: LZO}, {Compression: 42},
	} {
		if _, err := NewWriter(&memFile{}, opts); err == nil {
			t.Errorf("NewWriter(%+v) succeeded", opts)
		}
	}
}

// zeroReader yields size bytes: zeros with a few marks, without holding them in memory.
type zeroReader struct {
	off, size int64
	marks     map[int64]string
}

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.off >= z.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), z.size-z.off)]
	clear(p)
	for at, s := range z.marks {
		for i := range len(s) {
			if pos := at + int64(i) - z.off; pos >= 0 && pos < int64(len(p)) {
				p[pos] = s[i]
			}
		}
	}
	z.off += int64(len(p))
	return len(p), nil
}

// hugeFile is a sparse file over 4 GiB with data at the start, across the 4 GiB line and at the end.
func hugeFile() (Entry, map[int64]string) {
	size := int64(4<<30) + 3*DefaultBlockSize + 100
	marks := map[int64]string{0: "start", 4<<30 - 3: "across 4 GiB", size - 4: "end!"}
	return Entry{Path: "huge", Type: TypeRegular, Mode: 0o644, ModTime: testTime, Size: size,
		Body: &zeroReader{size: size, marks: marks}}, marks
}

func TestWriterHugeSparseFile(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 4 GiB of generated zeros")
	}
	e, _ := hugeFile()
	var m memFile
	st := sqtest.Write(t, &m, Options{}, sqtest.Add([]Entry{e})).Stats()
	if st.SparseBytes < 4<<30-2*DefaultBlockSize || len(m.b) > 1<<20 {
		t.Errorf("sparse bytes %d, image %d bytes", st.SparseBytes, len(m.b))
	}
}

// BenchmarkWriter writes the generated test tree with each compressor into memory.
func BenchmarkWriter(b *testing.B) {
	tt := newTestTree(DefaultBlockSize)
	var size int64
	for _, c := range tt.contents {
		size += int64(len(c))
	}
	for _, c := range []Compression{Zstd, Gzip, XZ, LZ4} {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				sqtest.Write(b, &memFile{}, Options{Compression: c}, sqtest.Add(tt.fresh()))
			}
		})
	}
}

// TestDuplicatesHeldAndTakenBack: a duplicate small enough to hold is never written, a larger one
// is written and its blocks taken back; a file of the same size but other content is stored; the
// image is the same whatever the number of workers, and reads back.
func TestDuplicatesHeldAndTakenBack(t *testing.T) {
	small := testContent("small", 3*MinBlockSize+100)
	other := testContent("other", len(small))
	big := testContent("big", HeldBytes+MinBlockSize+5)
	files := []struct {
		path string
		data []byte
	}{{"a", small}, {"b", small}, {"c", other}, {"d", big}, {"e", big}}
	entries := func() []Entry {
		es := []Entry{{Path: ".", Type: TypeDir, Mode: 0o755}}
		for _, f := range files {
			es = append(es, Entry{Path: f.path, Type: TypeRegular, Mode: 0o644, Size: int64(len(f.data)), Body: bytes.NewReader(f.data)})
		}
		return es
	}
	opts := Options{BlockSize: MinBlockSize, Compression: Gzip, Level: 1, ModTime: testModTime}
	img := buildImage(t, opts, entries())
	opts.Workers = 1
	if one := buildImage(t, opts, entries()); !bytes.Equal(one, img) {
		t.Error("the image depends on the number of workers")
	}
	opts.NoDuplicates = true
	if all := buildImage(t, opts, entries()); len(img) >= len(all)-len(big)/2 {
		t.Errorf("image %d bytes, %d without duplicate removal: the copies were stored", len(img), len(all))
	}
	r, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if got, err := r.ReadFile(f.path); err != nil || !bytes.Equal(got, f.data) {
			t.Errorf("%s: read %d bytes (%v), want its %d", f.path, len(got), err, len(f.data))
		}
	}
}
