package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.podman.io/image/v5/docker"
)

// ResolveDigest asks the registry which manifest a docker:// reference names now: one manifest
// request, no blob. A SIF already built from that digest can then be used as it is.
func ResolveDigest(ctx context.Context, ref string, opts SourceOptions) (string, error) {
	transport, name, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	if transport != TransportDocker {
		return "", fmt.Errorf("resolve %s: only docker:// references name a registry", ref)
	}
	srcRef, err := imageReference(ref)
	if err != nil {
		return "", err
	}
	root, err := opts.cacheDir()
	if err != nil {
		return "", err
	}
	d, err := docker.GetDigest(ctx, opts.sourceContext(root), srcRef)
	if err != nil && headNotFound(err) {
		return "", &Error{Kind: ErrNotFound, Err: err, Msg: fmt.Sprintf(
			"pull %s: image not found: check the name and tag%s", ref, notFoundHint(transport))}
	}
	if err != nil {
		return "", classify(err, ref, transport, name, opts)
	}
	return d.String(), nil
}

// headNotFound recognises a 404 to the manifest HEAD request: the answer has no body, so
// containers/image reports the bare status rather than a registry error code.
func headNotFound(err error) bool {
	var st docker.UnexpectedHTTPStatusError
	if errors.As(err, &st) {
		return st.StatusCode == http.StatusNotFound
	}
	return strings.Contains(err.Error(), "StatusCode: 404")
}
