package sif

import (
	"fmt"
	"os"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// Image is what the launcher needs from a SIF file: where the root file system is and how the
// image says to run it.
type Image struct {
	Path string
	// Offset and Size locate the squashfs system partition inside the file.
	Offset int64
	Size   int64
	// Config is the OCI image config stored by hpcctl; nil for images made by Apptainer or
	// SingularityCE, which keep their runscript and environment under /.singularity.d instead.
	Config *ImageConfig
	// Apptainer is true for a SIF built by Apptainer: it runs the same way with or without
	// Config (its runscript and environment scripts are under /.singularity.d).
	Apptainer bool
}

// ImageConfig is what a launch uses of an image's OCI config: the fields of image-spec's v1
// ImageConfig that say how to run it. hpcctl decodes into this rather than image-spec's type,
// whose go-digest dependency compiles regular expressions at start-up: 0.2 ms in each of the two
// processes every job starts.
type ImageConfig struct {
	User       string            `json:"User,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// Open reads the SIF at path and locates its primary system partition and OCI config.
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open SIF image: %w", err)
	}
	defer f.Close()
	return OpenFile(f)
}

// OpenFile is Open for an image already open, named by f.Name(): the launcher reads, checks and
// mounts one descriptor, so that no one can swap the file between those steps.
func OpenFile(f *os.File) (*Image, error) {
	path := f.Name()
	fi, err := Load(f)
	if err != nil {
		return nil, err
	}
	defer fi.UnloadContainer() //nolint:errcheck // read-only: nothing to flush
	return locate(fi, path)
}

// locate finds the system partition and the OCI config of a checked and loaded image.
func locate(fi *sif.FileImage, path string) (*Image, error) {
	d, err := fi.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return nil, fmt.Errorf("SIF image %s has no primary system partition: %w", path, err)
	}
	fs, _, _, err := d.PartitionMetadata()
	if err != nil {
		return nil, fmt.Errorf("SIF image %s: system partition: %w", path, err)
	}
	if fs != sif.FsSquash {
		return nil, fmt.Errorf("SIF image %s: system partition is %v, hpcctl runs squashfs only", path, fs)
	}
	img := &Image{Path: path, Offset: d.Offset(), Size: d.Size()}
	img.Config, err = readConfig(fi)
	if err != nil {
		return nil, fmt.Errorf("SIF image %s: %w", path, err)
	}
	img.Apptainer = hasObject(fi, ApptainerMetadataObjectName) && !hasObject(fi, ProvenanceObjectName)
	return img, nil
}

// readConfig returns the OCI config object, or nil when the image has none.
func readConfig(fi *sif.FileImage) (*ImageConfig, error) {
	var img struct {
		Config ImageConfig `json:"config"`
	}
	ok, err := ReadJSONObject(fi, sif.DataGenericJSON, ConfigObjectName, &img)
	if !ok || err != nil {
		return nil, err
	}
	return &img.Config, nil
}

// hasObject reports whether the image holds a generic JSON object of that name.
func hasObject(fi *sif.FileImage, name string) bool {
	_, err := fi.GetDescriptor(sif.WithDataType(sif.DataGenericJSON), withName(name))
	return err == nil
}
