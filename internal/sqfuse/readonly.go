package sqfuse

import "github.com/hanwen/go-fuse/v2/fuse"

// Every request that would change the image answers EROFS. The mount is read-only too, so the
// kernel refuses most of them before they get here.

func (f *FS) SetAttr(<-chan struct{}, *fuse.SetAttrIn, *fuse.AttrOut) fuse.Status { return f.rofs() }
func (f *FS) Mknod(<-chan struct{}, *fuse.MknodIn, string, *fuse.EntryOut) fuse.Status {
	return f.rofs()
}
func (f *FS) Mkdir(<-chan struct{}, *fuse.MkdirIn, string, *fuse.EntryOut) fuse.Status {
	return f.rofs()
}
func (f *FS) Unlink(<-chan struct{}, *fuse.InHeader, string) fuse.Status { return f.rofs() }
func (f *FS) Rmdir(<-chan struct{}, *fuse.InHeader, string) fuse.Status  { return f.rofs() }
func (f *FS) Rename(<-chan struct{}, *fuse.RenameIn, string, string) fuse.Status {
	return f.rofs()
}
func (f *FS) Link(<-chan struct{}, *fuse.LinkIn, string, *fuse.EntryOut) fuse.Status {
	return f.rofs()
}
func (f *FS) Symlink(<-chan struct{}, *fuse.InHeader, string, string, *fuse.EntryOut) fuse.Status {
	return f.rofs()
}
func (f *FS) SetXAttr(<-chan struct{}, *fuse.SetXAttrIn, string, []byte) fuse.Status {
	return f.rofs()
}
func (f *FS) RemoveXAttr(<-chan struct{}, *fuse.InHeader, string) fuse.Status { return f.rofs() }
func (f *FS) Create(<-chan struct{}, *fuse.CreateIn, string, *fuse.CreateOut) fuse.Status {
	return f.rofs()
}
func (f *FS) Tmpfile(<-chan struct{}, *fuse.CreateIn, *fuse.CreateOut) fuse.Status {
	return f.rofs()
}
func (f *FS) Write(<-chan struct{}, *fuse.WriteIn, []byte) (uint32, fuse.Status) {
	return 0, f.rofs()
}
func (f *FS) Writev(<-chan struct{}, *fuse.WriteIn, [][]byte) (uint32, fuse.Status) {
	return 0, f.rofs()
}
func (f *FS) CopyFileRange(<-chan struct{}, *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	return 0, f.rofs()
}
func (f *FS) Fallocate(<-chan struct{}, *fuse.FallocateIn) fuse.Status { return f.rofs() }

func (f *FS) rofs() fuse.Status {
	f.counts.add(opWrite)
	return fuse.EROFS
}
