package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref, transport, name string
		wantErr              string
	}{
		{ref: "docker://127.0.0.1:5000/test/img:1", transport: "docker", name: "127.0.0.1:5000/test/img:1"},
		{ref: "docker://busybox", transport: "docker", name: "busybox"},
		{ref: "oci:/tmp/layout:v1", transport: "oci", name: "/tmp/layout:v1"},
		{ref: "oci:layout", transport: "oci", name: "layout"},
		{ref: "oci-archive:img.tar:latest", transport: "oci-archive", name: "img.tar:latest"},
		{ref: "docker-archive:/tmp/img.tar", transport: "docker-archive", name: "/tmp/img.tar"},
		{ref: "/some/dir", wantErr: "unknown image source"},
		{ref: "busybox", wantErr: "unknown image source"},
		{ref: "docker-daemon:busybox:latest", wantErr: "use docker://, oci:, oci-archive:, docker-archive: or a directory"},
		{ref: "containers-storage:busybox", wantErr: "unknown image source"},
		{ref: "dir:/tmp/x", wantErr: "unknown image source"},
		{ref: "docker:busybox", wantErr: "write docker://HOST/REPO"},
		{ref: "oci:", wantErr: "names nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			tr, name, err := ParseRef(tt.ref)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRef(%q) error = %v, want it to contain %q", tt.ref, err, tt.wantErr)
				}
				if !errors.Is(err, ErrUnknownSource) {
					t.Errorf("error %v is not ErrUnknownSource", err)
				}
				return
			}
			if err != nil || tr != tt.transport || name != tt.name {
				t.Fatalf("ParseRef(%q) = %q, %q, %v; want %q, %q", tt.ref, tr, name, err, tt.transport, tt.name)
			}
		})
	}
}

func TestImageReferenceMalformed(t *testing.T) {
	_, err := imageReference("docker://UPPER/Case:tag")
	if err == nil || !errors.Is(err, ErrUnknownSource) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("imageReference of a malformed docker ref: %v", err)
	}
}

func TestRegistryHost(t *testing.T) {
	for name, want := range map[string]string{
		"127.0.0.1:5000/test/img:1": "127.0.0.1:5000",
		"localhost/img":             "localhost",
	} {
		if got := registryHost(TransportDocker, name); got != want {
			t.Errorf("registryHost(%q) = %q, want %q", name, got, want)
		}
	}
	// A short name gets the default registry, not its first path component.
	if got := registryHost(TransportDocker, "library/img:1"); got == "" || got == "library" {
		t.Errorf("registryHost of a short name = %q", got)
	}
}
