package cli

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/hostfacts"
	"github.com/hpcctl/hpcctl/internal/isolation"
)

// sandboxOptions are the flags of root and writing inside the container: --fakeroot (root
// without real root, as a recipe build's stage has it) and --writable (a sandbox directory
// read-write). They live here, apart from Apptainer's other flags (apptainer.go).
type sandboxOptions struct {
	fakeroot bool
	writable bool
	// mapping is --fakeroot's, once resolved (nil: no fakeroot, or real root).
	mapping *isolation.Fakeroot
}

func addSandboxFlags(cmd *cobra.Command, o *sandboxOptions) {
	f := cmd.Flags()
	f.BoolVarP(&o.writable, "writable", "w", false, "run a sandbox directory read-write: the program's changes are the directory's (yours, or root's when you are root)")
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
	if o.mapping != nil || o.writable {
		lo.userns, lo.noSession = true, true
	}
}

// options adds the settings to a launch's isolation options, checking first that a --writable
// image is a directory the user may write as its owner: a plain user's user namespace maps only
// their own IDs (and, with --fakeroot, their subordinate ones), so another owner's sandbox would
// be read-only in it anyway.
func (o *sandboxOptions) options(opts *isolation.Options, image string) error {
	opts.Fakeroot = o.mapping
	if !o.writable {
		return nil
	}
	opts.WritableSandbox = true
	st, err := os.Stat(image)
	if err != nil {
		return fmt.Errorf("--writable: %w", err)
	}
	if !st.IsDir() {
		// isolation.Build says what to use instead.
		return nil
	}
	uid := os.Getuid()
	if owner := int(st.Sys().(*syscall.Stat_t).Uid); uid != 0 && owner != uid {
		return fmt.Errorf("--writable: the sandbox %s belongs to UID %d, not to you: a plain user runs only their own sandbox read-write (copy it, e.g. with hpcctl build --sandbox, or leave out --writable)", image, owner)
	}
	return nil
}
