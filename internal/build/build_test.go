package build

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/testutil/layertest"
	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// twoLayers is a small image: a base layer, and a top layer that removes, replaces and adds.
func twoLayers() ocitest.Image {
	base := layertest.Tar([]layertest.File{
		layertest.Dir("etc"), layertest.Reg("etc/os-release", "base\n"),
		layertest.Dir("opt"), layertest.Reg("opt/old.txt", "old\n"),
		layertest.Reg("gone.txt", "bye\n"),
		{Name: "bin/tool", Mode: 0o4755, Body: "#!/bin/sh\n", UID: 0},
		layertest.Hardlink("bin/tool-link", "bin/tool"),
	})
	top := layertest.Tar([]layertest.File{
		layertest.Whiteout("gone.txt"),
		layertest.Opaque("opt"), layertest.Reg("opt/new.txt", "new\n"),
		layertest.Reg("etc/os-release", "top\n"),
		{Name: "home/user/data", Body: "d", UID: 1000, GID: 1000, Xattrs: map[string]string{"user.origin": "top"}},
	})
	return ocitest.Image{
		Layers: [][]byte{base, top}, Gzip: true,
		Env: []string{"PATH=/bin"}, Cmd: []string{"/bin/tool"}, WorkingDir: "/opt",
		Labels: map[string]string{"from": "image"},
	}
}

func layout(t *testing.T, img ocitest.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	ocitest.WriteLayout(t, dir, "latest", img)
	return "oci:" + dir + ":latest"
}

func options(t *testing.T, source string) Options {
	t.Helper()
	return Options{
		Source: source, Output: filepath.Join(t.TempDir(), "out.sif"),
		CacheDir: t.TempDir(), Version: "test",
	}
}

// openRootfs opens the squashfs inside a built SIF with hpcctl's reader.
func openRootfs(t *testing.T, path string) (*squashfs.Reader, *sif.Description) {
	t.Helper()
	img, err := sif.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := squashfs.Open(io.NewSectionReader(f, img.Offset, img.Size), img.Size)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sif.Describe(path)
	if err != nil {
		t.Fatal(err)
	}
	return r, d
}

func TestBuildFlattensLayers(t *testing.T) {
	opts := options(t, layout(t, twoLayers()))
	opts.Labels = map[string]string{"extra": "yes"}
	res, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	r, d := openRootfs(t, res.Output)
	for name, want := range map[string]string{"etc/os-release": "top\n", "opt/new.txt": "new\n", "bin/tool": "#!/bin/sh\n"} {
		got, rerr := r.ReadFile(name)
		if rerr != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, rerr, want)
		}
	}
	for _, hidden := range []string{"gone.txt", "opt/old.txt", ".wh.gone.txt", "opt/.wh..wh..opq"} {
		if _, err = r.Lstat(hidden); err == nil {
			t.Errorf("%s is in the image; the top layer removed it", hidden)
		}
	}
	tool, _ := r.Lstat("bin/tool")
	if in := tool.Sys().(*squashfs.Inode); in.Mode != 0o4755 || in.Nlink != 2 {
		t.Errorf("bin/tool: mode %o nlink %d, want 4755 and 2 (hardlinked)", in.Mode, in.Nlink)
	}
	data, _ := r.Lstat("home/user/data")
	if in := data.Sys().(*squashfs.Inode); in.UID != 1000 || in.GID != 1000 {
		t.Errorf("home/user/data owned by %d:%d, want 1000:1000", in.UID, in.GID)
	}
	if x, xerr := r.Xattrs("home/user/data"); xerr != nil || x["user.origin"] != "top" {
		t.Errorf("xattrs of home/user/data = %v, %v", x, xerr)
	}
	for _, mp := range []string{"proc", "sys", "dev", "tmp", "var/tmp", "etc/hosts", "etc/passwd"} {
		if _, err = r.Lstat(mp); err != nil {
			t.Errorf("mount point %s missing: %v", mp, err)
		}
	}
	c, err := d.ImageConfig()
	if err != nil || c == nil {
		t.Fatalf("config not recorded: %v", err)
	}
	if c.WorkingDir != "/opt" || c.Cmd[0] != "/bin/tool" || c.Labels["from"] != "image" || c.Labels["extra"] != "yes" {
		t.Errorf("config not recorded: %+v", c)
	}
	if d.Provenance.SourceDigest != res.SourceDigest || res.SourceDigest == "" || d.Provenance.Level != 3 {
		t.Errorf("provenance %+v, result digest %s", d.Provenance, res.SourceDigest)
	}
}

