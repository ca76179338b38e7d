// Package sif reads and writes hpcctl's SIF images on sylabs/sif/v2: the squashfs system partition
// and the metadata objects beside it.
package sif

// An hpcctl SIF holds, in one descriptor group:
//   - the primary system partition (sif.DataPartition, sif.FsSquash, sif.PartPrimSys), the root file system;
//   - the OCI image config (sif.DataGenericJSON named ConfigObjectName): Env, Entrypoint, Cmd,
//     WorkingDir, User, Labels, as imagespec v1.ImageConfig inside a v1.Image;
//   - the labels (sif.DataLabels, JSON object of strings), as Apptainer stores them, for its tools;
//   - the build provenance (sif.DataGenericJSON named ProvenanceObjectName): source reference and
//     digest, hpcctl version, build options;
//   - the definition file when built from one (sif.DataDeffile).
//
// Images made by Apptainer/SingularityCE have the same system partition but keep their runscript,
// environment and labels inside the squashfs under /.singularity.d; readers fall back to those.
const (
	ConfigObjectName     = "oci-config.json"
	ProvenanceObjectName = "hpcctl-provenance.json"
	LabelsObjectName     = "labels.json"
	DeffileObjectName    = "hpcctl.def"
	// ApptainerMetadataObjectName is the object Apptainer's builds write (its inspect data): a
	// SIF with it and without hpcctl's provenance was built by Apptainer, which may store an OCI
	// config too but runs /.singularity.d/runscript (issue 15).
	ApptainerMetadataObjectName = "inspect-metadata.json"
)

// SystemGroup is the descriptor group of the system partition and its metadata; signatures cover it.
const SystemGroup = 1
