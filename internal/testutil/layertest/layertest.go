// Package layertest synthesizes OCI layer tarballs deterministically from a small spec, for tests.
package layertest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"path"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// File is one tar entry. Zero fields get defaults: Type 0 is a regular file, Mode 0 is 0755 for
// directories, 0777 for symlinks and 0644 otherwise, a zero ModTime is the Unix epoch. Name is
// written verbatim, so hostile names ("../evil", "/abs") can be made on purpose.
type File struct {
	Name     string
	Type     byte // tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, ...
	Mode     int64
	UID, GID int
	Body     string
	Linkname string
	// Xattrs are written as PAX "SCHILY.xattr." records.
	Xattrs             map[string]string
	ModTime            time.Time
	Devmajor, Devminor int64
}

// Dir is a directory entry.
func Dir(name string) File { return File{Name: name, Type: tar.TypeDir} }

// Reg is a regular file with body.
func Reg(name, body string) File { return File{Name: name, Type: tar.TypeReg, Body: body} }

// Symlink is a symbolic link to target.
func Symlink(name, target string) File {
	return File{Name: name, Type: tar.TypeSymlink, Linkname: target}
}

// Hardlink is a tar hardlink to the entry named target.
func Hardlink(name, target string) File {
	return File{Name: name, Type: tar.TypeLink, Linkname: target}
}

// CharDev is a character device node.
func CharDev(name string, major, minor int64) File {
	return File{Name: name, Type: tar.TypeChar, Devmajor: major, Devminor: minor}
}

// Whiteout is the marker that hides p ("a/b" gives "a/.wh.b") in lower layers.
func Whiteout(p string) File {
	dir, base := path.Split(p)
	return Reg(dir+".wh."+base, "")
}

// Opaque is the marker that hides the lower layers' contents of dir.
func Opaque(dir string) File {
	if dir == "" || dir == "." {
		return Reg(".wh..wh..opq", "")
	}
	return Reg(dir+"/.wh..wh..opq", "")
}

// Tar returns the uncompressed tar of files, in the order given. It panics on a spec the tar
// format cannot hold, which is a bug in the test.
func Tar(files []File) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := header(f)
		if err := tw.WriteHeader(hdr); err != nil {
			panic(fmt.Sprintf("layertest: header %q: %v", f.Name, err))
		}
		if hdr.Size > 0 {
			if _, err := tw.Write([]byte(f.Body)); err != nil {
				panic(fmt.Sprintf("layertest: body %q: %v", f.Name, err))
			}
		}
	}
	if err := tw.Close(); err != nil {
		panic(fmt.Sprintf("layertest: close: %v", err))
	}
	return buf.Bytes()
}

func header(f File) *tar.Header {
	typ := f.Type
	if typ == 0 {
		typ = tar.TypeReg
	}
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
		switch typ {
		case tar.TypeDir:
			mode = 0o755
		case tar.TypeSymlink:
			mode = 0o777
		}
	}
	mt := f.ModTime
	if mt.IsZero() {
		mt = time.Unix(0, 0)
	}
	hdr := &tar.Header{
		Name: f.Name, Typeflag: typ, Mode: mode, Uid: f.UID, Gid: f.GID, Linkname: f.Linkname,
		ModTime: mt.UTC(), Devmajor: f.Devmajor, Devminor: f.Devminor,
	}
	if typ == tar.TypeReg {
		hdr.Size = int64(len(f.Body))
	}
	if len(f.Xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range f.Xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		hdr.Format = tar.FormatPAX
	}
	return hdr
}

// Gzip compresses b deterministically (no name, no time in the gzip header).
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Zstd compresses b deterministically.
func Zstd(b []byte) []byte {
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}
