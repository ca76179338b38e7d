package squashfs_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
	"golang.org/x/sys/unix"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// allCompressors lists the compressors with a non-default level where one exists.
var allCompressors = []Options{
	{Compression: Zstd}, {Compression: Gzip}, {Compression: Gzip, Level: 1}, {Compression: XZ},
	{Compression: LZ4}, {Compression: LZ4, Level: 9}, {Compression: Zstd, Level: 19},
}

// featureVariants turn features off and change the block size.
var featureVariants = []Options{
	{NoFragments: true, NoDuplicates: true}, {NoExport: true, NoXattrs: true},
	{BlockSize: MinBlockSize}, {BlockSize: MaxBlockSize, Compression: Gzip},
}

func variantName(o Options) string {
	name := fmt.Sprintf("%v-%d", cmp.Or(o.Compression, Zstd), o.Level)
	for _, f := range []struct {
		on  bool
		tag string
	}{{o.NoFragments, "nofrag"}, {o.NoDuplicates, "nodup"}, {o.NoExport, "noexport"}, {o.NoXattrs, "noxattr"}, {o.BlockSize != 0, fmt.Sprint("bs", o.BlockSize)}} {
		if f.on {
			name += "-" + f.tag
		}
	}
	return name
}

// listing runs unsquashfs -lln with times in UTC and returns one line per path, keyed by the
// path relative to the root ("." for the root).
func unsquashfsEntries(t *testing.T, img string) map[string]string {
	t.Helper()
	cmd := exec.Command("unsquashfs", "-lln", img)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln %s: %v", img, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		sub := lineRE.FindStringSubmatch(line)
		if sub == nil {
			t.Fatalf("unparsed unsquashfs line %q", line)
		}
		p := strings.TrimPrefix(sub[5], "/")
		if p == "" {
			p = "."
		}
		m[p] = strings.Join(strings.Fields(line), " ") // column widths vary
	}
	return m
}

// lineRE splits an unsquashfs -lln line: mode, uid/gid, size or device, date, path.
var lineRE = regexp.MustCompile(`^(\S+) (\d+/\d+) +(\d+|\d+, *\d+) (\S+ \S+) squashfs-root(.*?)(?: -> .*)?$`)

// wantLine formats what unsquashfs -lln prints for w; dirSize is taken from the image, since
// directory sizes depend on the directory table layout.
func wantLine(p string, w *want, dirSize string) string {
	size := fmt.Sprint(len(w.content))
	switch w.Type {
	case TypeDir:
		size = dirSize
	case TypeSymlink:
		size = fmt.Sprint(len(w.Linkname))
	case TypeCharDevice, TypeBlockDevice:
		size = fmt.Sprintf("%d, %d", w.DevMajor, w.DevMinor)
	case TypeFIFO, TypeSocket:
		size = "0"
	}
	name := "squashfs-root"
	if p != "." {
		name += "/" + p
	}
	if w.Type == TypeSymlink {
		name += " -> " + w.Linkname
	}
	ug := fmt.Sprintf("%d/%d", w.UID, w.GID)
	date := time.Unix(w.ModTime, 0).UTC().Format("2006-01-02 15:04")
	return fmt.Sprintf("%s %s %s %s %s", modeString(w.Type, w.Mode), ug, size, date, name)
}

// modeString is ls's mode column.
func modeString(t Type, mode uint32) string {
	c := map[Type]byte{TypeDir: 'd', TypeRegular: '-', TypeSymlink: 'l', TypeCharDevice: 'c',
		TypeBlockDevice: 'b', TypeFIFO: 'p', TypeSocket: 's'}[t]
	b := []byte{c}
	for i, special := range []struct {
		bit  uint32
		x, X byte
	}{{0o4000, 's', 'S'}, {0o2000, 's', 'S'}, {0o1000, 't', 'T'}} {
		shift := uint(6 - 3*i)
		r, w, x := mode>>(shift+2)&1, mode>>(shift+1)&1, mode>>shift&1
		b = append(b, "-r"[r], "-w"[w])
		switch {
		case mode&special.bit != 0 && x == 1:
			b = append(b, special.x)
		case mode&special.bit != 0:
			b = append(b, special.X)
		default:
			b = append(b, "-x"[x])
		}
	}
	return string(b)
}

// dirSize extracts the size column of a directory line.
func dirSize(line string) string {
	if sub := lineRE.FindStringSubmatch(line); sub != nil {
		return sub[3]
	}
	return "?"
}

