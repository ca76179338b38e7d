package sif

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// Object is one data object of a SIF, as `hpcctl inspect` lists it.
type Object struct {
	ID      uint32 `json:"id"`
	GroupID uint32 `json:"group"`
	LinkID  uint32 `json:"link,omitempty"`
	Type    string `json:"type"`
	Name    string `json:"name,omitempty"`
	Offset  int64  `json:"offset"`
	Size    int64  `json:"size"`
	// Partition fields, for partitions only.
	FSType   string `json:"fsType,omitempty"`
	PartType string `json:"partType,omitempty"`
	Arch     string `json:"arch,omitempty"`
}

// Description is what a SIF says about itself.
type Description struct {
	ID         string            `json:"id"`
	Arch       string            `json:"arch"`
	Created    time.Time         `json:"created"`
	Objects    []Object          `json:"objects"`
	Config     json.RawMessage   `json:"config,omitempty"` // the OCI image config, as stored
	Labels     map[string]string `json:"labels,omitempty"`
	Provenance *Provenance       `json:"provenance,omitempty"`
	Deffile    string            `json:"deffile,omitempty"`
}

// ImageConfig decodes the launch fields of the stored OCI config; nil when the image has none.
func (d *Description) ImageConfig() (*ImageConfig, error) {
	if len(d.Config) == 0 {
		return nil, nil
	}
	var img struct {
		Config ImageConfig `json:"config"`
	}
	if err := json.Unmarshal(d.Config, &img); err != nil {
		return nil, fmt.Errorf("decode the OCI config: %w", err)
	}
	return &img.Config, nil
}

// Describe reads the header, the descriptors and hpcctl's metadata objects of the SIF at path.
// Images made by other tools are described too; their missing objects are left empty.
func Describe(path string) (*Description, error) {
	f, err := LoadPath(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.UnloadContainer() //nolint:errcheck // opened to read: nothing to flush
	return describe(f, path)
}

// describe is Describe for an image already checked and loaded.
func describe(f *sif.FileImage, path string) (*Description, error) {
	d := &Description{ID: f.ID(), Arch: f.PrimaryArch(), Created: f.CreatedAt().UTC()}
	ods, err := f.GetDescriptors()
	if err != nil {
		return nil, fmt.Errorf("%s: read descriptors: %w", path, err)
	}
	for _, od := range ods {
		d.Objects = append(d.Objects, describeObject(od))
	}
	if err := decodeMetadata(f, d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

func describeObject(od sif.Descriptor) Object {
	o := Object{
		ID: od.ID(), GroupID: od.GroupID(), Type: od.DataType().String(), Name: od.Name(),
		Offset: od.Offset(), Size: od.Size(),
	}
	if link, isGroup := od.LinkedID(); link != 0 && !isGroup {
		o.LinkID = link
	}
	if fs, pt, arch, err := od.PartitionMetadata(); err == nil {
		o.FSType, o.PartType, o.Arch = fs.String(), pt.String(), arch
	}
	return o
}

// decodeMetadata fills the config, labels, provenance and definition file from their objects.
func decodeMetadata(f *sif.FileImage, d *Description) error {
	var cfg json.RawMessage
	if ok, err := ReadJSONObject(f, sif.DataGenericJSON, ConfigObjectName, &cfg); err != nil {
		return err
	} else if ok {
		d.Config = cfg
	}
	if _, err := ReadJSONObject(f, sif.DataLabels, "", &d.Labels); err != nil {
		return err
	}
	var prov Provenance
	if ok, err := ReadJSONObject(f, sif.DataGenericJSON, ProvenanceObjectName, &prov); err != nil {
		return err
	} else if ok {
		d.Provenance = &prov
	}
	if od, err := f.GetDescriptor(sif.WithDataType(sif.DataDeffile)); err == nil {
		b, err := readSmallObject(od)
		if err != nil {
			return fmt.Errorf("read definition file object: %w", err)
		}
		d.Deffile = string(b)
	}
	return nil
}

// ReadJSONObject decodes the first object of type t (and name, when not empty) into v. It reports
// false when the image has no such object.
func ReadJSONObject(f *sif.FileImage, t sif.DataType, name string, v any) (bool, error) {
	sel := []sif.DescriptorSelectorFunc{sif.WithDataType(t)}
	if name != "" {
		sel = append(sel, withName(name))
	}
	od, err := f.GetDescriptor(sel...)
	if errors.Is(err, sif.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find %s object %q: %w", t, name, err)
	}
	b, err := readSmallObject(od)
	if err != nil {
		return false, fmt.Errorf("read %s object %q: %w", t, name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s object %q: %w", t, name, err)
	}
	return true, nil
}

// readSmallObject reads a metadata object into memory, refusing one larger than metadata can be:
// Check keeps objects inside the file, but a large image's file is no bound on memory.
func readSmallObject(od sif.Descriptor) ([]byte, error) {
	if od.Size() > maxMetadataObject {
		return nil, fmt.Errorf("object %d is %s, more than image metadata can be (%s): the SIF is corrupt; copy or build it again",
			od.ID(), humanSize(od.Size()), humanSize(maxMetadataObject))
	}
	return od.GetData()
}

func withName(name string) sif.DescriptorSelectorFunc {
	return func(d sif.Descriptor) (bool, error) { return d.Name() == name, nil }
}
