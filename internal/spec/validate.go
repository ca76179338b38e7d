package spec

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Validate checks that the Spec can be applied: every path absolute and clean, a program to run,
// a known backend, ID maps present exactly when a user namespace is asked for.
func (s *Spec) Validate() error {
	var errs []error
	if len(s.Args) == 0 || s.Args[0] == "" {
		errs = append(errs, errors.New("no program to run"))
	}
	if err := checkPath("working directory", s.Cwd); err != nil {
		errs = append(errs, err)
	}
	if s.CwdFallback != "" {
		if err := checkPath("fallback working directory", s.CwdFallback); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.RootFS.validate(); err != nil {
		errs = append(errs, err)
	}
	if s.Namespaces.User && (len(s.UIDMap) == 0 || len(s.GIDMap) == 0) {
		errs = append(errs, errors.New("a user namespace needs UID and GID maps"))
	}
	if !s.Namespaces.User && (len(s.UIDMap) > 0 || len(s.GIDMap) > 0) {
		errs = append(errs, errors.New("ID maps given without a user namespace"))
	}
	if s.Namespaces.UTS && s.Hostname != "" {
		if err := CheckHostname(s.Hostname); err != nil {
			errs = append(errs, err)
		}
	}
	if !s.Namespaces.Mount {
		errs = append(errs, errors.New("a container needs a mount namespace"))
	}
	for i, m := range s.Mounts {
		if err := m.validate(len(s.Images)); err != nil {
			errs = append(errs, fmt.Errorf("mount %d: %w", i+1, err))
		}
	}
	if err := validateOverlays(s.Overlays, len(s.Images)); err != nil {
		errs = append(errs, err)
	}
	for _, im := range s.Images {
		if !path.IsAbs(im.Path) || im.Offset < 0 || im.Size < 0 || im.Partition < 0 {
			errs = append(errs, fmt.Errorf("image %q: want an absolute path and no negative offset, size or partition", im.Path))
		}
	}
	if s.RootFS.Writable && (len(s.Overlays) > 0 || len(s.Images) > 0 || !s.WritableRoot) {
		errs = append(errs, errors.New("a writable sandbox root takes no overlays or extra images and is a writable root"))
	}
	for _, e := range s.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			errs = append(errs, fmt.Errorf("environment entry %q is not NAME=value", e))
		}
	}
	return errors.Join(errs...)
}

func (r RootFS) validate() error {
	if r.Image == "" {
		return errors.New("no image")
	}
	switch r.Backend {
	case BackendLoop, BackendSquashfuse:
		if r.Offset < 0 || r.Size < 0 {
			return fmt.Errorf("image %s: negative partition offset or size", r.Image)
		}
	case BackendDir:
	default:
		return fmt.Errorf("unknown mount backend %q", r.Backend)
	}
	if r.Writable && r.Backend != BackendDir {
		return fmt.Errorf("image %s: only a sandbox directory runs writable", r.Image)
	}
	return nil
}

func (m Mount) validate(images int) error {
	if err := checkPath("destination", m.Destination); err != nil {
		return err
	}
	if (m.Kind == KindImage) != (m.Image != 0) || m.Image < 0 || m.Image > images {
		return fmt.Errorf("%s mount at %s: image %d of %d", m.Kind, m.Destination, m.Image, images)
	}
	switch m.Kind {
	case KindImage:
		if err := checkPath("path inside the image", m.Source); err != nil {
			return err
		}
		if m.Destination == "/" {
			return errors.New("an image bound onto /: the container's root cannot be replaced by a bind")
		}
	case KindBind:
		if m.Source == "" || !path.IsAbs(m.Source) {
			return fmt.Errorf("bind source %q is not an absolute path", m.Source)
		}
		if m.Destination == "/" {
			// It would hide the whole container root, the image included, behind the source.
			return fmt.Errorf("bind %s onto /: the container's root cannot be replaced by a bind", m.Source)
		}
	case KindSymlink:
		if m.Source == "" {
			return errors.New("symlink without a target")
		}
	case KindProc, KindSysfs, KindTmpfs, KindDevpts:
	default:
		return fmt.Errorf("unknown mount kind %q", m.Kind)
	}
	return nil
}

// checkPath requires an absolute, clean path: "..", "//" or a trailing "/" would make the
// container's view depend on how the child happens to resolve them.
func checkPath(what, p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return fmt.Errorf("%s %q is not an absolute clean path", what, p)
	}
	return nil
}

func validateOverlays(ovs []Overlay, images int) error {
	writable := 0
	for _, o := range ovs {
		if !path.IsAbs(o.Dir) || path.Clean(o.Dir) != o.Dir {
			return fmt.Errorf("overlay %q is not an absolute clean path", o.Dir)
		}
		if o.Image < 0 || o.Image > images || (o.Image > 0 && !o.ReadOnly) {
			return fmt.Errorf("overlay %s: image %d of %d, read-only %v (an image layer is read-only)", o.Dir, o.Image, images, o.ReadOnly)
		}
		if !o.ReadOnly {
			writable++
		}
	}
	if writable > 1 {
		return errors.New("more than one writable overlay: give one, and the others with :ro")
	}
	return nil
}
