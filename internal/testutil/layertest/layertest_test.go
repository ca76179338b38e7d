package layertest

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
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
