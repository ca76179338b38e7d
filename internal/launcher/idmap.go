package launcher

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// writeMaps maps the started setup process's IDs: the user's own ID directly, anything more
// through newuidmap and newgidmap. The process waits for its Spec before it does anything, and
// the Spec is sent after this.
func writeMaps(pid int, sh spec.Shape) error {
	if needsMapHelper(sh) {
		return writeMapsWithHelpers(pid, sh)
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	// An unprivileged process may map its GID only after denying setgroups(2): otherwise it
	// could drop a supplementary group that denies it access (CVE-2014-8989).
	for _, m := range []struct{ file, content string }{
		{"setgroups", "deny"}, {"uid_map", mapLines(sh.UIDMap)}, {"gid_map", mapLines(sh.GIDMap)},
	} {
		if err := os.WriteFile(dir+m.file, []byte(m.content), 0); err != nil {
			return fmt.Errorf("map the container's IDs: %w", err)
		}
	}
	return nil
}

// mapLines is an ID map as /proc/PID/uid_map takes it.
func mapLines(maps []spec.IDMap) string {
	var b strings.Builder
	for _, m := range maps {
		fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
	}
	return b.String()
}

// needsMapHelper reports whether the shape maps more than the user's own ID: only the setuid
// newuidmap and newgidmap may write such maps (the user's /etc/subuid and /etc/subgid ranges,
// for --fakeroot), and only once the process exists, so the kernel's direct write at clone time
// cannot do it.
func needsMapHelper(sh spec.Shape) bool {
	return sh.Namespaces.User && (len(sh.UIDMap) > 1 || len(sh.GIDMap) > 1)
}

// writeMapsWithHelpers maps the started setup process's IDs through newuidmap and newgidmap.
func writeMapsWithHelpers(pid int, sh spec.Shape) error {
	for _, m := range []struct {
		tool string
		maps []spec.IDMap
	}{{"newuidmap", sh.UIDMap}, {"newgidmap", sh.GIDMap}} {
		args := []string{strconv.Itoa(pid)}
		for _, e := range m.maps {
			args = append(args, strconv.FormatUint(uint64(e.ContainerID), 10), strconv.FormatUint(uint64(e.HostID), 10), strconv.FormatUint(uint64(e.Size), 10))
		}
		path, err := exec.LookPath(m.tool)
		if err != nil {
			return fmt.Errorf("%s is not installed: --fakeroot needs it to map your /etc/subuid and /etc/subgid ranges (install the uidmap package)", m.tool)
		}
		if b, err := exec.Command(path, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s (check your ranges in /etc/subuid and /etc/subgid)", m.tool, strings.Join(args, " "), err, strings.TrimSpace(string(b)))
		}
	}
	return nil
}

// allCaps lists every capability the kernel knows. A helper-mapped setup process is unmapped at
// its execve (its maps are written after), so it keeps only its ambient capabilities, and its
// credentials are what overlayfs acts with on the upper layer: under --fakeroot the program's
// chown and chmod there must succeed, so it gets them all, in its own namespace only.
func allCaps() []uintptr {
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	caps := make([]uintptr, 0, last+1)
	for c := 0; c <= last; c++ {
		caps = append(caps, uintptr(c))
	}
	return caps
}