// checkListing compares unsquashfs's listing of the image with the expected tree.
func checkListing(t *testing.T, img string, exp map[string]*want) {
	t.Helper()
	got := unsquashfsEntries(t, img)
	for p, w := range exp {
		line, ok := got[p]
		if !ok {
			t.Errorf("%s: missing from the image", p)
			continue
		}
		if want := wantLine(p, w, dirSize(line)); line != want {
			t.Errorf("%s:\n got %q\nwant %q", p, line, want)
		}
	}
	for p := range got {
		if exp[p] == nil {
			t.Errorf("%s: in the image but not expected", p)
		}
	}
}

func TestWriterUnsquashfsListing(t *testing.T) {
	testutil.NeedCommands(t, "unsquashfs")
	for _, opts := range append(allCompressors, featureVariants...) {
		t.Run(variantName(opts), func(t *testing.T) {
			tt := newTestTree(int(cmp.Or(opts.BlockSize, DefaultBlockSize)))
			opts.ModTime = testModTime
			img := sqtest.WriteImage(t, opts, tt.fresh())
			checkListing(t, img, tt.expected())
			checkSuperblock(t, img, opts)
		})
	}
}

// checkSuperblock checks unsquashfs -s for the compressor and the counts.
func checkSuperblock(t *testing.T, img string, opts Options) {
	t.Helper()
	out, err := exec.Command("unsquashfs", "-s", img).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -s: %v\n%s", err, out)
	}
	s := string(out)
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	wants := []string{"Compression " + cmp.Or(opts.Compression, Zstd).String(), fmt.Sprintf("Block size %d\n", bs)}
	pick := func(off bool, no, yes string) {
		if off {
			wants = append(wants, no)
		} else {
			wants = append(wants, yes)
		}
	}
	pick(opts.NoExport, "Filesystem is not exportable via NFS", "Filesystem is exportable via NFS")
	pick(opts.NoDuplicates, "Duplicates are not removed", "Duplicates are removed")
	pick(opts.NoFragments, "Fragments are not stored", "Always-use-fragments option is specified")
	pick(opts.NoXattrs, "Xattrs are not stored", "Number of xattr ids 3")
	for _, want := range wants {
		if !strings.Contains(s, want) {
			t.Errorf("unsquashfs -s lacks %q:\n%s", want, s)
		}
	}
}

// TestWriterUnsquashfsExtract extracts every compressor's image and compares contents, link
// counts and, as root, owners and xattrs with the generated tree.
func TestWriterUnsquashfsExtract(t *testing.T) {
	testutil.NeedCommands(t, "unsquashfs")
	tt := newTestTree(DefaultBlockSize)
	exp := tt.expected()
	for _, opts := range allCompressors {
		t.Run(fmt.Sprintf("%v-%d", opts.Compression, opts.Level), func(t *testing.T) {
			opts.ModTime = testModTime
			img := sqtest.WriteImage(t, opts, tt.fresh())
			dir := filepath.Join(t.TempDir(), "x")
			args := []string{"-d", dir, "-no-progress", img}
			if os.Geteuid() != 0 {
				args = append([]string{"-no-xattrs"}, args...)
			}
			exp := exp
			out, err := exec.Command("unsquashfs", args...).CombinedOutput()
			if os.Geteuid() != 0 {
				// A plain user cannot make device nodes: unsquashfs says so and exits 2.
				if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 2 {
					err = nil
				}
				exp = withoutDevices(exp)
			}
			if err != nil {
				t.Fatalf("unsquashfs: %v\n%s", err, out)
			}
			checkDiskTree(t, dir, exp, compareOpts{owners: os.Geteuid() == 0, xattrs: os.Geteuid() == 0})
		})
	}
}

func withoutDevices(m map[string]*want) map[string]*want {
	out := map[string]*want{}
	for p, w := range m {
		if w.Type != TypeCharDevice && w.Type != TypeBlockDevice {
			out[p] = w
		}
	}
	return out
}

type compareOpts struct {
	owners, xattrs bool
	// squashfuse up to 0.1.105 (Debian 12's) swaps the trusted. and security. prefixes, on
	// mksquashfs images too (vasi/squashfuse#78, fixed by #83): accept either naming there.
	prefixSwapOK bool
}

