// Package isolation turns a profile, the user's flags and facts about the host and the image into a
// spec.Spec. It makes no system calls: everything it needs is passed in, so unit tests cover it.
package isolation

import (
	"fmt"
	"path"
	"strings"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// Bind is one parsed -B/--bind entry.
type Bind struct {
	Source      string
	Destination string
	ReadOnly    bool
}

// ParseBinds parses bind specifications, each "src[:dst[:ro|rw]]" or a comma-separated list of
// them, as -B/--bind and HPCCTL_BIND take them. Relative sources are made absolute against cwd.
func ParseBinds(specs []string, cwd string) ([]Bind, error) {
	var binds []Bind
	for _, s := range specs {
		for _, one := range strings.Split(s, ",") {
			if strings.TrimSpace(one) == "" {
				continue
			}
			b, err := parseBind(strings.TrimSpace(one), cwd)
			if err != nil {
				return nil, err
			}
			binds = append(binds, b)
		}
	}
	return binds, nil
}

func parseBind(s, cwd string) (Bind, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 || parts[0] == "" {
		return Bind{}, fmt.Errorf("bind %q: want src[:dst[:ro|rw]]", s)
	}
	b := Bind{Source: parts[0], Destination: parts[0]}
	if !path.IsAbs(b.Source) {
		b.Source = path.Join(cwd, b.Source)
	}
	b.Source = path.Clean(b.Source)
	b.Destination = b.Source
	if len(parts) >= 2 && parts[1] != "" {
		if !path.IsAbs(parts[1]) {
			return Bind{}, fmt.Errorf("bind %q: destination %q must be an absolute path", s, parts[1])
		}
		b.Destination = path.Clean(parts[1])
	}
	if b.Destination == "/" {
		// squashfuse_ll or the kernel would only fail later, with nothing to say why.
		return Bind{}, fmt.Errorf("bind %q: cannot bind onto the container's root /: give a destination under it, e.g. %s:/mnt", s, b.Source)
	}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			b.ReadOnly = true
		case "rw":
		default:
			return Bind{}, fmt.Errorf("bind %q: option %q is neither ro nor rw", s, parts[2])
		}
	}
	return b, nil
}

// ParseOverlays parses --overlay values, each "dir" (writable: changes persist in dir/upper) or
// "dir:ro" (an extra read-only layer). Relative directories are made absolute against cwd.
func ParseOverlays(specs []string, cwd string) ([]spec.Overlay, error) {
	var out []spec.Overlay
	writable := 0
	for _, s := range specs {
		dir, opt, found := strings.Cut(s, ":")
		if dir == "" || (found && opt != "ro" && opt != "rw") {
			return nil, fmt.Errorf("--overlay %q: want dir or dir:ro", s)
		}
		if !path.IsAbs(dir) {
			dir = path.Join(cwd, dir)
		}
		o := spec.Overlay{Dir: path.Clean(dir), ReadOnly: opt == "ro"}
		if !o.ReadOnly {
			writable++
		}
		out = append(out, o)
	}
	if writable > 1 {
		return nil, fmt.Errorf("--overlay: %d writable overlays; only one may be writable, give the others with :ro", writable)
	}
	return out, nil
}
