package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// pythonPackage matches the Debian packages whose files make the python3 layer.
var pythonPackage = regexp.MustCompile(`^(lib)?python3`)

// debianImage makes three layers: the base system, python3 (as Debian installed it), and a top
// layer of awkward cases the flattener and the squashfs writer must get right.
func debianImage(rootfs string) (ocitest.Image, error) {
	if _, err := os.Stat(filepath.Join(rootfs, "usr/bin/python3")); err != nil {
		return ocitest.Image{}, fmt.Errorf("%s is not a Debian tree with python3 (make it with scripts/fixtures.sh): %w", rootfs, err)
	}
	entries, err := walkTree(rootfs)
	if err != nil {
		return ocitest.Image{}, err
	}
	owners, err := dpkgOwners(rootfs)
	if err != nil {
		return ocitest.Image{}, err
	}
	var base, python []treeEntry
	for _, e := range entries {
		if owners.python(e) {
			python = append(python, e)
		} else {
			base = append(base, e)
		}
	}
	// One writer for both layers, so that a hardlink in the python layer can name a base file.
	w := newTreeWriter(rootfs)
	baseTar, err := tarOf(func(tw *tar.Writer) error { return writeEntries(tw, w, base) })
	if err != nil {
		return ocitest.Image{}, err
	}
	pythonTar, err := tarOf(func(tw *tar.Writer) error { return writeEntries(tw, w, python) })
	if err != nil {
		return ocitest.Image{}, err
	}
	topTar, err := tarOf(func(tw *tar.Writer) error { return writeSynthetic(tw, debianTopLayer()) })
	if err != nil {
		return ocitest.Image{}, err
	}
	return ocitest.Image{
		Layers:     [][]byte{baseTar, pythonTar, topTar},
		Gzip:       true,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"},
		Cmd:        []string{"python3"},
		WorkingDir: "/",
		Labels:     map[string]string{"org.opencontainers.image.title": "hpcctl test fixture: Debian bookworm minbase with python3"},
	}, nil
}

// tarOf returns the tar that write makes.
func tarOf(write func(*tar.Writer) error) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := write(tw); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeEntries(tw *tar.Writer, w *treeWriter, entries []treeEntry) error {
	for _, e := range entries {
		if err := w.write(tw, e); err != nil {
			return err
		}
	}
	return nil
}

// owners records, for each path dpkg knows, whether python packages and other packages own it.
type owners map[string]struct{ py, other bool }

// dpkgOwners reads /var/lib/dpkg/info/*.list of the tree.
func dpkgOwners(rootfs string) (owners, error) {
	lists, err := filepath.Glob(filepath.Join(rootfs, "var/lib/dpkg/info/*.list"))
	if err != nil || len(lists) == 0 {
		return nil, fmt.Errorf("no dpkg file lists in %s/var/lib/dpkg/info: %v", rootfs, err)
	}
	o := owners{}
	for _, list := range lists {
		pkg, _, _ := strings.Cut(strings.TrimSuffix(filepath.Base(list), ".list"), ":")
		if err := o.read(list, pythonPackage.MatchString(pkg)); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o owners) read(list string, py bool) error {
	f, err := os.Open(list)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := sc.Text()
		v := o[p]
		if py {
			v.py = true
		} else {
			v.other = true
		}
		o[p] = v
	}
	return sc.Err()
}

// python tells whether e belongs in the python3 layer: files a python package owns, directories
// only python packages own, and everything under /usr/lib/python3* (the byte code that the
// packages' scripts compiled at installation is in no list).
func (o owners) python(e treeEntry) bool {
	p := "/" + e.rel
	if strings.HasPrefix(p, "/usr/lib/python3") {
		return true
	}
	v := o[p]
	if e.info.IsDir() {
		return v.py && !v.other
	}
	return v.py
}

// synthetic is one made-up layer entry. (layertest.File cannot say "mode 0000": its zero Mode
// means the default.)
type synthetic struct {
	hdr  tar.Header
	body string
}

