package mount

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LoopLock is the lock file that AttachShared takes, the same for root's launches and the setuid
// starter's: both then find each other's device, and every kernel mount of one image on a node
// is one loop device, one squashfs superblock and one page cache. /run is root's; the file is
// opened without following links.
const LoopLock = "/run/hpcctl-loop.lock"

// AttachShared returns a read-only, autoclear loop device bound to the byte range [offset,
// offset+size) of the file open as backing: one that another container of the same image
// already uses, else a new one. The search and the attach happen under an exclusive lock on
// lockPath, so that containers of one image started together all find the first one's device
// instead of each attaching its own (64 jobs of one array would otherwise take 64 devices).
//
// The returned descriptor keeps the device bound: autoclear acts on the last close, so a device
// found here cannot be cleared between this call and the mount, and one being cleared as it is
// found fails its status query and is passed over. Close it once it is mounted.
func AttachShared(backing *os.File, offset, size int64, lockPath string) (*os.File, string, error) {
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("loop device lock: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, "", fmt.Errorf("loop device lock: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(backing.Fd()), &st); err != nil {
		return nil, "", fmt.Errorf("stat the image: %w", err)
	}
	if dev, path := findLoop(st, offset, size); dev != nil {
		return dev, path, nil
	}
	return AttachLoop(backing, offset, size)
}

// findLoop looks for a bound loop device (those with a "loop" directory in sysfs) whose backing
// file is the inode st, at offset with size, read-only and autoclear.
func findLoop(st unix.Stat_t, offset, size int64) (*os.File, string) {
	// One stat per device: a glob would open and list every device's directory.
	devs, _ := os.ReadDir("/sys/block")
	for _, d := range devs {
		name := d.Name()
		if n, err := strconv.Atoi(strings.TrimPrefix(name, "loop")); err != nil || n < 0 || !strings.HasPrefix(name, "loop") {
			continue
		}
		var sys unix.Stat_t
		if unix.Stat("/sys/block/"+name+"/loop", &sys) != nil {
			continue // not bound
		}
		path := "/dev/" + name
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		// Asked after the open: what the device is bound to now, while we hold it.
		info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
		want := uint32(unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR)
		if err == nil && info.Device == st.Dev && info.Inode == st.Ino && info.Offset == uint64(offset) &&
			info.Sizelimit == uint64(size) && info.Flags&want == want {
			return f, path
		}
		f.Close()
	}
	return nil, ""
}
