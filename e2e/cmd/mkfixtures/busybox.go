package main

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// busyboxImage adds one layer: the static busybox, a symlink per applet, and the few files a
// shell needs.
func busyboxImage(l *layout, busybox string) (imageConfig, error) {
	body, err := os.ReadFile(busybox)
	if err != nil {
		return imageConfig{}, fmt.Errorf("read busybox (install busybox-static): %w", err)
	}
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return imageConfig{}, fmt.Errorf("%s --list-full: %w", busybox, err)
	}
	entries := busyboxEntries(string(body), strings.Fields(string(out)))
	if err := l.addLayer(gzipped, func(tw *tar.Writer) error { return writeSynthetic(tw, entries) }); err != nil {
		return imageConfig{}, err
	}
	return imageConfig{
		Config: v1.ImageConfig{
			Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"/bin/sh"},
		},
		History: []v1.History{{Created: &epoch, CreatedBy: "mkfixtures: busybox-static with its applet links"}},
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
