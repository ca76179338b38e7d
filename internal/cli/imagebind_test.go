package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// TestWantsImages: image binds (-B, --mount, their variables) and image-file overlays take the
// user-namespace path; plain binds and directory overlays do not.
func TestWantsImages(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "i.sqfs")
	if err := os.WriteFile(img, []byte("hsqs"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    launchOptions
		want bool
	}{
		{"plain binds", launchOptions{binds: []string{"/a:/b:ro"}, overlays: []string{dir}}, false},
		{"image-src", launchOptions{binds: []string{"/a,/i.sif:/d:image-src=/"}}, true},
		{"id from APPTAINER_BIND", launchOptions{apptainer: apptainerOptions{envBinds: []string{"/i.sif:/d:id=2"}}}, true},
		{"--mount", launchOptions{apptainer: apptainerOptions{mounts: []string{"src=/i,dst=/d,image-src=/x"}}}, true},
		{"image overlay", launchOptions{overlays: []string{img}}, true},
	} {
		if got := c.o.wantsImages(); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLocateExtraImage: a squashfs file is used whole; ext3, other files and directories are
// refused with a line saying what to do.
func TestLocateExtraImage(t *testing.T) {
	dir := t.TempDir()
	ext3 := make([]byte, 2048)
	ext3[1080], ext3[1081] = 0x53, 0xef
	for _, c := range []struct {
		name, content string
		partition     int
		want          string
	}{
		{"ext3", string(ext3), 0, "is an ext3 image: hpcctl mounts squashfs only"},
		{"text", "hello", 0, "neither a squashfs image nor a SIF"},
		{"id of a squashfs file", "hsqs" + strings.Repeat("\x00", 100), 2, "leave out id="},
		{"damaged squashfs", "hsqs" + strings.Repeat("\x00", 100), 0, "damaged"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		err := locateExtraImage(&spec.Image{Path: p, Partition: c.partition}, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if err := locateExtraImage(&spec.Image{Path: dir}, false); err == nil || !strings.Contains(err.Error(), "image-src=") {
		t.Errorf("a directory: %v", err)
	}
}
