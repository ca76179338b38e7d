package oci

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// childPullEnv makes the test binary act as a second hpcctl process: it pulls the named ref into
// $HPCCTL_CACHEDIR and exits, so tests can race real processes on one cache.
const childPullEnv = "HPCCTL_OCI_TEST_CHILD_PULL"

func TestMain(m *testing.M) {
	if ref := os.Getenv(childPullEnv); ref != "" {
		img, err := Pull(context.Background(), ref, SourceOptions{})
		if err == nil {
			for _, l := range img.Layers {
				if _, err = readLayerErr(l); err != nil {
					break
				}
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
