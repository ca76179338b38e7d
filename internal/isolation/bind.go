// Package isolation turns a profile, the user's flags and facts about the host and the image into a
// spec.Spec. It makes no system calls: everything it needs is passed in, so unit tests cover it.
package isolation

import (
	"encoding/csv"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// Bind is one parsed -B/--bind entry.
type Bind struct {
	Source      string
	Destination string
	ReadOnly    bool
	// Image, when not nil, makes Source an image file and binds a directory inside it
	// (Apptainer's image-src= and id= options).
	Image *ImageBind
}

// ImageBind is what an image bind takes from its image file.
type ImageBind struct {
	// Src is the directory inside the image (image-src=, default "/").
	Src string
	// Partition is the SIF object ID (id=), 0 for the SIF's root partition or a squashfs file.
	Partition int
}

// ParseBinds parses bind specifications as -B/--bind and $HPCCTL_BIND take them, in Apptainer's
// syntax: each "src[:dst[:opts]]" or a comma-separated list of them, where opts are ro or rw
// (further options may follow after commas, "src:dst:ro,rw" being one bind), and "\," and "\:"
// are a comma and a colon in a path. Relative sources are made absolute against cwd.
func ParseBinds(specs []string, cwd string) ([]Bind, error) {
	var binds []Bind
	for _, s := range specs {
		var cur []string // the fields of the bind being read: src, dst, options
		flush := func() error {
			if cur == nil {
				return nil
			}
			b, err := newBind(cur, cwd)
			binds = append(binds, b)
			cur = nil
			return err
		}
		for _, tok := range splitEscaped(s, ',') {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				continue
			}
			if len(cur) == 3 && isBindOption(tok) {
				cur[2] += "," + tok
				continue
			}
			if err := flush(); err != nil {
				return nil, err
			}
			cur = splitEscaped(tok, ':')
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return binds, nil
}

// isBindOption reports whether a comma-separated token is an option of the bind before it.
func isBindOption(tok string) bool {
	return tok == "ro" || tok == "rw" || strings.HasPrefix(tok, "image-src=") || strings.HasPrefix(tok, "id=")
}

// splitEscaped splits s at each sep not preceded by a backslash and unescapes "\\sep"; the
// other escape ("\\," or "\\:") is left for the next split.
func splitEscaped(s string, sep byte) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == sep:
			b.WriteByte(sep)
			i++
		case s[i] == '\\' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == ':'):
			b.WriteString(s[i : i+2])
			i++
		case s[i] == sep:
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(s[i])
		}
	}
	return append(out, b.String())
}

func newBind(parts []string, cwd string) (Bind, error) {
	s := strings.Join(parts, ":")
	if len(parts) > 3 || parts[0] == "" {
		return Bind{}, fmt.Errorf("bind %q: want src[:dst[:ro|rw]] (write a colon or comma in a path as \\: or \\,)", s)
	}
	b := Bind{Source: parts[0]}
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
		rw := false
		for _, opt := range strings.Split(parts[2], ",") {
			rw = rw || opt == "rw"
			if err := b.option(opt); err != nil {
				return Bind{}, fmt.Errorf("bind %q: %w", s, err)
			}
		}
		if b.Image != nil && rw {
			return Bind{}, fmt.Errorf("bind %q: an image bind is read-only: leave out rw", s)
		}
	}
	if b.Image != nil {
		// Squashfs is read-only; saying so keeps the Spec and the mount flags in agreement.
		b.ReadOnly = true
	}
	return b, nil
}

// option applies one bind option.
func (b *Bind) option(opt string) error {
	switch {
	case opt == "ro":
		b.ReadOnly = true
	case opt == "rw":
	case strings.HasPrefix(opt, "image-src="):
		src := strings.TrimPrefix(opt, "image-src=")
		if !path.IsAbs(src) {
			return fmt.Errorf("option %q: give the directory inside the image as an absolute path, e.g. image-src=/", opt)
		}
		b.image().Src = path.Clean(src)
	case strings.HasPrefix(opt, "id="):
		id, err := strconv.Atoi(strings.TrimPrefix(opt, "id="))
		if err != nil || id < 1 {
			return fmt.Errorf("option %q: want the SIF object ID of a partition, a number from 1 (hpcctl inspect IMAGE lists them)", opt)
		}
		b.image().Partition = id
	default:
		return fmt.Errorf("option %q is neither ro nor rw, nor image-src=DIR or id=N for an image", opt)
	}
	return nil
}

