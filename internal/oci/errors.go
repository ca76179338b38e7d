package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/docker/distribution/registry/api/errcode"
	v2 "github.com/docker/distribution/registry/api/v2"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	ociarchive "go.podman.io/image/v5/oci/archive"
	ocilayout "go.podman.io/image/v5/oci/layout"
)

// ErrorKind says what went wrong in a way a caller can branch on (errors.Is(err, oci.ErrNotFound)).
type ErrorKind int

// The kinds of Error.
const (
	ErrUnknownSource ErrorKind = iota + 1
	ErrNotFound
	ErrUnreachable
	ErrAuth
	ErrCorrupt
	ErrPlatform
	ErrCache
)

func (k ErrorKind) Error() string {
	switch k {
	case ErrUnknownSource:
		return "unknown image source"
	case ErrNotFound:
		return "image not found"
	case ErrUnreachable:
		return "registry unreachable"
	case ErrAuth:
		return "authentication failed"
	case ErrCorrupt:
		return "corrupt image data"
	case ErrPlatform:
		return "no image for the requested platform"
	case ErrCache:
		return "image cache unusable"
	}
	return "image error"
}

// Error is a one-line, user-facing failure that says what to do next; Err keeps the cause.
type Error struct {
	Kind ErrorKind
	Msg  string
	Err  error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap exposes both the kind (for errors.Is) and the underlying cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// classify turns an error from containers/image into an Error naming the source and a remedy.
// Errors it does not recognise are wrapped with the source name, flattened to one line.
func classify(err error, ref, transport, name string, opts SourceOptions) error {
	var e *Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	host := registryHost(transport, name)
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return &lineError{err: err, msg: fmt.Sprintf("pull %s: %s", ref, oneLine(err))}
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return &Error{Kind: ErrCache, Err: err, Msg: fmt.Sprintf(
			"pull %s: no space left for the image cache (%s): free space, or set $%s to a larger file system", ref, rootCause(err), CacheDirEnv)}
	case errors.Is(err, fs.ErrPermission):
		return &lineError{err: err, msg: fmt.Sprintf("pull %s: permission denied: %s", ref, oneLine(err))}
	case isAuthError(err):
		return &Error{Kind: ErrAuth, Err: err, Msg: fmt.Sprintf(
			"pull %s: registry %s refused the credentials: check the entry for %s in %s (or pass --authfile)",
			ref, host, host, authFileHint(opts))}
	case errors.Is(err, ocilayout.ErrMoreThanOneImage) || strings.Contains(err.Error(), "expected 1 item, got"):
		return &Error{Kind: ErrNotFound, Err: err, Msg: fmt.Sprintf(
			"pull %s: the %s holds several images: name one with :TAG", ref, transport)}
	case isNotFound(err):
		return &Error{Kind: ErrNotFound, Err: err, Msg: fmt.Sprintf(
			"pull %s: image not found: check the name and tag%s", ref, notFoundHint(transport))}
	case transport == TransportDocker && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return &Error{Kind: ErrUnreachable, Err: err, Msg: fmt.Sprintf(
			"pull %s: registry %s speaks plain HTTP, not HTTPS: pass --insecure if you trust it", ref, host)}
	case transport == TransportDocker && isTLSError(err):
		return &Error{Kind: ErrUnreachable, Err: err, Msg: fmt.Sprintf(
			"pull %s: registry %s has a TLS certificate this host does not trust (%s): add its CA under /etc/containers/certs.d/%s/, or pass --insecure if you trust it",
			ref, host, rootCause(err), host)}
	case transport == TransportDocker && isNetError(err):
		msg := fmt.Sprintf("pull %s: cannot reach registry %s: %s: check the host name and port and that it is running",
			ref, host, rootCause(err))
		if !opts.Insecure {
			msg += " (pass --insecure if it speaks plain HTTP)"
		}
		return &Error{Kind: ErrUnreachable, Err: err, Msg: msg}
	case transport == TransportOCIArchive || transport == TransportDockerArchive:
		return &Error{Kind: ErrCorrupt, Err: err, Msg: fmt.Sprintf(
			"pull %s: cannot read the archive: %s: is it a complete %s file?", ref, oneLine(err), transport)}
	}
	return &lineError{msg: fmt.Sprintf("pull %s: %s", ref, oneLine(err)), err: err}
}

// lineError flattens a multi-line message from containers/image to one line and keeps the cause
// reachable (context.Canceled, for one).
type lineError struct {
	msg string
	err error
}

func (e *lineError) Error() string { return e.msg }
func (e *lineError) Unwrap() error { return e.err }

func isAuthError(err error) bool {
	var unauth docker.ErrUnauthorizedForCredentials
	if errors.As(err, &unauth) {
		return true
	}
	var ec errcode.Error
	if errors.As(err, &ec) && (ec.Code == errcode.ErrorCodeUnauthorized || ec.Code == errcode.ErrorCodeDenied) {
		return true
	}
	var status docker.UnexpectedHTTPStatusError
	return errors.As(err, &status) && (status.StatusCode == 401 || status.StatusCode == 403)
}

func isNotFound(err error) bool {
	var layoutNF ocilayout.ImageNotFoundError
	var archiveNF ociarchive.ImageNotFoundError
	var fileNF ociarchive.ArchiveFileNotFoundError
	if errors.As(err, &layoutNF) || errors.As(err, &archiveNF) || errors.As(err, &fileNF) || errors.Is(err, os.ErrNotExist) {
		return true
	}
	var ec errcode.Error
	if errors.As(err, &ec) {
		switch ec.Code {
		case v2.ErrorCodeManifestUnknown, v2.ErrorCodeNameUnknown, v2.ErrorCodeBlobUnknown:
			return true
		}
	}
	return strings.Contains(err.Error(), "manifest unknown")
}

// blobDigest finds a digest in an error's text: containers/image names the blob it failed on
// only there ("reading blob sha256:...: open ...: no such file or directory").
var blobDigest = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// missingBlob explains a copy that failed on a blob the source lacks: its manifest was read, so
// the image exists but is incomplete, which classify would call "image not found".
func missingBlob(err error, ref string) error {
	if !isNotFound(err) {
		return nil
	}
	what := "a blob"
	if d := blobDigest.FindString(err.Error()); d != "" {
		what = "blob " + d
	}
	return &Error{Kind: ErrCorrupt, Err: err, Msg: fmt.Sprintf(
		"pull %s: %s is missing from the source: the image is incomplete; copy, save or push it again", ref, what)}
}

func isTLSError(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.As(err, &dnsErr)
}

func notFoundHint(transport string) string {
	switch transport {
	case TransportOCI:
		return " (the directory must be an OCI layout; add :TAG when it holds several images)"
	case TransportOCIArchive, TransportDockerArchive:
		return " (the file must exist; add :TAG when the archive holds several images)"
	}
	return ""
}

// registryHost returns the registry of a docker reference name (after the usual normalisation of
// short names), for messages.
func registryHost(transport, name string) string {
	if transport != TransportDocker {
		return ""
	}
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		host, _, _ := strings.Cut(name, "/")
		return host
	}
	return reference.Domain(named)
}

func authFileHint(opts SourceOptions) string {
	if opts.AuthFile != "" {
		return opts.AuthFile
	}
	return "$REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json or ~/.docker/config.json"
}

// rootCause returns the innermost error's text, which for network errors is the useful part
// ("connection refused").
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return oneLine(err)
		}
		err = next
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