func dir(name string, mode int64) synthetic {
	return synthetic{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}}
}

func file(name string, mode int64, body string) synthetic {
	return synthetic{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, body: body}
}

func symlink(name, target string) synthetic {
	return synthetic{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) synthetic {
	return synthetic{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

func withXattr(s synthetic, name, value string) synthetic {
	s.hdr.PAXRecords = map[string]string{"SCHILY.xattr." + name: value}
	return s
}

func owned(s synthetic, uid, gid int) synthetic {
	s.hdr.Uid, s.hdr.Gid = uid, gid
	return s
}

// capNetBindService is a security.capability value (VFS_CAP_REVISION_2, effective) granting
// CAP_NET_BIND_SERVICE, as setcap writes it.
func capNetBindService() string {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x1) // revision 2, effective
	binary.LittleEndian.PutUint32(b[4:], 1<<10)          // permitted: CAP_NET_BIND_SERVICE
	return string(b)
}

// debianTopLayer is the awkward layer; /opt/hpcctl-fixture/README lists what a test can expect.
func debianTopLayer() []synthetic {
	const d = "opt/hpcctl-fixture"
	return []synthetic{
		file("etc/.wh.issue.net", 0o644, ""),               // whiteout of a base file
		file("etc/issue", 0o644, "hpcctl fixture\n"),       // a base file replaced
		dir("etc/skel", 0o755),                             // opaque: the base's dot files vanish
		file("etc/skel/.wh..wh..opq", 0o644, ""),           //
		file("etc/skel/only-this", 0o644, "opaque test\n"), //
		dir(d, 0o755),                                   //
		file(d+"/README", 0o644, fixtureReadme),         //
		file(d+"/empty", 0o644, ""),                     //
		file(d+"/hardlink-a", 0o644, "same inode\n"),    // a hardlink within the layer
		hardlink(d+"/hardlink-b", d+"/hardlink-a"),      //
		symlink(d+"/link-abs", "/usr/bin/python3"),      //
		symlink(d+"/link-dangling", "does-not-exist"),   //
		symlink(d+"/link-dir", "/etc"),                  //
		symlink(d+"/link-rel", "../../usr/bin/python3"), //
		file(d+"/mode-0000", 0o000, "unreadable\n"),     //
		owned(file(d+"/owned-1000", 0o640, "uid 1000\n"), 1000, 1000),
		hardlink(d+"/python-hardlink", "usr/bin/python3.11"), // a hardlink to a lower layer's file
		dir(d+"/setgid-dir", 0o2775),                         //
		file(d+"/setuid", 0o4755, "#!/bin/sh\necho setuid\n"),
		dir(d+"/sticky", 0o1777), //
		withXattr(file(d+"/xattr-cap", 0o755, "#!/bin/sh\n"), "security.capability", capNetBindService()),
		withXattr(file(d+"/xattr-user", 0o644, "xattr\n"), "user.hpcctl", "fixture"),
		file("usr/share/doc/.wh.python3.11", 0o644, ""), // whiteout of a python-layer directory
	}
}

const fixtureReadme = `hpcctl test fixture, top layer (made by e2e/cmd/mkfixtures):
- /etc/issue.net is whited out; /etc/issue replaced; /etc/skel is opaque (only-this remains)
- /usr/share/doc/python3.11 (a directory of the python3 layer) is whited out
- here: hardlink-a and hardlink-b share an inode; python-hardlink shares /usr/bin/python3.11's
- symlinks: link-abs, link-rel (to python3), link-dir (to /etc), link-dangling
- modes: setuid 4755, setgid-dir 2775, sticky 1777, mode-0000 0000; owned-1000 is 1000:1000 0640
- xattrs: xattr-user has user.hpcctl=fixture; xattr-cap has security.capability (cap_net_bind_service+e)
`

func writeSynthetic(tw *tar.Writer, entries []synthetic) error {
	for _, s := range entries {
		hdr := s.hdr
		hdr.ModTime = ocitest.Epoch
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(s.body))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if _, err := tw.Write([]byte(s.body)); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	return nil
}
