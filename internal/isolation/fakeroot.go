package isolation

import "github.com/hpcctl/hpcctl/internal/spec"

// Fakeroot asks for root in the container without real root (--fakeroot), as a recipe build's
// stage has it: a user namespace mapping the user to 0 and, where the site gave the user
// subordinate IDs, those to 1..N.
type Fakeroot struct {
	// SubUID and SubGID are the user's first /etc/subuid and /etc/subgid ranges; nil maps the
	// user alone (to 0), and changing a file's owner to another ID then fails.
	SubUID, SubGID *IDRange
}

// IDRange is a range of host IDs.
type IDRange struct{ Start, Count uint32 }

// ShapeFor is ShapeOf for a launch that may ask for fakeroot (nil: it does not). Real root
// needs no mapping: --fakeroot changes nothing for it.
func ShapeFor(p Profile, uid, gid int, fr *Fakeroot) spec.Shape {
	sh := ShapeOf(p, uid, gid)
	if fr == nil || uid == 0 {
		return sh
	}
	sh.UIDMap = fakerootMap(uid, fr.SubUID)
	sh.GIDMap = fakerootMap(gid, fr.SubGID)
	return sh
}

// fakerootMap maps id to 0 and the range, if any, to 1..Count: Apptainer's --fakeroot mapping.
// The range is used only when given for both UIDs and GIDs (the caller checks).
func fakerootMap(id int, r *IDRange) []spec.IDMap {
	m := []spec.IDMap{{ContainerID: 0, HostID: uint32(id), Size: 1}}
	if r != nil && r.Count > 0 {
		m = append(m, spec.IDMap{ContainerID: 1, HostID: r.Start, Size: r.Count})
	}
	return m
}

// fakerootOn reports whether the launch runs as root in a user namespace of its own.
func fakerootOn(h Host, o Options) bool { return o.Fakeroot != nil && h.UID != 0 }
