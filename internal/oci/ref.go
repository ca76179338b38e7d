package oci

import (
	"fmt"
	"strings"

	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
)

// The image sources hpcctl accepts, by containers/image transport name.
const (
	TransportDocker        = "docker"
	TransportOCI           = "oci"
	TransportOCIArchive    = "oci-archive"
	TransportDockerArchive = "docker-archive"
)

var allowedTransports = map[string]bool{
	TransportDocker: true, TransportOCI: true, TransportOCIArchive: true, TransportDockerArchive: true,
}

// ParseRef splits an image source such as docker://host/repo:tag or oci:DIR:TAG into its
// transport and the transport-specific name (for docker, without the leading "//").
// Unknown transports, including a bare path, return an error wrapping ErrUnknownSource, so a caller
// that also accepts directories can test for it first.
func ParseRef(ref string) (transport, name string, err error) {
	transport, name, ok := strings.Cut(ref, ":")
	if !ok || !allowedTransports[transport] {
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
	r, err := alltransports.ParseImageName(ref)
	if err != nil {
		return nil, &Error{Kind: ErrUnknownSource, Msg: fmt.Sprintf("image source %q is malformed: %v", ref, err), Err: err}
	}
	return r, nil
}
