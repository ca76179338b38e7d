package oci

import (
	"fmt"
	"strings"

	"go.podman.io/image/v5/docker"
	dockerarchive "go.podman.io/image/v5/docker/archive"
	ociarchive "go.podman.io/image/v5/oci/archive"
	ocilayout "go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/types"
)

// The image sources hpcctl accepts, by containers/image transport name.
const (
	TransportDocker        = "docker"
	TransportOCI           = "oci"
	TransportOCIArchive    = "oci-archive"
	TransportDockerArchive = "docker-archive"
)

// transports maps the accepted transport names to their implementations. Naming them here, rather
// than importing alltransports, keeps the containers-storage transport and its storage drivers out
// of the binary: hpcctl never reads or writes a local container store.
var transports = map[string]types.ImageTransport{
	TransportDocker:        docker.Transport,
	TransportOCI:           ocilayout.Transport,
	TransportOCIArchive:    ociarchive.Transport,
	TransportDockerArchive: dockerarchive.Transport,
}

// ParseRef splits an image source such as docker://host/repo:tag or oci:DIR:TAG into its
// transport and the transport-specific name (for docker, without the leading "//").
// Unknown transports, including a bare path, return an error wrapping ErrUnknownSource, so a caller
// that also accepts directories can test for it first.
func ParseRef(ref string) (transport, name string, err error) {
	transport, name, ok := strings.Cut(ref, ":")
	if !ok || transports[transport] == nil {
		return "", "", &Error{Kind: ErrUnknownSource, Msg: fmt.Sprintf(
			"unknown image source %q: use docker://, oci:, oci-archive:, docker-archive: or a directory", ref)}
	}
	if transport == TransportDocker {
		if !strings.HasPrefix(name, "//") {
			return "", "", &Error{Kind: ErrUnknownSource, Msg: fmt.Sprintf(
				"image source %q: write docker://HOST/REPO[:TAG|@DIGEST]", ref)}
		}
		name = strings.TrimPrefix(name, "//")
	}
	if name == "" {
		return "", "", &Error{Kind: ErrUnknownSource, Msg: fmt.Sprintf("image source %q names nothing after %q", ref, transport+":")}
	}
	return transport, name, nil
}

// imageReference parses ref into a containers/image reference, refusing every transport but ours.
func imageReference(ref string) (types.ImageReference, error) {
	if _, _, err := ParseRef(ref); err != nil {
		return nil, err
	}
	transport, within, _ := strings.Cut(ref, ":")
	r, err := transports[transport].ParseReference(within)
	if err != nil {
		return nil, &Error{Kind: ErrUnknownSource, Msg: fmt.Sprintf("image source %q is malformed: %v", ref, err), Err: err}
	}
	return r, nil
}
