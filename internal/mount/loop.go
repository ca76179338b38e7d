package mount

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// loopAttempts bounds the retries when another process takes the free loop device between
// LOOP_CTL_GET_FREE and LOOP_CONFIGURE (EBUSY), which happens when many jobs start at once.
const loopAttempts = 20

// AttachLoop attaches the byte range [offset, offset+size) of the file open as backing to a free
// loop device, read-only and with autoclear, and returns the open device and its path. Autoclear
// detaches the device when its last user (the squashfs mount, then this descriptor) goes away, so
// nothing is left behind however the container ends; close the device once it is mounted.
func AttachLoop(backing *os.File, offset, size int64) (*os.File, string, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open loop control: %w (is the loop module loaded?)", err)
	}
	defer ctl.Close()
	for range loopAttempts {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, "", fmt.Errorf("find a free loop device: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, "", fmt.Errorf("open %s: %w", dev, err)
		}
		err = configureLoop(f, backing, offset, size)
		if err == nil {
			return f, dev, nil
		}
		f.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, "", fmt.Errorf("attach %s to %s: %w", backing.Name(), dev, err)
		}
	}
	return nil, "", fmt.Errorf("attach %s to a loop device: every free device was taken by others %d times", backing.Name(), loopAttempts)
}

func configureLoop(dev, backing *os.File, offset, size int64) error {
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
	cfg.Info.Offset = uint64(offset)
	cfg.Info.Sizelimit = uint64(size)
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], backing.Name())
	err := unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return err
	}
	// Kernels before 5.8 lack LOOP_CONFIGURE: set the file, then the status.
	if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(backing.Fd())); err != nil {
		return err
	}
	if err := unix.IoctlLoopSetStatus64(int(dev.Fd()), &cfg.Info); err != nil {
		unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0) //nolint:errcheck // already failing
		return err
	}
	return nil
}
