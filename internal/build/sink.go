package build

import (
	"bytes"
	"strings"

	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// mountPoints are the paths the launcher binds host files and directories onto. A read-only
// squashfs cannot grow them at run time, so the build adds those an image lacks (Apptainer's
// build does the same), as empty directories and files owned by root.
var mountPoints = []squashfs.Entry{
	{Path: "proc", Type: squashfs.TypeDir, Mode: 0o555},
	{Path: "sys", Type: squashfs.TypeDir, Mode: 0o555},
	{Path: "dev", Type: squashfs.TypeDir, Mode: 0o755},
	{Path: "tmp", Type: squashfs.TypeDir, Mode: 0o1777},
	{Path: "var/tmp", Type: squashfs.TypeDir, Mode: 0o1777},
	{Path: "home", Type: squashfs.TypeDir, Mode: 0o755},
	{Path: "root", Type: squashfs.TypeDir, Mode: 0o700},
	{Path: "mnt", Type: squashfs.TypeDir, Mode: 0o755},
	{Path: "etc/hosts", Type: squashfs.TypeRegular, Mode: 0o644},
	{Path: "etc/resolv.conf", Type: squashfs.TypeRegular, Mode: 0o644},
	{Path: "etc/localtime", Type: squashfs.TypeRegular, Mode: 0o644},
	{Path: "etc/passwd", Type: squashfs.TypeRegular, Mode: 0o644},
	{Path: "etc/group", Type: squashfs.TypeRegular, Mode: 0o644},
}

// adder is what receives the image's entries: the squashfs writer.
type adder interface {
	Add(e squashfs.Entry) error
}

// mountPointSink passes entries to the writer, counts content for progress reports, and notes
// which mount points (or their parents, replaced by something else) the image already has.
type mountPointSink struct {
	w       adder
	p       *progress
	mtime   int64
	present map[string]bool
	// seen holds the image's own /.singularity.d paths and top-level Apptainer links, which
	// addSingularityD leaves as they are.
	seen map[string]bool
	// sdNotDir: the image's /.singularity.d is not a directory, so nothing goes below it.
	sdNotDir bool
}

func newMountPointSink(w adder, p *progress, mtime int64) *mountPointSink {
	present := make(map[string]bool, len(mountPoints)+4)
	for _, m := range mountPoints {
		present[m.Path] = false
	}
	return &mountPointSink{w: w, p: p, mtime: mtime, present: present, seen: map[string]bool{}}
}

// Add forwards one entry.
func (s *mountPointSink) Add(e squashfs.Entry) error {
	if _, ok := s.present[e.Path]; ok {
		s.present[e.Path] = true
	}
	if e.Path == ".singularity.d" || strings.HasPrefix(e.Path, ".singularity.d/") || !strings.Contains(e.Path, "/") {
		s.seen[e.Path] = true
		s.sdNotDir = s.sdNotDir || (e.Path == ".singularity.d" && e.Type != squashfs.TypeDir)
	}
	if e.Type != squashfs.TypeDir && (e.Path == "etc" || e.Path == "var") {
		// A symlinked /var or /etc: their children must not be invented inside the link's place.
		for _, m := range mountPoints {
			if len(m.Path) > len(e.Path) && m.Path[:len(e.Path)+1] == e.Path+"/" {
				s.present[m.Path] = true
			}
		}
	}
	if e.Body != nil && s.p != nil {
		e.Body = countingReader{r: e.Body, p: s.p}
	}
	return s.w.Add(e)
}

// addMissing adds the mount points the image did not have.
func (s *mountPointSink) addMissing() error {
	for _, m := range mountPoints {
		if s.present[m.Path] {
			continue
		}
		m.ModTime = s.mtime
		if m.Type == squashfs.TypeRegular {
			m.Body = bytes.NewReader(nil)
		}
		if err := s.w.Add(m); err != nil {
			return err
		}
	}
	return nil
}

// addSingularityD adds the /.singularity.d files the image lacks, as root's, at the image time:
// an image that brings its own (built by Apptainer) keeps them.
func (s *mountPointSink) addSingularityD(files []sdFile) error {
	for _, f := range files {
		if s.seen[f.Path] || (s.sdNotDir && strings.HasPrefix(f.Path, ".singularity.d/")) {
			continue
		}
		e := squashfs.Entry{Path: f.Path, Mode: f.Mode, ModTime: s.mtime}
		switch {
		case f.Dir:
			e.Type = squashfs.TypeDir
		case f.Link != "":
			e.Type, e.Linkname = squashfs.TypeSymlink, f.Link
		default:
			e.Type, e.Size, e.Body = squashfs.TypeRegular, int64(len(f.Data)), strings.NewReader(f.Data)
		}
		s.seen[f.Path] = true
		if err := s.w.Add(e); err != nil {
			return err
		}
	}
	return nil
}
