package layer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/testutil/layertest"
)

// got is one entry as the recording sink saw it, with the body read.
type got struct {
	squashfs.Entry
	body string
}

// recorder is a sink that keeps everything and checks the Body contract.
type recorder struct {
	entries []got
}

func (r *recorder) add(e squashfs.Entry) error {
	g := got{Entry: e}
	if e.Type == squashfs.TypeRegular {
		b, err := io.ReadAll(e.Body)
		if err != nil {
			return err
		}
		if int64(len(b)) != e.Size {
			return fmt.Errorf("%s: body has %d bytes, Size says %d", e.Path, len(b), e.Size)
		}
		g.body = string(b)
	}
	g.Body = nil
	r.entries = append(r.entries, g)
	return nil
}

// blobs turns tar bytes into layers, bottom first, named sha256:l0, sha256:l1, ...
func blobs(tars ...[]byte) []Layer {
	ls := make([]Layer, len(tars))
	for i, b := range tars {
		ls[i] = Layer{Digest: fmt.Sprintf("sha256:l%d", i), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}}
	}
	return ls
}

// stack builds plain tar layers from specs, bottom first.
func stack(specs ...[]layertest.File) []Layer {
	tars := make([][]byte, len(specs))
	for i, s := range specs {
		tars[i] = layertest.Tar(s)
	}
	return blobs(tars...)
}

func flatten(t testing.TB, layers []Layer, opts Options) ([]got, Stats, error) {
	t.Helper()
	var r recorder
	st, err := Flatten(context.Background(), layers, r.add, opts)
	return r.entries, st, err
}

// tree summarizes entries by path; a path given twice is a bug the summary reports.
func tree(entries []got) map[string]string {
	m := map[string]string{}
	for _, e := range entries {
		s := summary(e)
		if old, dup := m[e.Path]; dup {
			s = "DUPLICATE(" + old + " | " + s + ")"
		}
		m[e.Path] = s
	}
	return m
}

func summary(e got) string {
	var s string
	switch e.Type {
	case squashfs.TypeRegular:
		s = fmt.Sprintf("file %o %q", e.Mode, e.body)
	case squashfs.TypeDir:
		s = fmt.Sprintf("dir %o", e.Mode)
	case squashfs.TypeSymlink:
		s = "symlink " + e.Linkname
	case squashfs.TypeHardlink:
		s = "hardlink " + e.Linkname
	case squashfs.TypeCharDevice, squashfs.TypeBlockDevice:
		s = fmt.Sprintf("%s %d:%d", e.Type, e.DevMajor, e.DevMinor)
	default:
		s = e.Type.String()
	}
	if e.UID != 0 || e.GID != 0 {
		s += fmt.Sprintf(" %d:%d", e.UID, e.GID)
	}
	for _, k := range slices.Sorted(maps.Keys(e.Xattrs)) {
		s += fmt.Sprintf(" %s=%s", k, e.Xattrs[k])
	}
	return s
}

func diffTrees(want, have map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if have[k] != want[k] {
			fmt.Fprintf(&b, "\n  %s: want %q, got %q", k, want[k], have[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "\n  %s: unexpected %q", k, have[k])
		}
	}
	return b.String()
}
