package squashfs_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path"
	"strings"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
)

// testTime is the mtime of most test entries; implicit directories get testModTime.
const (
	testTime    = 1700000000
	testModTime = 1600000000
)

// testContent makes deterministic content: a mix of text and random bytes, so blocks compress
// somewhat but not entirely.
func testContent(seed string, size int) []byte {
	var s uint64
	for _, c := range seed {
		s = s*131 + uint64(c)
	}
	r := rand.New(rand.NewPCG(s, uint64(size)))
	b := make([]byte, size)
	for i := 0; i < size; {
		n := min(size-i, 64+r.IntN(512))
		if r.IntN(2) == 0 {
			for j := range n {
				b[i+j] = byte(r.UintN(256))
			}
		} else {
			copy(b[i:i+n], strings.Repeat(seed+" lorem ipsum ", n/8+1))
		}
		i += n
	}
	return b
}

// capV2 is a security.capability value (VFS_CAP_REVISION_2, cap_net_raw permitted + effective).
var capV2 = string([]byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// testTree is a generated tree covering every entry type and the layout corner cases. Entries
// come in an order that exercises implicit parents, late directories and forward hardlinks.
type testTree struct {
	entries  []Entry
	contents map[string][]byte
}

func newTestTree(blockSize int) *testTree {
	t := &testTree{contents: map[string][]byte{}}
	dir := func(p string, mode, uid, gid uint32, x map[string]string) {
		t.entries = append(t.entries, Entry{Path: p, Type: TypeDir, Mode: mode, UID: uid, GID: gid, ModTime: testTime, Xattrs: x})
	}
	file := func(p string, mode, uid uint32, content []byte, x map[string]string) {
		t.contents[p] = content
		t.entries = append(t.entries, Entry{Path: p, Type: TypeRegular, Mode: mode, UID: uid, GID: uid, ModTime: testTime + int64(len(p)),
			Size: int64(len(content)), Xattrs: x})
	}
	other := func(e Entry) {
		e.ModTime = testTime - 5
		if e.Mode == 0 {
			e.Mode = 0o644
		}
		t.entries = append(t.entries, e)
	}
	dir(".", 0o755, 0, 0, nil)
	dir("d", 0o750, 1000, 1000, nil)
	file("d/empty", 0o644, 0, nil, nil)
	file("d/small", 0o644, 1000, testContent("small", 100), nil)
	file("d/exact", 0o600, 0, testContent("exact", blockSize), nil)
	multi := testContent("multi", 3*blockSize+123)
	file("d/multi", 0o644, 0, multi, nil)
	file("d/multi-dup", 0o644, 0, bytes.Clone(multi), nil)
	file("d/small-dup", 0o644, 0, testContent("small", 100), nil)
	sparse := make([]byte, 4*blockSize+77)
	copy(sparse[blockSize+10:], testContent("sparse", 1000))
	file("sparse", 0o644, 0, sparse, nil)
	file("random", 0o644, 0, randomBytes(2*blockSize+5), nil)
	file("bin/su", 0o4755, 0, testContent("su", 5000), nil)
	file("bin/sg", 0o2755, 0, testContent("sg", 50), nil)
	dir("tmp", 0o1777, 0, 0, nil)
	other(Entry{Path: "d/link", Type: TypeSymlink, Mode: 0o777, Linkname: "small"})
	other(Entry{Path: "longlink", Type: TypeSymlink, Mode: 0o777, Linkname: strings.Repeat("abcdefghij/", 363) + "xy"})
	other(Entry{Path: "d/hard", Type: TypeHardlink, Linkname: "d/small"})
	other(Entry{Path: "a-hard", Type: TypeHardlink, Linkname: "z/late"}) // target arrives later
	other(Entry{Path: "dev/null", Type: TypeCharDevice, Mode: 0o666, DevMajor: 1, DevMinor: 3})
	other(Entry{Path: "dev/sda", Type: TypeBlockDevice, Mode: 0o660, GID: 6, DevMajor: 8, DevMinor: 0})
	other(Entry{Path: "fifo", Type: TypeFIFO, Mode: 0o600})
	other(Entry{Path: "sock", Type: TypeSocket, Mode: 0o755})
	dir("names", 0o755, 0, 0, nil)
	file("names/"+strings.Repeat("n", 255), 0o644, 0, testContent("long name", 10), nil)
	for i := range 3000 {
		file(fmt.Sprintf("many/f%04d", i), 0o644, uint32(i%7), testContent(fmt.Sprint(i), i%50), nil)
		if i%500 == 0 {
			dir(fmt.Sprintf("many/sub%04d", i), 0o755, 0, 0, nil)
		}
	}
	file("deep/"+strings.Repeat("a/", 100)+"bottom", 0o644, 0, testContent("deep", 10), nil)
	xa := map[string]string{"user.a": "1", "trusted.b": "two", "security.capability": capV2}
	dir("x", 0o755, 0, 0, map[string]string{"user.dir": "yes"})
	file("x/file", 0o755, 0, testContent("x", 10), xa)
	file("x/file2", 0o755, 0, testContent("x2", 10), map[string]string{"user.a": "1", "trusted.b": "two", "security.capability": capV2})
	other(Entry{Path: "x/link", Type: TypeSymlink, Mode: 0o777, Linkname: "file", Xattrs: map[string]string{"trusted.sym": "s"}})
	file("implicit/sub/file", 0o644, 0, testContent("implicit", 3), nil)
	file("late/child", 0o644, 0, testContent("late", 3), nil)
	dir("late", 0o700, 5, 6, nil) // after its child: these attributes apply
	file("z/late", 0o640, 0, testContent("z", 7), nil)
	return t
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// fresh returns the entries with new bodies, ready for one Writer.
func (t *testTree) fresh() []Entry {
	out := make([]Entry, len(t.entries))
	for i, e := range t.entries {
		if e.Type == TypeRegular {
			e.Body = bytes.NewReader(t.contents[e.Path])
		}
		out[i] = e
	}
	return out
}

// want is the expected state of one path in the image.
type want struct {
	Entry
	nlink   uint32
	content []byte
}

// expected computes what the image must show: implicit parents, late directory attributes,
// hardlinks sharing their target's inode, and link counts.
func (t *testTree) expected() map[string]*want {
	m := map[string]*want{".": {Entry: Entry{Path: ".", Type: TypeDir, Mode: 0o755, ModTime: testModTime}}}
	var links []Entry
	for _, e := range t.entries {
		for p := path.Dir(e.Path); e.Path != "." && m[p] == nil; p = path.Dir(p) {
			m[p] = &want{Entry: Entry{Path: p, Type: TypeDir, Mode: 0o755, ModTime: testModTime}}
		}
		if e.Type == TypeHardlink {
			links = append(links, e)
			continue
		}
		m[e.Path] = &want{Entry: e, nlink: 1, content: t.contents[e.Path]}
	}
	for _, l := range links {
		target := m[l.Linkname]
		target.nlink++
		m[l.Path] = target
	}
	for p, w := range m {
		if w.Type == TypeDir {
			w.nlink += 2
		}
		if p != "." && w.Type == TypeDir {
			m[path.Dir(p)].nlink++
		}
	}
	return m
}
