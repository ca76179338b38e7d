package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeRootfs makes a tiny "Debian tree": a base file, a python file listed by a python package,
// byte code in no list, and a hardlink pair split between the layers.
func fakeRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"usr/bin/python3":          "py",
		"usr/bin/dash":             "sh",
		"usr/lib/python3.11/os.py": "os",
		"usr/lib/python3.11/__pycache__/os.cpython.pyc": "pyc",
		"etc/skel/.bashrc":                                "rc",
		"etc/issue.net":                                   "net",
		"usr/share/doc/python3.11/copyright":              "c",
		"var/lib/dpkg/info/python3.11-minimal:amd64.list": "/.\n/usr\n/usr/bin\n/usr/bin/python3\n/usr/lib/python3.11\n/usr/lib/python3.11/os.py\n/usr/share/doc/python3.11\n/usr/share/doc/python3.11/copyright\n",
		"var/lib/dpkg/info/dash.list":                     "/.\n/usr\n/usr/bin\n/usr/bin/dash\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(root, "usr/bin/dash"), filepath.Join(root, "usr/lib/python3.11/dash-link")); err != nil {
		t.Fatal(err)
	}
	return root
}

// fakeBusybox is a script that lists applets as busybox --list-full does.
func fakeBusybox(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "busybox")
	script := "#!/bin/sh\nprintf 'bin/sh\\nusr/bin/awk\\nbin/busybox\\nnowhere/x\\n'\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func makeImages(t *testing.T, rootfs, busybox string) string {
	t.Helper()
	out := t.TempDir()
	var stderr bytes.Buffer
	if err := run([]string{"-debian-rootfs", rootfs, "-busybox", busybox, "-out", out}, &stderr); err != nil {
		t.Fatalf("mkfixtures: %v\n%s", err, stderr.String())
	}
	return out
}

func TestDeterministic(t *testing.T) {
	rootfs, bb := fakeRootfs(t), fakeBusybox(t)
	a, b := makeImages(t, rootfs, bb), makeImages(t, rootfs, bb)
	for _, name := range []string{"debian-oci.tar", "busybox-oci.tar"} {
		x, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs on the same input", name)
		}
	}
}

func TestDebianLayers(t *testing.T) {
	out := makeImages(t, fakeRootfs(t), fakeBusybox(t))
	layers := readLayers(t, filepath.Join(out, "debian-oci"))
	if len(layers) != 3 {
		t.Fatalf("%d layers, want base, python3, top", len(layers))
	}
	base, python, top := layers[0], layers[1], layers[2]
	for _, want := range []string{"usr/bin/dash", "etc/issue.net", "usr/share/doc/"} {
		if _, ok := base[want]; !ok {
			t.Errorf("base layer lacks %s: %v", want, keys(base))
		}
	}
	for _, want := range []string{"usr/bin/python3", "usr/lib/python3.11/os.py", "usr/lib/python3.11/__pycache__/os.cpython.pyc", "usr/share/doc/python3.11/"} {
		if _, ok := python[want]; !ok {
			t.Errorf("python layer lacks %s: %v", want, keys(python))
		}
	}
	if h := python["usr/lib/python3.11/dash-link"]; h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/dash" {
		t.Errorf("dash-link = %+v, want a hardlink to the base layer's usr/bin/dash", h)
	}
	for _, want := range []string{"etc/.wh.issue.net", "etc/skel/.wh..wh..opq", "usr/share/doc/.wh.python3.11"} {
		if _, ok := top[want]; !ok {
			t.Errorf("top layer lacks %s", want)
		}
	}
	if h := top["opt/hpcctl-fixture/setuid"]; h.Mode != 0o4755 {
		t.Errorf("setuid mode %o, want 4755", h.Mode)
	}
	if h := top["opt/hpcctl-fixture/xattr-user"]; h.PAXRecords["SCHILY.xattr.user.hpcctl"] != "fixture" {
		t.Errorf("xattr-user records %v, want user.hpcctl=fixture", h.PAXRecords)
	}
}

func TestBusyboxLayer(t *testing.T) {
	out := makeImages(t, fakeRootfs(t), fakeBusybox(t))
	layers := readLayers(t, filepath.Join(out, "busybox-oci"))
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	l := layers[0]
	if h := l["bin/sh"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
		t.Errorf("bin/sh = %+v, want a symlink to /bin/busybox", h)
	}
	if h := l["bin/busybox"]; h.Typeflag != tar.TypeReg || h.Mode != 0o755 {
		t.Errorf("bin/busybox = %+v, want the binary, mode 755", h)
	}
	if _, ok := l["nowhere/x"]; ok {
		t.Error("an applet outside the image's directories got a link")
	}
}

func TestBadArguments(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(nil, &stderr); err == nil || !strings.Contains(err.Error(), "-debian-rootfs") {
		t.Errorf("no arguments: %v, want an error naming -debian-rootfs", err)
	}
	err := run([]string{"-debian-rootfs", t.TempDir(), "-out", t.TempDir()}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "python3") {
		t.Errorf("empty tree: %v, want an error saying it lacks python3", err)
	}
}

// readLayers returns, per layer of the layout's one image, its tar headers by name.
func readLayers(t *testing.T, dir string) []map[string]*tar.Header {
	t.Helper()
	var index v1.Index
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	var manifest v1.Manifest
	readJSON(t, blobPath(dir, index.Manifests[0]), &manifest)
	var out []map[string]*tar.Header
	for _, l := range manifest.Layers {
		f, err := os.Open(blobPath(dir, l))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var r io.Reader = f
		if l.MediaType == v1.MediaTypeImageLayerGzip {
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		out = append(out, headers(t, r))
	}
	return out
}

func headers(t *testing.T, r io.Reader) map[string]*tar.Header {
	t.Helper()
	m := map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		m[h.Name] = h
	}
}

func blobPath(dir string, d v1.Descriptor) string {
	return filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]*tar.Header) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
