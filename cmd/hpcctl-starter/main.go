// Command hpcctl-starter is hpcctl's optional setuid-root helper: it mounts images the user cannot
// change with the kernel's squashfs on a shared loop device, in new namespaces, and drops every
// privilege before the program runs. hpcctl runs it; installed by `make install-suid` (docs/launch.md).
package main

import (
	"os"

	"github.com/hpcctl/hpcctl/internal/starter"
)

func main() {
	os.Exit(starter.Main())
}
