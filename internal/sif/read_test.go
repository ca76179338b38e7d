package sif_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/sif/siftest"
	"github.com/hpcctl/hpcctl/internal/testutil"
)

func TestOpen(t *testing.T) {
	testutil.NeedCommands(t, "mksquashfs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc/hello"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &v1.ImageConfig{Env: []string{"PATH=/bin"}, Entrypoint: []string{"/e"}, Cmd: []string{"c"}, WorkingDir: "/w"}
	withCfg, apptainer := filepath.Join(dir, "a.sif"), filepath.Join(dir, "b.sif")
	if err := siftest.Make(withCfg, tree, cfg); err != nil {
		t.Fatal(err)
	}
	if err := siftest.Make(apptainer, tree, nil); err != nil {
		t.Fatal(err)
	}

	img, err := sif.Open(withCfg)
	if err != nil {
		t.Fatal(err)
	}
	want := &sif.ImageConfig{Env: cfg.Env, Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, WorkingDir: cfg.WorkingDir}
	if !reflect.DeepEqual(img.Config, want) {
		t.Errorf("config = %+v, want %+v", img.Config, want)
	}
	b, err := os.ReadFile(withCfg)
	if err != nil {
		t.Fatal(err)
	}
	if img.Offset <= 0 || img.Offset+img.Size > int64(len(b)) || string(b[img.Offset:img.Offset+4]) != "hsqs" {
		t.Errorf("partition at %d size %d does not hold a squashfs (file %d bytes)", img.Offset, img.Size, len(b))
	}

	img, err = sif.Open(apptainer)
	if err != nil || img.Config != nil {
		t.Errorf("image without config: %+v, %v; want a nil config", img, err)
	}

	for _, bad := range []string{filepath.Join(tree, "etc/hello"), filepath.Join(dir, "missing.sif")} {
		if _, err := sif.Open(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Open(%s): err = %v, want one naming the file", bad, err)
		}
	}
}
