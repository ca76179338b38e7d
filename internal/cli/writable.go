package cli

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/hostfacts"
	"github.com/hpcctl/hpcctl/internal/isolation"
)

// sandboxOptions are the flags of root and writing inside the container: --fakeroot (root
// without real root, as a recipe build's stage has it) and --writable (a sandbox directory
// read-write). They live here, apart from Apptainer's other flags (apptainer.go).
type sandboxOptions struct {
	fakeroot bool
	// mapping is --fakeroot's, once resolved (nil: no fakeroot, or real root).
	mapping *isolation.Fakeroot
}

func addSandboxFlags(cmd *cobra.Command, o *sandboxOptions) {
	f := cmd.Flags()
	f.BoolVarP(&o.fakeroot, "fakeroot", "f", false, "run as root inside, in a user namespace mapping you to 0 and your /etc/subuid and /etc/subgid ranges to the other IDs (root's files on binds are yours)")
}

// resolve settles --fakeroot for this user: real root needs nothing (said at -v); a user without
// subordinate IDs gets the single-ID mapping, with a warning of what fails then.
func (o *sandboxOptions) resolve(g *Globals) {
	if !o.fakeroot {
		return
	}
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		g.Logger.Info("--fakeroot: you are root already; it changes nothing")
		return
	}
	name := os.Getenv("USER")
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		name = u.Username
	}
	fr, ranged := hostfacts.Fakeroot(name, uid, gid)
	if !ranged && !g.Quiet {
		fmt.Fprintf(g.Stderr, "hpcctl: warning: --fakeroot: no range for %s in %s and %s: only your own IDs are mapped (to root), so changing a file's owner to another ID (chown, apt-get) fails; ask the site to add one (e.g. %s:100000:65536)\n",
			name, hostfacts.SubUIDFile, hostfacts.SubGIDFile, name)
	}
	o.mapping = fr
}

// apply adds the resolved settings to a launch: a fakeroot launch takes the user-namespace path
// (neither the setuid starter, which runs programs as the user, nor a shared image session,
// whose namespace maps the user alone).
func (o *sandboxOptions) apply(lo *launchOptions) {
	if o.mapping != nil {
		lo.userns, lo.noSession = true, true
	}
}