// compareTree checks a mounted or extracted tree against the expected entries.
func checkDiskTree(t *testing.T, root string, exp map[string]*want, o compareOpts) {
	t.Helper()
	seen := 0
	err := filepath.Walk(root, func(full string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, full)
		seen++
		w := exp[rel]
		if w == nil {
			t.Errorf("%s: unexpected in the tree", rel)
			return nil
		}
		compareOne(t, full, rel, w, o)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(exp) {
		t.Errorf("tree has %d paths, want %d", seen, len(exp))
	}
}

func compareOne(t *testing.T, full, rel string, w *want, o compareOpts) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		t.Error(err)
		return
	}
	fmtType := map[Type]uint32{TypeDir: unix.S_IFDIR, TypeRegular: unix.S_IFREG, TypeSymlink: unix.S_IFLNK,
		TypeCharDevice: unix.S_IFCHR, TypeBlockDevice: unix.S_IFBLK, TypeFIFO: unix.S_IFIFO, TypeSocket: unix.S_IFSOCK}[w.Type]
	if st.Mode&unix.S_IFMT != fmtType {
		t.Errorf("%s: type %#o, want %v", rel, st.Mode&unix.S_IFMT, w.Type)
		return
	}
	mask := uint32(0o7777)
	if !o.owners {
		mask = 0o1777 // unsquashfs run by a plain user cannot chown, so it drops setuid and setgid
	}
	if w.Type != TypeSymlink && st.Mode&mask != w.Mode&mask {
		t.Errorf("%s: mode %#o, want %#o", rel, st.Mode&0o7777, w.Mode)
	}
	if o.owners && (st.Uid != w.UID || st.Gid != w.GID) {
		t.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, w.UID, w.GID)
	}
	if w.Type != TypeDir && st.Mtim.Sec != w.ModTime {
		t.Errorf("%s: mtime %d, want %d", rel, st.Mtim.Sec, w.ModTime)
	}
	if w.Type != TypeDir && uint32(st.Nlink) != w.nlink {
		t.Errorf("%s: nlink %d, want %d", rel, st.Nlink, w.nlink)
	}
	switch w.Type {
	case TypeRegular:
		got, err := os.ReadFile(full)
		if err != nil || !bytes.Equal(got, w.content) {
			t.Errorf("%s: content differs (%d bytes, want %d; err %v)", rel, len(got), len(w.content), err)
		}
	case TypeSymlink:
		if got, err := os.Readlink(full); err != nil || got != w.Linkname {
			t.Errorf("%s: target %q, want %q (%v)", rel, got, w.Linkname, err)
		}
	case TypeCharDevice, TypeBlockDevice:
		if unix.Major(st.Rdev) != w.DevMajor || unix.Minor(st.Rdev) != w.DevMinor {
			t.Errorf("%s: device %d:%d, want %d:%d", rel, unix.Major(st.Rdev), unix.Minor(st.Rdev), w.DevMajor, w.DevMinor)
		}
	}
	if o.xattrs {
		want := w.Xattrs
		if o.prefixSwapOK && !xattrsMatch(full, want) {
			want = swapTrustedSecurity(want)
		}
		compareXattrs(t, full, rel, want)
	}
}

func xattrsMatch(full string, want map[string]string) bool {
	ok := true
	compareXattrs(&silentT{ok: &ok}, full, "", want)
	return ok
}

// silentT records a failure without reporting it.
type silentT struct {
	testing.TB
	ok *bool
}

func (s *silentT) Helper()               {}
func (s *silentT) Errorf(string, ...any) { *s.ok = false }

func swapTrustedSecurity(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, "trusted."); ok {
			k = "security." + rest
		} else if rest, ok := strings.CutPrefix(k, "security."); ok {
			k = "trusted." + rest
		}
		out[k] = v
	}
	return out
}

func compareXattrs(t testing.TB, full, rel string, want map[string]string) {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, err := unix.Llistxattr(full, buf)
	if errors.Is(err, unix.EOPNOTSUPP) {
		n, err = 0, nil // the kernel's answer for an image without an xattr table
	}
	if err != nil {
		t.Errorf("%s: list xattrs: %v", rel, err)
		return
	}
	var names []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name != "" && !strings.HasPrefix(name, "system.") {
			names = append(names, name)
		}
	}
	var wantNames []string
	for name := range want {
		wantNames = append(wantNames, name)
	}
	slices.Sort(names)
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("%s: xattrs %q, want %q", rel, names, wantNames)
		return
	}
	for _, name := range names {
		n, err := unix.Lgetxattr(full, name, buf)
		if err != nil || string(buf[:n]) != want[name] {
			t.Errorf("%s: xattr %s = %q, want %q (%v)", rel, name, buf[:max(n, 0)], want[name], err)
		}
	}
}
