// Package gputest makes fake GPU driver layouts (libraries in a private ld.so.cache, programs,
// device nodes, CDI specs) for tests on machines without a GPU.
package gputest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// SharedObject is the smallest ELF shared object that ldconfig registers under soname: a header,
// a PT_LOAD segment over the whole file and a PT_DYNAMIC one holding DT_SONAME. It cannot be
// loaded for real (no code, no symbols); the tests only bind it.
func SharedObject(soname string) ([]byte, error) {
	machine, ok := map[string]uint16{"amd64": 62, "arm64": 183, "ppc64le": 21, "riscv64": 243, "s390x": 22}[runtime.GOARCH]
	if !ok {
		return nil, fmt.Errorf("fake shared objects for %s: not supported", runtime.GOARCH)
	}
	order := binary.ByteOrder(binary.LittleEndian)
	data := byte(1)
	if runtime.GOARCH == "s390x" {
		order, data = binary.BigEndian, 2
	}
	const ehsize, phsize, phnum = 64, 56, 2
	strOff := uint64(ehsize + phsize*phnum)
	strtab := append(append([]byte{0}, soname...), 0)
	dynOff := (strOff + uint64(len(strtab)) + 7) &^ 7
	dyn := [][2]uint64{{5, strOff}, {10, uint64(len(strtab))}, {14, 1}, {0, 0}} // STRTAB, STRSZ, SONAME, NULL
	size := dynOff + uint64(16*len(dyn))

	var b bytes.Buffer
	w := func(v any) { binary.Write(&b, order, v) } //nolint:errcheck // a bytes.Buffer does not fail
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	w(uint16(3)) // ET_DYN
	w(machine)
	w(uint32(1))
	w(uint64(0))      // entry
	w(uint64(ehsize)) // program headers
	w(uint64(0))      // no section headers
	w(uint32(0))
	w(uint16(ehsize))
	w(uint16(phsize))
	w(uint16(phnum))
	w(uint16(64))
	w(uint16(0))
	w(uint16(0))
	phdr := func(typ, flags uint32, off, sz, align uint64) {
		w(typ)
		w(flags)
		w(off)
		w(off) // vaddr = offset: ldconfig maps DT_STRTAB through the PT_LOAD segment
		w(off)
		w(sz)
		w(sz)
		w(align)
	}
	phdr(1, 4, 0, size, 0x1000)        // PT_LOAD, R
	phdr(2, 6, dynOff, size-dynOff, 8) // PT_DYNAMIC, RW
	b.Write(strtab)
	b.Write(make([]byte, dynOff-uint64(b.Len())))
	for _, d := range dyn {
		w(d[0])
		w(d[1])
	}
	return b.Bytes(), nil
}

// Layout describes a fake driver tree, in gpu.TestHost's shape.
type Layout struct {
	Libs     []string          // sonames, made as ROOT/lib/NAME
	Programs []string          // made as ROOT/usr/bin/NAME, a shell script that prints its name
	Devices  []string          // paths under ROOT/dev; a name ending in "/" is a directory
	CDI      map[string]string // file name in ROOT/etc/cdi -> spec text, "ROOT" replaced by the root
}

// Make builds the layout under root: the libraries are registered in ROOT/etc/ld.so.cache with
// `ldconfig -X -C ROOT/etc/ld.so.cache -f ROOT/etc/ld.so.conf` (ldconfig adds the system's trusted
// directories too, as on a real host). Devices are character devices 1:3 (what /dev/null is)
// when the caller may make device nodes, else plain files; nodes says which.
func (l Layout) Make(root string) (bool, error) {
	for _, d := range []string{"lib", "usr/bin", "dev", "etc/cdi"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return false, err
		}
	}
	for _, name := range l.Libs {
		so, err := SharedObject(name)
		if err != nil {
			return false, err
		}
		if err := os.WriteFile(filepath.Join(root, "lib", name), so, 0o755); err != nil {
			return false, err
		}
	}
	conf := filepath.Join(root, "etc", "ld.so.conf")
	if err := os.WriteFile(conf, []byte(filepath.Join(root, "lib")+"\n"), 0o644); err != nil {
		return false, err
	}
	ldconfig, lerr := exec.LookPath("ldconfig")
	if lerr != nil {
		ldconfig = "/sbin/ldconfig"
	}
	if out, err := exec.Command(ldconfig, "-X", "-C", filepath.Join(root, "etc", "ld.so.cache"), "-f", conf).CombinedOutput(); err != nil {
		return false, fmt.Errorf("ldconfig: %v: %s", err, out)
	}
	for _, p := range l.Programs {
		script := "#!/bin/sh\necho fake " + p + "\n"
		if err := os.WriteFile(filepath.Join(root, "usr", "bin", p), []byte(script), 0o755); err != nil {
			return false, err
		}
	}
	nodes := true
	for _, d := range l.Devices {
		p := filepath.Join(root, "dev", d)
		if strings.HasSuffix(d, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return false, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return false, err
		}
		err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			nodes = false
			err = os.WriteFile(p, nil, 0o666)
		}
		if err != nil {
			return false, err
		}
	}
	for name, text := range l.CDI {
		if err := os.WriteFile(filepath.Join(root, "etc", "cdi", name), []byte(strings.ReplaceAll(text, "ROOT", root)), 0o644); err != nil {
			return false, err
		}
	}
	return nodes, nil
}

// Binds lists mounts as "DEST <- SOURCE[ ro]", sorted, with root in sources shown as ROOT: what
// a test compares with the binds it expects.
func Binds(mounts []spec.Mount, root string) []string {
	var out []string
	for _, m := range mounts {
		if m.Kind != spec.KindBind {
			out = append(out, "not a bind: "+m.Destination)
			continue
		}
		ro := ""
		if m.ReadOnly {
			ro = " ro"
		}
		out = append(out, m.Destination+" <- "+strings.Replace(m.Source, root, "ROOT", 1)+ro)
	}
	sort.Strings(out)
	return out
}
