package build

import (
	"fmt"

	"github.com/hpcctl/hpcctl/internal/deffile"
	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// runPlan is what the parent hands the build stage (the same binary, re-executed in the fakeroot
// namespaces) as JSON: every stage's base, already fetched and on disk, and its sections.
type runPlan struct {
	// Work is the scratch directory; each stage works in Work/stageN.
	Work string
	// DefName is the recipe's name for messages; Deffile its bytes as written.
	DefName string
	Deffile []byte
	Stages  []planStage
	// Created is the image time (SOURCE_DATE_EPOCH or the base's creation time); later file
	// times are clamped to it.
	Created     int64
	Compression squashfs.Compression
	Level       int
	BlockSize   uint32
	Arch        string
	Version     string
	NoTest      bool
	// Squashfuse is squashfuse_ll's path, for a user namespace, where loop devices are root's.
	Squashfuse string
	// RealRoot: no user namespace, the kernel mounts squashfs from a loop device.
	RealRoot bool
	// Sandbox, when set, is the directory the final stage's tree is copied to instead of a SIF.
	Sandbox string
	// KeepFailed keeps the work directory when a stage fails.
	KeepFailed bool
	// Cwd is the build's working directory: relative %files sources are relative to it.
	Cwd string
}

// planStage is one stage of the recipe.
type planStage struct {
	Name  string
	Stage deffile.Stage
	// Base is the lower layer: "" (scratch), a directory, or a squashfs image (BaseOffset and
	// BaseSize locate it inside a SIF).
	Base       string
	BaseIsSqfs bool
	BaseOffset int64
	BaseSize   int64
	// Env, Entrypoint, Cmd and Labels are the base image's OCI config, for the runscript and
	// environment Apptainer writes for an OCI base.
	OCI        bool
	Env        []string
	Entrypoint []string
	Cmd        []string
	Labels     map[string]string
}

// stageResult is what the build stage reports back.
type stageResult struct {
	Stats squashfs.Stats
	// Labels are the final image's labels.json, for the SIF's labels object.
	Labels map[string]string
}

// SectionError is a recipe section that failed: the build stops with its exit status.
type SectionError struct {
	File    string
	Section string
	Line    int
	Status  int
	Err     error `json:"-"`
}

func (e *SectionError) Error() string {
	if e.Status > 0 {
		return fmt.Sprintf("%s:%d: %%%s failed with exit status %d", e.File, e.Line, e.Section, e.Status)
	}
	return fmt.Sprintf("%s:%d: %%%s failed: %v", e.File, e.Line, e.Section, e.Err)
}

func (e *SectionError) Unwrap() error { return e.Err }
