package sif

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/sylabs/sif/v2/pkg/sif"
)

// Provenance records where an image came from and how it was built.
type Provenance struct {
	Source        string `json:"source"`
	SourceDigest  string `json:"sourceDigest,omitempty"`
	HpcctlVersion string `json:"hpcctlVersion"`
	Compression   string `json:"compression"`
	Level         int    `json:"level,omitempty"`
	BlockSize     uint32 `json:"blockSize"`
}

// Metadata is everything the builder stores beside the root file system.
type Metadata struct {
	// Arch is a Go architecture name (amd64, arm64, ...).
	Arch string
	// Created is the image time written into the SIF header and descriptors.
	Created time.Time
	// Config is the OCI image config (an image-spec v1 Image, encoded): the builder encodes it,
	// so that hpcctl, which reads SIF files on every launch, need not link image-spec. Empty for
	// an image built from a definition file.
	Config     json.RawMessage
	Labels     map[string]string
	Provenance Provenance
	// Deffile is the definition file the image was built from, if any.
	Deffile []byte
}

// Write creates a SIF in w holding rootfs (a squashfs image, read to EOF) as the primary system
// partition, with the metadata objects described in objects.go. The output depends only on its
// inputs: the SIF ID is derived from the metadata and the times come from md.Created.
func Write(w sif.ReadWriter, rootfs io.Reader, md Metadata) error {
	objects, err := metadataObjects(md)
	if err != nil {
		return err
	}
	part, err := sif.NewDescriptorInput(sif.DataPartition, rootfs,
		sif.OptGroupID(SystemGroup),
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, md.Arch),
	)
	if err != nil {
		return fmt.Errorf("write SIF: system partition: %w", err)
	}
	id, err := deterministicID(md)
	if err != nil {
		return err
	}
	f, err := sif.CreateContainer(w,
		sif.OptCreateWithID(id),
		sif.OptCreateWithTime(md.Created),
		sif.OptCreateWithLaunchScript("#!/usr/bin/env hpcctl run\n"),
		sif.OptCreateWithCloseOnUnload(false),
		sif.OptCreateWithDescriptors(append([]sif.DescriptorInput{part}, objects...)...),
	)
	if err != nil {
		return fmt.Errorf("write SIF: %w", err)
	}
	if err := f.UnloadContainer(); err != nil {
		return fmt.Errorf("write SIF: %w", err)
	}
	return nil
}

// metadataObjects encodes the config, labels, provenance and definition file objects.
func metadataObjects(md Metadata) ([]sif.DescriptorInput, error) {
	type object struct {
		t    sif.DataType
		name string
		v    any
		raw  []byte
	}
	var list []object
	// An image built from a definition file has no OCI config: like Apptainer's, it is run by
	// its /.singularity.d runscript and environment scripts.
	if len(md.Config) > 0 {
		list = append(list, object{t: sif.DataGenericJSON, name: ConfigObjectName, v: md.Config})
	}
	list = append(list,
		object{t: sif.DataLabels, name: LabelsObjectName, v: labelsOrEmpty(md.Labels)},
		object{t: sif.DataGenericJSON, name: ProvenanceObjectName, v: md.Provenance},
	)
	if len(md.Deffile) > 0 {
		list = append(list, object{t: sif.DataDeffile, name: DeffileObjectName, raw: md.Deffile})
	}
	dis := make([]sif.DescriptorInput, 0, len(list))
	for _, o := range list {
		data := o.raw
		if o.v != nil {
			var err error
			if data, err = json.Marshal(o.v); err != nil {
				return nil, fmt.Errorf("write SIF: encode %s: %w", o.name, err)
			}
		}
		di, err := sif.NewDescriptorInput(o.t, bytes.NewReader(data),
			sif.OptGroupID(SystemGroup), sif.OptObjectName(o.name))
		if err != nil {
			return nil, fmt.Errorf("write SIF: %s: %w", o.name, err)
		}
		dis = append(dis, di)
	}
	return dis, nil
}

func labelsOrEmpty(l map[string]string) map[string]string {
	if l == nil {
		return map[string]string{}
	}
	return l
}

// deterministicID derives the SIF's UUID from the metadata, so that rebuilding the same source
// with the same options gives the same bytes (a random ID would differ on every build).
func deterministicID(md Metadata) (string, error) {
	b, err := json.Marshal(struct {
		Config     json.RawMessage
		Labels     map[string]string
		Provenance Provenance
		Deffile    []byte
		Created    int64
		Arch       string
	}{md.Config, md.Labels, md.Provenance, md.Deffile, md.Created.Unix(), md.Arch})
	if err != nil {
		return "", fmt.Errorf("write SIF: derive ID: %w", err)
	}
	sum := sha256.Sum256(b)
	return uuid.NewSHA1(uuid.NameSpaceOID, sum[:]).String(), nil
}
