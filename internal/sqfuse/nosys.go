package sqfuse

import "github.com/hanwen/go-fuse/v2/fuse"

// Requests a read-only image has no use for answer ENOSYS, after which the kernel stops sending
// them on this connection (fs/fuse: no_access, no_lseek, no_fsync, no_fsyncdir, no_statx; lock
// requests are not sent at all, the mount not asking for POSIX locks). They are defined here,
// not left to go-fuse's defaults, so that each is counted: a warm run's count of requests
// (`hpcctl session list`, sessionbench) leaves none out. TestEveryRequestCounted keeps it so.

func (f *FS) Access(<-chan struct{}, *fuse.AccessIn) fuse.Status { return f.nosys(opAccess) }
func (f *FS) Lseek(<-chan struct{}, *fuse.LseekIn, *fuse.LseekOut) fuse.Status {
	return f.nosys(opLseek)
}
func (f *FS) GetLk(<-chan struct{}, *fuse.LkIn, *fuse.LkOut) fuse.Status { return f.nosys(opLock) }
func (f *FS) SetLk(<-chan struct{}, *fuse.LkIn) fuse.Status              { return f.nosys(opLock) }
func (f *FS) SetLkw(<-chan struct{}, *fuse.LkIn) fuse.Status             { return f.nosys(opLock) }
func (f *FS) Fsync(<-chan struct{}, *fuse.FsyncIn) fuse.Status           { return f.nosys(opFsync) }
func (f *FS) FsyncDir(<-chan struct{}, *fuse.FsyncIn) fuse.Status        { return f.nosys(opFsync) }
func (f *FS) Statx(<-chan struct{}, *fuse.StatxIn, *fuse.StatxOut) fuse.Status {
	return f.nosys(opStatx)
}

func (f *FS) nosys(o op) fuse.Status {
	f.counts.add(o)
	return fuse.ENOSYS
}
