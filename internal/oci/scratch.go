package oci

import (
	"log/slog"

	"go.podman.io/image/v5/types"

	"github.com/hpcctl/hpcctl/internal/scratch"
)

// pullScratch is one pull's directory for containers/image's big temporary files (an unpacked
// oci-archive, staged blobs) under the cache's tmp/, made on first use: a warm build needs none.
// The next pull sweeps it if the process is killed: an interrupted build of a large image must not
// leave gigabytes in a home directory's quota for ever.
type pullScratch struct {
	parent string // the cache's tmp/
	log    *slog.Logger
	dir    *scratch.Dir
}

// use points sys's temporary files at the directory, making it on the first call.
func (s *pullScratch) use(sys *types.SystemContext) error {
	if s.dir == nil {
		d, err := scratch.Make(s.parent, "pull-", s.log)
		if err != nil {
			return err
		}
		s.dir = d
	}
	sys.BigFilesTemporaryDir = s.dir.Path
	return nil
}

// release removes the directory.
func (s *pullScratch) release() {
	if s.dir == nil {
		return
	}
	if err := s.dir.Remove(); err != nil {
		s.log.Warn("remove the temporary directory", "dir", s.dir.Path, "err", err)
	}
	s.dir = nil
}
