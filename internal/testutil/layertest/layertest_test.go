package layertest

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func spec() []File {
	return []File{
		Dir("etc"), Reg("etc/hosts", "127.0.0.1 localhost\n"), Symlink("bin", "usr/bin"), Hardlink("etc/h2", "etc/hosts"),
		Whiteout("var/cache"), Opaque("opt"), CharDev("dev/null", 1, 3),
		{Name: "x", Xattrs: map[string]string{"user.k": "v"}, ModTime: time.Unix(1e9, 0), UID: 7, Mode: 0o4755},
		{Name: "../evil"}, {Name: "/abs"},
	}
}

func TestTarRoundTrip(t *testing.T) {
	b := Tar(spec())
	if !bytes.Equal(b, Tar(spec())) {
		t.Fatal("Tar is not deterministic")
	}
	tr := tar.NewReader(bytes.NewReader(b))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		switch h.Name {
		case "x":
			if h.PAXRecords["SCHILY.xattr.user.k"] != "v" || h.Uid != 7 || h.Mode != 0o4755 || h.ModTime.Unix() != 1e9 {
				t.Errorf("x: %+v", h)
			}
		case "dev/null":
			if h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
				t.Errorf("dev/null: %+v", h)
			}
		}
	}
	want := "etc etc/hosts bin etc/h2 var/.wh.cache opt/.wh..wh..opq dev/null x ../evil /abs"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("names %q, want %q", got, want)
	}
}

func TestCompressors(t *testing.T) {
	b := Tar(spec())
	zr, err := gzip.NewReader(bytes.NewReader(Gzip(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); !bytes.Equal(got, b) || !bytes.Equal(Gzip(b), Gzip(b)) {
		t.Error("gzip round trip or determinism failed")
	}
	zd, _ := zstd.NewReader(nil)
	defer zd.Close()
	if got, err := zd.DecodeAll(Zstd(b), nil); err != nil || !bytes.Equal(got, b) || !bytes.Equal(Zstd(b), Zstd(b)) {
		t.Errorf("zstd round trip or determinism failed: %v", err)
	}
}

func TestWriteLayout(t *testing.T) {
	dir := t.TempDir()
	cfg := v1.ImageConfig{Env: []string{"PATH=/usr/bin"}, Cmd: []string{"/bin/sh"}}
	layers := [][]byte{Gzip(Tar([]File{Reg("a", "1")})), Zstd(Tar([]File{Reg("b", "2")})), Tar([]File{Reg("c", "3")})}
	d1, err := WriteLayout(dir, "one", cfg, layers...)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := WriteLayout(dir, "two", cfg, layers[0])
	if err != nil {
		t.Fatal(err)
	}
	again, err := WriteLayout(t.TempDir(), "one", cfg, layers...)
	if err != nil || again != d1 || d1 == d2 {
		t.Fatalf("digests %s %s %s, err %v: want the first two equal", d1, again, d2, err)
	}
	idx, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil || !strings.Contains(string(idx), `"one"`) || !strings.Contains(string(idx), `"two"`) {
		t.Fatalf("index.json %s, %v", idx, err)
	}
	skopeo := testutil.NeedCommands(t, "skopeo")[0]
	out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+dir+":one").CombinedOutput()
	if err != nil || !strings.Contains(string(out), v1.MediaTypeImageLayerZstd) {
		t.Fatalf("skopeo inspect: %v: %s", err, out)
	}
	out, err = exec.Command(skopeo, "inspect", "--config", "oci:"+dir+":one").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PATH=/usr/bin") {
		t.Fatalf("skopeo inspect --config: %v: %s", err, out)
	}
	// A copy reads every blob and checks its digest.
	out, err = exec.Command(skopeo, "copy", "oci:"+dir+":one", "dir:"+t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v: %s", err, out)
	}
}
