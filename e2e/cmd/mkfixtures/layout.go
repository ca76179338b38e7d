package main

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// archiveDir writes dir as an oci-archive: a tar of the layout, entries sorted, times fixed. It
// streams from disk: ocitest.OCIArchive would hold the whole image in memory and compress the
// layers a second time.
func archiveDir(dir, path string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range names {
		if err := archiveEntry(tw, dir, p); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func archiveEntry(tw *tar.Writer, dir, p string) error {
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: ocitest.Epoch, Typeflag: tar.TypeReg, Size: st.Size()}
	if st.IsDir() {
		hdr = &tar.Header{Name: hdr.Name + "/", Mode: 0o755, ModTime: ocitest.Epoch, Typeflag: tar.TypeDir}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if st.IsDir() {
		return nil
	}
	return copyFile(tw, p)
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
