// Package rules holds the setuid starter's pure decisions: the tables, parsers and predicates
// that internal/starter applies to values it has read itself (a stat of its own descriptor, the
// kernel's name for it, a root-owned file's bytes, the Spec). Nothing here looks up a path,
// opens a file or changes the process: every such step stays in internal/starter, in the
// privileged process and on its own descriptors, so moving code here moves no check out of it.
// hpcctl uses the same functions to pick the path a launch takes.
package rules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// Prefix is the installation prefix of a starter at exe: PREFIX/libexec/hpcctl/hpcctl-starter
// or PREFIX/bin/hpcctl-starter; "" for any other place.
func Prefix(exe string) string {
	dir := filepath.Dir(exe)
	switch {
	case filepath.Base(dir) == "hpcctl" && filepath.Base(filepath.Dir(dir)) == "libexec":
		return filepath.Dir(filepath.Dir(dir))
	case filepath.Base(dir) == "bin":
		return filepath.Dir(dir)
	}
	return ""
}

// ConfigPaths are where the configuration of a starter at exe may be, first match wins:
// PREFIX/etc/hpcctl/hpcctl.conf under a prefix of its own, then /etc/hpcctl/hpcctl.conf.
func ConfigPaths(exe string) []string {
	if p := Prefix(exe); p != "" && p != "/" && p != "/usr" {
		return []string{filepath.Join(p, "etc", "hpcctl", "hpcctl.conf"), config.DefaultPath}
	}
	return []string{config.DefaultPath}
}

// CompanionPaths are where the hpcctl-image of a starter at exe may be, first match wins:
// beside it, then PREFIX/bin.
func CompanionPaths(exe string) []string {
	paths := []string{filepath.Join(filepath.Dir(exe), "hpcctl-image")}
	if p := Prefix(exe); p != "" {
		paths = append(paths, filepath.Join(p, "bin", "hpcctl-image"))
	}
	return paths
}

// EnvironmentClean reports whether env is empty but for what the Go runtime adds to a setuid
// program's (secure mode forces GOTRACEBACK=none).
func EnvironmentClean(env []string) bool {
	return len(env) == 0 || len(env) == 1 && env[0] == "GOTRACEBACK=none"
}

// CheckSpec refuses a Spec the starter must not run: one with a user namespace or ID maps, or
// without a mount namespace; a PID namespace other than the one the starter is in (pid1: it runs
// as PID 1 of its own); a namespace allowed_namespaces does not list; a backend other than the
// kernel's loop mount. The Spec is the user's: nothing in it is trusted.
func CheckSpec(c *config.Config, s *spec.Spec, pid1 bool) error {
	ns := s.Namespaces
	if ns.User || len(s.UIDMap)+len(s.GIDMap) > 0 || !ns.Mount {
		return errors.New("the launch asks for a user namespace or no mount namespace: run hpcctl --userns")
	}
	if ns.PID != pid1 {
		return errors.New("the PID namespace of the launch and of the starter differ")
	}
	for _, n := range []struct {
		on   bool
		name string
	}{{ns.PID, "pid"}, {ns.IPC, "ipc"}, {ns.Net, "net"}, {ns.UTS, "uts"}} {
		if n.on && !slices.Contains(c.AllowedNamespaces, n.name) {
			return fmt.Errorf("namespace %s is not in allowed_namespaces in %s", n.name, c.Path)
		}
	}
	if s.RootFS.Backend != spec.BackendLoop {
		return fmt.Errorf("it runs only SIF and squashfs images with the kernel (%s backend asked): run hpcctl --userns", s.RootFS.Backend)
	}
	return nil
}

// UnshareFlags are the namespaces the starter makes for a Spec CheckSpec took: always a mount
// namespace; IPC, network and UTS as asked (the PID namespace exists already, no user one).
func UnshareFlags(ns spec.Namespaces) int {
	flags := unix.CLONE_NEWNS
	for _, x := range []struct {
		on   bool
		flag int
	}{{ns.IPC, unix.CLONE_NEWIPC}, {ns.Net, unix.CLONE_NEWNET}, {ns.UTS, unix.CLONE_NEWUTS}} {
		if x.on {
			flags |= x.flag
		}
	}
	return flags
}

// Owners are the UIDs whose files the starter trusts.
type Owners map[uint32]bool

// OwnersOf resolves names (UIDs, or user names looked up in passwd, the contents of
// /etc/passwd: NSS would run code the user may influence) and adds root.
func OwnersOf(names []string, passwd []byte) Owners {
	o := Owners{0: true}
	byName := map[string]uint32{}
	sc := bufio.NewScanner(bytes.NewReader(passwd))
	for sc.Scan() {
		if fl := strings.Split(sc.Text(), ":"); len(fl) > 2 {
			if uid, err := strconv.ParseUint(fl[2], 10, 32); err == nil {
				byName[fl[0]] = uint32(uid)
			}
		}
	}
	for _, n := range names {
		if uid, err := strconv.ParseUint(n, 10, 32); err == nil {
			o[uint32(uid)] = true
		} else if uid, ok := byName[n]; ok {
			o[uid] = true
		}
	}
	return o
}