func TestBuildIsReproducible(t *testing.T) {
	src := layout(t, twoLayers())
	var outs [][]byte
	for _, comp := range []squashfs.Compression{0, squashfs.Zstd} { // default, then named
		opts := options(t, src) // a fresh cache each time
		opts.Compression = comp
		res, err := Build(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(res.Output)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("two builds of the same source differ")
	}
	sde := time.Unix(1700000000, 0)
	opts := options(t, src)
	opts.SourceDateEpoch = &sde
	res, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, d := openRootfs(t, res.Output)
	if !d.Created.Equal(sde) {
		t.Errorf("created %v, want SOURCE_DATE_EPOCH %v", d.Created, sde)
	}
}

func TestBuildFromDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/bin/hello"), []byte("hi"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), options(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	r, d := openRootfs(t, res.Output)
	if got, err := r.ReadFile("bin/hello"); err != nil || string(got) != "hi" {
		t.Errorf("bin/hello through the symlink = %q, %v", got, err)
	}
	if c, err := d.ImageConfig(); d.Provenance.SourceDigest != "" || err != nil || c == nil || len(c.Env) == 0 {
		t.Errorf("directory image metadata: %+v %s (%v)", d.Provenance, d.Config, err)
	}
}

// dirEntries lists a directory's names, to check that nothing was left behind.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestBuildFailuresLeaveNothing(t *testing.T) {
	hostile := ocitest.Image{Layers: [][]byte{layertest.Tar([]layertest.File{layertest.Reg("ok", "x"), layertest.Reg("../evil", "x")})}}
	cases := []struct {
		name   string
		source func(t *testing.T) string
		want   string
	}{
		{"hostile layer", func(t *testing.T) string { return layout(t, hostile) }, "evil"},
		{"unknown transport", func(t *testing.T) string { return "foo://bar" }, "unknown image source"},
		{"missing directory", func(t *testing.T) string { return "/nonexistent/rootfs" }, "no such directory"},
		{"missing archive", func(t *testing.T) string { return "oci-archive:/nonexistent/a.tar" }, "/nonexistent/a.tar does not exist"},
		{"missing layout", func(t *testing.T) string { return "oci:/nonexistent/layout" }, "/nonexistent/layout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := options(t, c.source(t))
			_, err := Build(context.Background(), opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if left := dirEntries(t, filepath.Dir(opts.Output)); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestBuildKeepsExistingOutput(t *testing.T) {
	opts := options(t, layout(t, twoLayers()))
	if err := os.WriteFile(opts.Output, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("error %v, want one suggesting --force", err)
	}
	opts.Source = "foo://bad"
	opts.Force = true
	if _, err := Build(context.Background(), opts); err == nil {
		t.Fatal("bad source accepted")
	}
	if b, _ := os.ReadFile(opts.Output); string(b) != "precious" {
		t.Fatalf("a failed --force build changed the existing file: %q", b)
	}
	opts.Source = layout(t, twoLayers())
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(opts.Output); string(b) == "precious" {
		t.Fatal("--force did not replace the file")
	}
	if left := dirEntries(t, filepath.Dir(opts.Output)); len(left) != 1 {
		t.Errorf("directory holds %v, want only the image", left)
	}
}

func TestBuildCancelled(t *testing.T) {
	opts := options(t, layout(t, twoLayers()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Build(ctx, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if left := dirEntries(t, filepath.Dir(opts.Output)); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestBuildRejectsBadOptions(t *testing.T) {
	opts := options(t, layout(t, twoLayers()))
	opts.Compression, opts.Level = squashfs.Gzip, 12
	if _, err := Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "level") {
		t.Fatalf("error %v, want one about the level", err)
	}
	opts.Compression, opts.Level, opts.BlockSize = squashfs.Zstd, 0, 3000
	if _, err := Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "block size") {
		t.Fatalf("error %v, want one about the block size", err)
	}
}

func TestParseSourceDateEpoch(t *testing.T) {
	if v, err := ParseSourceDateEpoch(""); v != nil || err != nil {
		t.Errorf("empty: %v %v", v, err)
	}
	if v, err := ParseSourceDateEpoch("1700000000"); err != nil || v.Unix() != 1700000000 {
		t.Errorf("number: %v %v", v, err)
	}
	for _, bad := range []string{"soon", "-1", "99999999999"} {
		if _, err := ParseSourceDateEpoch(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBuildSignStep(t *testing.T) {
	opts := options(t, layout(t, twoLayers()))
	var signedAt time.Time
	opts.Sign = func(_ context.Context, f *os.File, at time.Time) error {
		signedAt = at
		if _, err := sif.OpenFile(f); err != nil {
			t.Errorf("the sign step got no whole SIF: %v", err)
		}
		return errors.New("key refused")
	}
	if _, err := Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "key refused") {
		t.Fatalf("error %v, want the sign step's", err)
	}
	if !signedAt.Equal(ocitest.Epoch) {
		t.Errorf("signed at %v, want the image's own time", signedAt)
	}
	if left := dirEntries(t, filepath.Dir(opts.Output)); len(left) != 0 {
		t.Errorf("a failed signature left %v", left)
	}
}
