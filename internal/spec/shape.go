package spec

import "slices"

// Shape is what a container's setup process is started with: its namespaces and, with a user
// namespace, the ID maps. The profile and the user decide it before the image is even opened, so
// the launcher can start that process while the rest of the Spec is being made.
type Shape struct {
	Namespaces     Namespaces
	UIDMap, GIDMap []IDMap
}

// Shape returns the Spec's namespaces and ID maps.
func (s *Spec) Shape() Shape {
	return Shape{Namespaces: s.Namespaces, UIDMap: s.UIDMap, GIDMap: s.GIDMap}
}

// Equal reports whether a process started with a can run a Spec of shape b.
func (a Shape) Equal(b Shape) bool {
	return a.Namespaces == b.Namespaces && slices.Equal(a.UIDMap, b.UIDMap) && slices.Equal(a.GIDMap, b.GIDMap)
}