// SafeFile reports why user could change the file at name (st from lstat), nil when they
// cannot: a trusted owner other than user, writable by no one else, not a symbolic link.
func (o Owners) SafeFile(name string, st *unix.Stat_t, user int) error {
	if !o[st.Uid] || int(st.Uid) == user || st.Mode&0o022 != 0 || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s is owned by UID %d with mode %#o", name, st.Uid, st.Mode&0o7777)
	}
	return nil
}

// SafeDir reports why user could change what the directory at name holds (st from lstat), nil
// when they cannot: a directory of a trusted owner other than user, writable by no one else, or
// sticky (user can then rename or remove only entries of their own).
func (o Owners) SafeDir(name string, st *unix.Stat_t, user int) error {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || !o[st.Uid] || int(st.Uid) == user || st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("directory %s is owned by UID %d with mode %#o", name, st.Uid, st.Mode&0o7777)
	}
	return nil
}

// RootFile refuses a configuration file (st from fstat of the open file) unless it is a
// regular file of root's that no one else can write.
func RootFile(path string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("configuration %s must be a regular file owned by root and writable by no one else (it is owned by UID %d, mode %#o): the setuid starter is off", path, st.Uid, st.Mode&0o7777)
	}
	return nil
}

// InPaths reports whether the real path p is one of dirs or below one (limit_container_paths).
func InPaths(p string, dirs []string) bool {
	return slices.ContainsFunc(dirs, func(dir string) bool {
		d := filepath.Clean(dir)
		return p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/")
	})
}

// CheckLimits applies limit_container_paths and limit_container_owners to an image at the real
// path p owned by uid (names resolved through passwd, as OwnersOf).
func CheckLimits(c *config.Config, p string, uid uint32, passwd []byte) error {
	if len(c.LimitContainerPaths) > 0 && !InPaths(p, c.LimitContainerPaths) {
		return fmt.Errorf("image %s is outside the directories this site runs images from (limit_container_paths in %s)", p, c.Path)
	}
	if len(c.LimitContainerOwners) == 0 {
		return nil
	}
	lim := OwnersOf(c.LimitContainerOwners, passwd)
	if !slices.Contains(c.LimitContainerOwners, "0") && !slices.Contains(c.LimitContainerOwners, "root") {
		delete(lim, 0) // OwnersOf always trusts root; the limit names its owners
	}
	if !lim[uid] {
		return fmt.Errorf("image %s is owned by UID %d, not by a user this site runs images of (limit_container_owners in %s)", p, uid, c.Path)
	}
	return nil
}

// MountedByRoot reports whether the mount with ID id, in mountinfo (/proc/self/mountinfo), is
// a FUSE mount that root made: the kernel's user_id option names the mounter.
func MountedByRoot(mountinfo []byte, id uint64) bool {
	prefix := strconv.FormatUint(id, 10) + " "
	for _, l := range strings.Split(string(mountinfo), "\n") {
		// "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS] - TYPE SOURCE SUPEROPTS"
		_, super, ok := strings.Cut(l, " - ")
		if !strings.HasPrefix(l, prefix) || !ok {
			continue
		}
		fl := strings.Fields(super)
		return len(fl) == 3 && slices.Contains(strings.Split(fl[2], ","), "user_id=0")
	}
	return false
}

// UserWritableDev are the directories of /dev that any user can write: never a host device.
var UserWritableDev = []string{"shm", "mqueue"}

// HostDevice reports whether the real path p (the kernel's name for an open bind source) is
// /dev or below it, outside UserWritableDev.
func HostDevice(p string) bool {
	if p != "/dev" && !strings.HasPrefix(p, "/dev/") {
		return false
	}
	for _, w := range UserWritableDev {
		if p == "/dev/"+w || strings.HasPrefix(p, "/dev/"+w+"/") {
			return false
		}
	}
	return true
}

// PolicyError is the refusal of image (its real path) by the companion's check-policy, which
// failed with err and wrote stderr: its last line, else a line of our own.
func PolicyError(image, stderr string, err error) error {
	msg := strings.TrimSpace(stderr)
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg = strings.TrimPrefix(msg, "hpcctl: "); msg == "" {
		msg = "image " + image + ": refused by the signature policy (" + err.Error() + ")"
	}
	return errors.New(msg)
}

// LastCap parses /proc/sys/kernel/cap_last_cap, the highest capability this kernel knows; 63
// (every bit of the sets) when it cannot.
func LastCap(b []byte) int {
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 {
		return n
	}
	return 63
}
