package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// treeEntry is one file of a directory tree, in the order it goes into a layer.
type treeEntry struct {
	rel  string // slash-separated, relative to the tree's root
	info fs.FileInfo
}

// walkTree lists every entry under root in lexical order (parents before children), root itself
// excluded. Sockets are left out: tar cannot hold them.
func walkTree(root string) ([]treeEntry, error) {
	var entries []treeEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		entries = append(entries, treeEntry{rel: filepath.ToSlash(rel), info: info})
		return nil
	})
	return entries, err
}

// treeWriter writes tree entries to layers, turning files seen before (by inode) into tar
// hardlinks: across layers too, as a layer may link to a file a lower layer holds.
type treeWriter struct {
	root  string
	links map[[2]uint64]string // device and inode → first name written
}

func newTreeWriter(root string) *treeWriter {
	return &treeWriter{root: root, links: map[[2]uint64]string{}}
}

func (w *treeWriter) write(tw *tar.Writer, e treeEntry) error {
	hdr, err := w.header(e)
	if err != nil {
		return fmt.Errorf("%s: %w", e.rel, err)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", e.rel, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	if err := copyFile(tw, filepath.Join(w.root, e.rel)); err != nil {
		return fmt.Errorf("%s: %w", e.rel, err)
	}
	return nil
}

// header describes e with nothing that depends on the machine or the moment: no user or group
// names, no access or change times, whole-second modification times.
func (w *treeWriter) header(e treeEntry) (*tar.Header, error) {
	full := filepath.Join(w.root, e.rel)
	var target string
	if e.info.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(full)
		if err != nil {
			return nil, err
		}
		target = t
	}
	hdr, err := tar.FileInfoHeader(e.info, target)
	if err != nil {
		return nil, err
	}
	hdr.Name = e.rel
	if e.info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.Format = tar.FormatUnknown
	if st, ok := e.info.Sys().(*syscall.Stat_t); ok && e.info.Mode().IsRegular() && st.Nlink > 1 {
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if first, seen := w.links[key]; seen {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		} else {
			w.links[key] = e.rel
		}
	}
	xattrs, err := readXattrs(full)
	if err != nil {
		return nil, err
	}
	if len(xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	return hdr, nil
}

// readXattrs reads the extended attributes of path itself (not a symlink's target).
func readXattrs(path string) (map[string]string, error) {
	size, err := unix.Llistxattr(path, nil)
	if errors.Is(err, unix.ENOTSUP) || size == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(path, buf)
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	names := strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00")
	sort.Strings(names)
	out := map[string]string{}
	for _, name := range names {
		if name == "" || strings.HasPrefix(name, "system.") {
			continue // ACLs and the like belong to the host file system
		}
		val, err := getXattr(path, name)
		if err != nil {
			return nil, err
		}
		out[name] = val
	}
	return out, nil
}

func getXattr(path, name string) (string, error) {
	size, err := unix.Lgetxattr(path, name, nil)
	if err != nil {
		return "", fmt.Errorf("read xattr %s: %w", name, err)
	}
	buf := make([]byte, size)
	size, err = unix.Lgetxattr(path, name, buf)
	if err != nil {
		return "", fmt.Errorf("read xattr %s: %w", name, err)
	}
	return string(buf[:size]), nil
}
