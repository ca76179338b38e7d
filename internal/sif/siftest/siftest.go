// Package siftest makes small SIF images for tests: a squashfs of a directory tree (mksquashfs)
// with an OCI config object, the way hpcctl's builder lays them out (internal/sif/objects.go).
package siftest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sylabs/sif/v2/pkg/sif"

	hsif "github.com/hpcctl/hpcctl/internal/sif"
)

// Make writes a SIF at out holding tree as its system partition and, when cfg is not nil, cfg as
// its OCI config object (an image without one looks like Apptainer's).
func Make(out, tree string, cfg *v1.ImageConfig) error {
	return makeSIF(out, tree, cfg, false)
}

// MakeApptainer writes a SIF as Apptainer builds one from an OCI image: cfg as its
// "oci-config.json" object (the same name as hpcctl's) beside Apptainer's
// "inspect-metadata.json", and no hpcctl provenance; tree should hold /.singularity.d.
func MakeApptainer(out, tree string, cfg *v1.ImageConfig) error {
	return makeSIF(out, tree, cfg, true)
}

func makeSIF(out, tree string, cfg *v1.ImageConfig, apptainer bool) error {
	sq := out + ".squashfs"
	defer os.Remove(sq)
	cmd := exec.Command("mksquashfs", tree, sq, "-noappend", "-quiet", "-no-progress", "-comp", "zstd", "-Xcompression-level", "3", "-all-root")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mksquashfs %s: %w: %s", tree, err, b)
	}
	part, err := os.Open(sq)
	if err != nil {
		return err
	}
	defer part.Close()
	pdi, err := sif.NewDescriptorInput(sif.DataPartition, part,
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"), sif.OptGroupID(hsif.SystemGroup))
	if err != nil {
		return err
	}
	dis := []sif.DescriptorInput{pdi}
	if cfg != nil {
		b, merr := json.Marshal(v1.Image{Config: *cfg})
		if merr != nil {
			return merr
		}
		cdi, derr := sif.NewDescriptorInput(sif.DataGenericJSON, bytesReader(b),
			sif.OptObjectName(hsif.ConfigObjectName), sif.OptGroupID(hsif.SystemGroup))
		if derr != nil {
			return derr
		}
		dis = append(dis, cdi)
	}
	if apptainer {
		mdi, merr := sif.NewDescriptorInput(sif.DataGenericJSON, bytesReader([]byte(`{"data":{"attributes":{}},"type":"container"}`)),
			sif.OptObjectName(hsif.ApptainerMetadataObjectName), sif.OptGroupID(hsif.SystemGroup))
		if merr != nil {
			return merr
		}
		dis = append(dis, mdi)
	}
	f, err := sif.CreateContainerAtPath(out, sif.OptCreateWithDescriptors(dis...),
		sif.OptCreateDeterministic(), sif.OptCreateWithTime(time.Unix(0, 0)))
	if err != nil {
		return fmt.Errorf("create SIF %s: %w", out, err)
	}
	return f.UnloadContainer()
}

// BusyboxTree writes into dir a minimal root: the static busybox at busybox with a symlink per
// applet in /bin, and /etc/passwd and /etc/group with root only.
func BusyboxTree(dir, busybox string) error {
	for _, d := range []string{"bin", "etc", "home", "tmp", "var/tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		return err
	}
	for _, a := range []string{"sh", "true", "false", "cat", "echo", "id", "ls", "pwd", "env", "sleep", "touch", "mkdir", "grep", "kill", "trap", "test", "stat", "mount", "readlink", "wc", "head"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\n"), 0o644)
}

// AddPartition appends the file system image at file (squashfs, or ext3 when ext3 is true) to
// the SIF at path as a partition, an overlay partition when overlay is true (as Apptainer's
// `overlay create` adds one), and returns its object ID.
func AddPartition(path, file string, ext3, overlay bool) (uint32, error) {
	fs, pt := sif.FsSquash, sif.PartData
	if ext3 {
		fs = sif.FsExt3
	}
	if overlay {
		pt = sif.PartOverlay
	}
	part, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer part.Close()
	di, err := sif.NewDescriptorInput(sif.DataPartition, part, sif.OptPartitionMetadata(fs, pt, "amd64"))
	if err != nil {
		return 0, err
	}
	f, err := sif.LoadContainerFromPath(path)
	if err != nil {
		return 0, err
	}
	if err := f.AddObject(di); err != nil {
		f.UnloadContainer() //nolint:errcheck // the AddObject error says more
		return 0, err
	}
	id := uint32(0)
	f.WithDescriptors(func(d sif.Descriptor) bool {
		id = max(id, d.ID())
		return false
	})
	return id, f.UnloadContainer()
}
