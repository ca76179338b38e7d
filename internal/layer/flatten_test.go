package layer

import (
	"archive/tar"
	"strings"
	"testing"
	"time"

	lt "github.com/hpcctl/hpcctl/internal/testutil/layertest"
)

type F = lt.File

func TestFlatten(t *testing.T) {
	long := strings.Repeat("n", 256)
	tests := []struct {
		name   string
		layers [][]F // bottom first
		opts   Options
		want   map[string]string
		err    string // substring of the expected error
	}{
		{
			name: "single layer of every type",
			layers: [][]F{{lt.Dir("d"), lt.Reg("d/f", "x"), lt.Symlink("d/s", "f"), {Name: "p", Type: tar.TypeFifo},
				{Name: "blk", Type: tar.TypeBlock, Devmajor: 8, Devminor: 1}, lt.CharDev("null", 1, 3), {Name: "old", Type: tar.TypeRegA, Body: "a"}}}, //nolint:staticcheck // SA1019: old archives still carry it
			want: map[string]string{"d": "dir 755", "d/f": `file 644 "x"`, "d/s": "symlink f", "p": "fifo",
				"blk": "block device 8:1", "null": "character device 1:3", "old": `file 644 "a"`},
		},
		{
			name: "modes owners and root attributes",
			layers: [][]F{{{Name: "./", Type: tar.TypeDir, Mode: 0o700}, {Name: "su", Mode: 0o4755, UID: 1000, GID: 100, Body: "s"},
				{Name: "tmp", Type: tar.TypeDir, Mode: 0o1777}, {Name: "sg", Mode: 0o2711}}},
			want: map[string]string{".": "dir 700", "su": `file 4755 "s" 1000:100`, "tmp": "dir 1777", "sg": `file 2711 ""`},
		},
		{
			name:   "leading ./ and / are stripped",
			layers: [][]F{{lt.Reg("./a", "1"), lt.Reg("/abs/b", "2"), lt.Reg("c//d", "3")}},
			want:   map[string]string{"a": `file 644 "1"`, "abs/b": `file 644 "2"`, "c/d": `file 644 "3"`},
		},
		{
			name:   "symlinks out of the root are stored, not followed",
			layers: [][]F{{lt.Symlink("etc", "/etc"), lt.Symlink("up", "../../../x"), lt.Reg("etc/passwd", "inside")}},
			want:   map[string]string{"up": "symlink ../../../x", "etc/passwd": `file 644 "inside"`},
		},
		{
			name:   "a symlinked directory in a lower layer is replaced, never followed",
			layers: [][]F{{lt.Symlink("etc", "/host/etc")}, {lt.Reg("etc/passwd", "inside")}},
			want:   map[string]string{"etc/passwd": `file 644 "inside"`},
		},
		{
			name:   "upper file wins",
			layers: [][]F{{lt.Reg("f", "low")}, {lt.Reg("f", "up")}},
			want:   map[string]string{"f": `file 644 "up"`},
		},
		{
			name:   "whiteout of a file",
			layers: [][]F{{lt.Reg("a", "1"), lt.Reg("b", "2")}, {lt.Whiteout("a")}},
			want:   map[string]string{"b": `file 644 "2"`},
		},
		{
			name:   "whiteout of a directory hides its subtree",
			layers: [][]F{{lt.Dir("d"), lt.Reg("d/x", "1"), lt.Dir("d/e"), lt.Reg("d/e/y", "2"), lt.Reg("dd", "3")}, {lt.Whiteout("d")}},
			want:   map[string]string{"dd": `file 644 "3"`},
		},
		{
			name:   "whiteout in the same layer does not hide that layer's file",
			layers: [][]F{{lt.Reg("a", "low")}, {lt.Reg("a", "up"), lt.Whiteout("a")}},
			want:   map[string]string{"a": `file 644 "up"`},
		},
		{
			name:   "whiteout two layers down",
			layers: [][]F{{lt.Reg("a/x", "1")}, {lt.Whiteout("a")}, {lt.Reg("b", "2")}},
			want:   map[string]string{"b": `file 644 "2"`},
		},
		{
			name: "opaque directory with its own entry",
			layers: [][]F{{{Name: "d", Type: tar.TypeDir, Mode: 0o700}, lt.Reg("d/old", "1"), lt.Reg("keep", "k")},
				{{Name: "d", Type: tar.TypeDir, Mode: 0o750}, lt.Opaque("d"), lt.Reg("d/new", "2")}},
			want: map[string]string{"d": "dir 750", "d/new": `file 644 "2"`, "keep": `file 644 "k"`},
		},
		{
			name: "opaque directory keeps the lower directory's attributes",
			layers: [][]F{{{Name: "d", Type: tar.TypeDir, Mode: 0o700}, lt.Reg("d/old", "1"), lt.Reg("d/sub/x", "2")},
				{lt.Opaque("d")}},
			want: map[string]string{"d": "dir 700"},
		},
		{
			name:   "opaque root",
			layers: [][]F{{lt.Reg("a", "1"), lt.Dir(".")}, {lt.Opaque("."), lt.Reg("b", "2")}},
			want:   map[string]string{".": "dir 755", "b": `file 644 "2"`},
		},
		{
			name:   "file replacing a directory",
			layers: [][]F{{lt.Dir("d"), lt.Reg("d/x", "1")}, {lt.Reg("d", "file")}},
			want:   map[string]string{"d": `file 644 "file"`},
		},
		{
			name:   "directory replacing a file",
			layers: [][]F{{lt.Reg("d", "file")}, {{Name: "d", Type: tar.TypeDir, Mode: 0o711}, lt.Reg("d/x", "1")}},
			want:   map[string]string{"d": "dir 711", "d/x": `file 644 "1"`},
		},
		{
			name:   "implied directory replacing a file",
			layers: [][]F{{lt.Reg("d", "file")}, {lt.Reg("d/x", "1")}},
			want:   map[string]string{"d/x": `file 644 "1"`},
		},
		{
			name: "file between two directories cuts the lower one off",
			layers: [][]F{{{Name: "d", Type: tar.TypeDir, Mode: 0o700}, lt.Reg("d/old", "1")}, {lt.Reg("d", "f")},
				{lt.Reg("d/new", "2")}},
			want: map[string]string{"d/new": `file 644 "2"`},
		},
		{
			name: "directories merge and the upper attributes win",
			layers: [][]F{{{Name: "d", Type: tar.TypeDir, Mode: 0o700}, lt.Reg("d/a", "1")},
				{{Name: "d", Type: tar.TypeDir, Mode: 0o755, UID: 5}, lt.Reg("d/b", "2")}},
			want: map[string]string{"d": "dir 755 5:0", "d/a": `file 644 "1"`, "d/b": `file 644 "2"`},
		},
		{
			name:   "implied upper directory keeps lower attributes",
			layers: [][]F{{{Name: "d", Type: tar.TypeDir, Mode: 0o700}, lt.Reg("d/a", "1")}, {lt.Reg("d/b", "2")}},
			want:   map[string]string{"d": "dir 700", "d/a": `file 644 "1"`, "d/b": `file 644 "2"`},
		},
		{
			name: "re-adding a whited-out file and directory",
			layers: [][]F{{lt.Reg("f", "old"), lt.Reg("d/old", "1")}, {lt.Whiteout("f"), lt.Whiteout("d")},
				{lt.Reg("f", "new"), lt.Dir("d"), lt.Reg("d/new", "2")}},
			want: map[string]string{"f": `file 644 "new"`, "d": "dir 755", "d/new": `file 644 "2"`},
		},
		{
			name:   "duplicate names in one layer: the last wins",
			layers: [][]F{{lt.Reg("f", "first"), lt.Reg("f", "second"), {Name: "d", Type: tar.TypeDir, Mode: 0o700}, {Name: "d", Type: tar.TypeDir, Mode: 0o750}}},
			want:   map[string]string{"f": `file 644 "second"`, "d": "dir 750"},
		},
		{
			name:   "duplicate: file then directory, directory then file",
			layers: [][]F{{lt.Reg("a", "x"), lt.Dir("a"), lt.Dir("b"), lt.Reg("b/in", "gone"), lt.Reg("b", "y")}},
			want:   map[string]string{"a": "dir 755", "b": `file 644 "y"`},
		},
		{
			name:   "duplicate: a file replaced by an implied directory in the same layer",
			layers: [][]F{{lt.Reg("low/keep", "k")}, {lt.Reg("a", "x"), lt.Reg("a/b", "y")}},
			want:   map[string]string{"a/b": `file 644 "y"`, "low/keep": `file 644 "k"`},
		},
		{
			name:   "same-layer file then implied directory hides the lower directory",
			layers: [][]F{{{Name: "a", Type: tar.TypeDir, Mode: 0o700}, lt.Reg("a/old", "1")}, {lt.Reg("a", "x"), lt.Reg("a/b", "y")}},
			want:   map[string]string{"a/b": `file 644 "y"`},
		},
		{
			name:   "hardlink in one layer",
			layers: [][]F{{lt.Reg("f", "data"), lt.Hardlink("l", "f"), lt.Hardlink("./m", "./f")}},
			want:   map[string]string{"f": `file 644 "data"`, "l": "hardlink f", "m": "hardlink f"},
		},
		{
			name:   "hardlink chain resolves to the inode",
			layers: [][]F{{lt.Reg("f", "data"), lt.Hardlink("l", "f"), lt.Hardlink("m", "l")}},
			want:   map[string]string{"f": `file 644 "data"`, "l": "hardlink f", "m": "hardlink f"},
		},
		{
			name:   "hardlink whose target an upper layer whites out becomes the copy",
			layers: [][]F{{lt.Reg("f", "data"), lt.Hardlink("l", "f"), lt.Hardlink("k", "f")}, {lt.Whiteout("f")}},
			want:   map[string]string{"k": `file 644 "data"`, "l": "hardlink k"},
		},
		{
			name:   "hardlink whose target an upper layer replaces keeps the old content",
			layers: [][]F{{lt.Reg("f", "old"), lt.Hardlink("l", "f")}, {lt.Reg("f", "new")}},
			want:   map[string]string{"f": `file 644 "new"`, "l": `file 644 "old"`},
		},
		{
			name:   "hardlink whose target is replaced later in the same layer keeps the old content",
			layers: [][]F{{lt.Reg("f", "old"), lt.Hardlink("l", "f"), lt.Reg("f", "new")}},
			want:   map[string]string{"f": `file 644 "new"`, "l": `file 644 "old"`},
		},
		{
			name:   "hardlink to a lower layer's file",
			layers: [][]F{{lt.Reg("f", "data")}, {lt.Hardlink("l", "f")}},
			want:   map[string]string{"f": `file 644 "data"`, "l": "hardlink f"},
		},
		{
			name:   "hardlink to a lower file that the link's own layer then replaces",
			layers: [][]F{{lt.Reg("f", "old")}, {lt.Hardlink("l", "f"), lt.Hardlink("m", "l"), lt.Reg("f", "new")}},
			want:   map[string]string{"f": `file 644 "new"`, "l": `file 644 "old"`, "m": "hardlink l"},
		},
		{
			name:   "hardlink to a lower file that a middle layer replaced",
			layers: [][]F{{lt.Reg("f", "v1")}, {lt.Reg("f", "v2")}, {lt.Hardlink("l", "f")}, {lt.Whiteout("f")}},
			want:   map[string]string{"l": `file 644 "v2"`},
		},
		{
			name:   "hardlink through a lower hardlink",
			layers: [][]F{{lt.Reg("f", "data"), lt.Hardlink("g", "f")}, {lt.Hardlink("l", "g")}},
			want:   map[string]string{"f": `file 644 "data"`, "g": "hardlink f", "l": "hardlink f"},
		},
		{
			name:   "hidden hardlinks are dropped",
			layers: [][]F{{lt.Reg("f", "data"), lt.Hardlink("l", "f")}, {lt.Whiteout("l")}},
			want:   map[string]string{"f": `file 644 "data"`},
		},
		{
			name:   "hardlink to a symlink",
			layers: [][]F{{lt.Symlink("s", "/x"), lt.Hardlink("l", "s")}, {lt.Whiteout("s")}},
			want:   map[string]string{"l": "symlink /x"},
		},
		{
			name:   "hardlink to a missing target",
			layers: [][]F{{lt.Reg("f", "")}, {lt.Hardlink("l", "nope")}},
			err:    `sha256:l1: hardlink "l": target "nope" exists in no lower layer`,
		},
		{
			name:   "hardlink to a directory",
			layers: [][]F{{lt.Dir("d"), lt.Hardlink("l", "d")}},
			err:    `hardlink to directory "d"`,
		},
		{
			name:   "hardlink to a lower directory",
			layers: [][]F{{lt.Dir("d")}, {lt.Hardlink("l", "d")}},
			err:    `target "d" is a directory in layer 1/2 sha256:l0`,
		},
		{
			name:   "hardlink to a file a middle layer removed",
			layers: [][]F{{lt.Reg("f", "")}, {lt.Whiteout("f")}, {lt.Hardlink("l", "f")}},
			err:    `target "f" was removed in layer 2/3 sha256:l1`,
		},
		{
			name:   "hardlink to a file its own layer whites out",
			layers: [][]F{{lt.Reg("f", "")}, {lt.Whiteout("f"), lt.Hardlink("l", "f")}},
			err:    `entry "l": hardlink target "f" is removed by a whiteout or opaque marker in this layer`,
		},
		{
			name:   "hardlink to a file its own layer replaced before the link",
			layers: [][]F{{lt.Reg("d/f", "")}, {lt.Reg("d", "file"), lt.Dir("d"), lt.Hardlink("l", "d/f")}},
			err:    `hardlink target "d/f" was removed earlier in this layer`,
		},
		{
			name:   "hardlink to a directory its own layer implies",
			layers: [][]F{{lt.Reg("d", "file")}, {lt.Reg("d/x", ""), lt.Hardlink("l", "d")}},
			err:    `hardlink to "d", a directory this layer implies`,
		},
		{
			name:   "hardlink to a lower directory implied by a middle layer",
			layers: [][]F{{lt.Reg("d", "file")}, {lt.Reg("d/x", "")}, {lt.Hardlink("l", "d")}},
			err:    `target "d" is a directory in layer 2/3 sha256:l1`,
		},
		{
			name:   "hidden hardlink with a missing target is still an error",
			layers: [][]F{{lt.Reg("f", "")}, {lt.Hardlink("l", "nope")}, {lt.Whiteout("l")}},
			err:    `target "nope" exists in no lower layer`,
		},
		{
			name:   "directory implied only by a whiteout exists",
			layers: [][]F{{lt.Reg("x", "")}, {lt.Whiteout("d/gone")}},
			want:   map[string]string{"x": `file 644 ""`, "d": "dir 755"},
		},
		{
			name:   "directory implied by hidden entries still exists",
			layers: [][]F{{lt.Reg("d/x", "")}, {lt.Whiteout("d/x")}},
			want:   map[string]string{"d": "dir 755"},
		},
		{
			name:   "hardlink to the root",
			layers: [][]F{{lt.Hardlink("l", "./")}},
			err:    "hardlink to the root directory",
		},
		{
			name: "xattrs in kept namespaces",
			layers: [][]F{{{Name: "f", Xattrs: map[string]string{"user.a": "1", "security.capability": "\x01\x00",
				"trusted.t": "2", "system.posix_acl_access": "x", "bogus": "y"}}}},
			want: map[string]string{"f": "file 644 \"\" security.capability=\x01\x00 trusted.t=2 user.a=1"},
		},
		{
			name:   "device nodes skipped by policy still hide lower files",
			layers: [][]F{{lt.Reg("null", "file"), lt.Reg("keep", "")}, {lt.CharDev("null", 1, 3), lt.Hardlink("l", "null")}},
			opts:   Options{Devices: DevicesSkip},
			want:   map[string]string{"keep": `file 644 ""`},
		},
		{
			name:   "device nodes rejected by policy",
			layers: [][]F{{lt.CharDev("dev/null", 1, 3)}},
			opts:   Options{Devices: DevicesReject},
			err:    `sha256:l0: entry "dev/null": device node in image`,
		},
		{
			name:   "aufs metadata is skipped",
			layers: [][]F{{lt.Reg(".wh..wh.aufs", ""), lt.Dir(".wh..wh.plnk"), lt.Reg(".wh..wh.plnk/1.2", "x"), lt.Reg("a", "")}},
			want:   map[string]string{"a": `file 644 ""`},
		},
		{name: "dot-dot escaping the root", layers: [][]F{{lt.Reg("../evil", "x")}}, err: `sha256:l0: entry "../evil": unsafe entry name`},
		{name: "dot-dot inside the path", layers: [][]F{{lt.Reg("a/../../evil", "x")}}, err: `entry "a/../../evil": unsafe entry name`},
		{name: "dot-dot that stays inside is rejected too", layers: [][]F{{lt.Reg("a/../b", "x")}}, err: "leaves the image root"},
		{name: "hardlink target escaping", layers: [][]F{{lt.Hardlink("l", "../etc/shadow")}}, err: `entry "l": hardlink target: unsafe entry name`},
		{name: "name component too long", layers: [][]F{{lt.Reg("d/"+long, "x")}}, err: "name longer than 255 bytes"},
		{name: "whiteout of nothing", layers: [][]F{{lt.Reg("a/.wh.", "")}}, err: "names no file"},
		{name: "whiteout of dot-dot", layers: [][]F{{lt.Reg("a/.wh..", "")}}, err: "names no file"},
		{name: "whiteout used as a directory", layers: [][]F{{lt.Reg(".wh.a/b", "")}}, err: "used as a directory"},
		{name: "root that is not a directory", layers: [][]F{{lt.Reg(".", "x")}}, err: "the root must be a directory"},
		{name: "empty symlink target", layers: [][]F{{lt.Symlink("s", "")}}, err: "symlink target"},
		{name: "negative owner", layers: [][]F{{{Name: "f", UID: -1}}}, err: "owner -1:0 out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entries, _, err := flatten(t, stack(tc.layers...), tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := diffTrees(tc.want, tree(entries)); d != "" {
				t.Errorf("tree differs:%s", d)
			}
		})
	}
}

func TestModTime(t *testing.T) {
	mt := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	entries, _, err := flatten(t, stack([]F{{Name: "f", ModTime: mt}, {Name: "d", Type: tar.TypeDir, ModTime: mt}}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.ModTime != mt.Unix() {
			t.Errorf("%s: mtime %d, want %d", e.Path, e.ModTime, mt.Unix())
		}
	}
}

// TestClassifyNUL checks the name rules below archive/tar, which itself refuses NUL in PAX paths.
func TestClassifyNUL(t *testing.T) {
	for _, name := range []string{"a\x00b", "../x", strings.Repeat("x", 256)} {
		if _, err := classify(&tar.Header{Name: name, Typeflag: tar.TypeReg}); err == nil {
			t.Errorf("classify(%q) accepted it", name)
		}
	}
}