// image returns b's image options, making them on first use.
func (b *Bind) image() *ImageBind {
	if b.Image == nil {
		b.Image = &ImageBind{Src: "/"}
	}
	return b.Image
}

// ParseMounts parses --mount values in Docker's and Apptainer's syntax: CSV fields
// "type=bind,source=SRC,destination=DST[,ro]" (src, dst and target are accepted too; readonly
// means ro); several mounts may be given on separate lines. Only type=bind exists, as in
// Apptainer.
func ParseMounts(specs []string, cwd string) ([]Bind, error) {
	var binds []Bind
	for _, s := range specs {
		r := csv.NewReader(strings.NewReader(s))
		r.FieldsPerRecord = -1
		records, err := r.ReadAll()
		if err != nil {
			return nil, fmt.Errorf("--mount %q: %w", s, err)
		}
		for _, rec := range records {
			b, err := parseMount(rec, cwd)
			if err != nil {
				return nil, fmt.Errorf("--mount %q: %w", s, err)
			}
			binds = append(binds, b)
		}
	}
	return binds, nil
}

func parseMount(fields []string, cwd string) (Bind, error) {
	var src, dst string
	var opts []string
	for _, f := range fields {
		key, val, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch key {
		case "type":
			if val != "bind" {
				return Bind{}, fmt.Errorf("mount type %q: only type=bind exists", val)
			}
		case "source", "src":
			src = val
		case "destination", "dst", "target":
			dst = val
		case "ro", "readonly":
			opts = append(opts, "ro")
		case "image-src", "id":
			opts = append(opts, strings.TrimSpace(f))
		case "bind-propagation":
			return Bind{}, errors.New("bind-propagation cannot be set per mount: binds are private")
		default:
			return Bind{}, fmt.Errorf("unknown key %q: want type=bind,source=SRC,destination=DST[,ro]", key)
		}
	}
	if src == "" || dst == "" {
		return Bind{}, errors.New("give both source= and destination=")
	}
	parts := []string{src, dst}
	if len(opts) > 0 {
		parts = append(parts, strings.Join(opts, ","))
	}
	return newBind(parts, cwd)
}

// ParseOverlays parses --overlay values, each "dir" (writable: changes persist in dir/upper) or
// "dir:ro" (an extra read-only layer). Relative directories are made absolute against cwd.
func ParseOverlays(specs []string, cwd string) ([]spec.Overlay, error) {
	return ParseOverlaysWith(specs, cwd, nil)
}

// ParseOverlaysWith is ParseOverlays where isImage says which paths are image files (squashfs,
// or a SIF with an overlay partition) rather than directories: those are read-only layers, with
// or without :ro, as in Apptainer, and their Image numbers them from 1 in order (Build makes
// them the first of Spec.Images).
func ParseOverlaysWith(specs []string, cwd string, isImage func(string) bool) ([]spec.Overlay, error) {
	var out []spec.Overlay
	writable, images := 0, 0
	for _, s := range specs {
		dir, opt, found := strings.Cut(s, ":")
		if dir == "" || (found && opt != "ro" && opt != "rw") {
			return nil, fmt.Errorf("--overlay %q: want dir or dir:ro", s)
		}
		if !path.IsAbs(dir) {
			dir = path.Join(cwd, dir)
		}
		o := spec.Overlay{Dir: path.Clean(dir), ReadOnly: opt == "ro"}
		if isImage != nil && isImage(o.Dir) {
			if opt == "rw" {
				return nil, fmt.Errorf("--overlay %q: a squashfs image is a read-only layer: leave out :rw (writable overlays are directories)", s)
			}
			images++
			o.ReadOnly, o.Image = true, images
		}
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
