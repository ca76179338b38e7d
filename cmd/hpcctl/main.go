// Command hpcctl builds signed single-file SIF images from OCI images and runs them on HPC clusters.
package main

import (
	"os"

	"github.com/hpcctl/hpcctl/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
