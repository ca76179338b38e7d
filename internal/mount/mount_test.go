package mount

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFlagString(t *testing.T) {
	tests := []struct {
		flags uintptr
		want  string
	}{
		{0, "rw"},
		{unix.MS_BIND | unix.MS_REC, "bind,rec"},
		{unix.MS_RDONLY | unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSUID, "ro,nosuid,remount,bind"},
		{1 << 30, "0x40000000"},
	}
	for _, tt := range tests {
		if got := FlagString(tt.flags); got != tt.want {
			t.Errorf("FlagString(%#x) = %q, want %q", tt.flags, got, tt.want)
		}
	}
}

func TestErrorNamesEverything(t *testing.T) {
	err := error(&Error{Source: "/dev/loop3", Target: "/tmp/lower", FSType: "squashfs", Flags: unix.MS_RDONLY, Data: "errors=continue", Err: unix.EINVAL})
	want := "mount /dev/loop3 on /tmp/lower type squashfs (ro,errors=continue): invalid argument"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Error("does not unwrap to the errno")
	}
}
