package main

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// busyboxImage makes one layer: the static busybox, a symlink per applet, and the few files a
// shell needs.
func busyboxImage(busybox string) (ocitest.Image, error) {
	body, err := os.ReadFile(busybox)
	if err != nil {
		return ocitest.Image{}, fmt.Errorf("read busybox (install busybox-static): %w", err)
	}
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return ocitest.Image{}, fmt.Errorf("%s --list-full: %w", busybox, err)
	}
	entries := busyboxEntries(string(body), strings.Fields(string(out)))
	layer, err := tarOf(func(tw *tar.Writer) error { return writeSynthetic(tw, entries) })
	if err != nil {
		return ocitest.Image{}, err
	}
	return ocitest.Image{
		Layers: [][]byte{layer},
		Gzip:   true,
		Env:    []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd:    []string{"/bin/sh"},
	}, nil
}

// busyboxEntries lists the layer sorted by name, so that parents come before children.
func busyboxEntries(body string, applets []string) []synthetic {
	entries := map[string]synthetic{}
	for _, d := range []string{"bin", "dev", "etc", "home", "proc", "sbin", "sys", "usr", "usr/bin", "usr/sbin", "var"} {
		entries[d] = dir(d, 0o755)
	}
	entries["root"] = dir("root", 0o700)
	entries["tmp"] = dir("tmp", 0o1777)
	entries["bin/busybox"] = file("bin/busybox", 0o755, body)
	entries["etc/passwd"] = file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
	entries["etc/group"] = file("etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n")
	for _, a := range applets {
		a = strings.TrimPrefix(a, "/")
		if _, taken := entries[a]; taken || !strings.Contains(a, "/") {
			continue
		}
		if _, ok := entries[path.Dir(a)]; !ok {
			continue // an applet in a directory the image does not have
		}
		entries[a] = symlink(a, "/bin/busybox")
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	list := make([]synthetic, len(names))
	for i, n := range names {
		list[i] = entries[n]
	}
	return list
}
