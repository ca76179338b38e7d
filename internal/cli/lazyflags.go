package cli

import "github.com/spf13/cobra"

// A launch verb has about a hundred flags, and five verbs share them: defining all of them took
// ~1.5 ms of every container's start (pflag renders each default, a string array's through a
// CSV writer). A launch needs only its own verb's, so Main defines the flags of the command the
// arguments name, and every command's flags when it cannot tell (help, completion, an unknown
// verb): what a user sees is the same either way.

// deferFlags records how cmd's flags are defined, to be done by defineFlagsFor or defineAllFlags.
func (g *Globals) deferFlags(cmd *cobra.Command, define func()) {
	if g.deferred == nil {
		g.deferred = map[*cobra.Command]func(){}
	}
	g.deferred[cmd] = define
}

// defineFlagsFor defines the flags of the command args name, when that is a command with deferred
// flags, and otherwise all of them. The command path comes before a verb's own flags, and root's
// flags are defined, so cobra's Find names the command without them.
func (g *Globals) defineFlagsFor(root *cobra.Command, args []string) {
	if cmd, _, err := root.Find(args); err == nil {
		if define, ok := g.deferred[cmd]; ok {
			define()
			delete(g.deferred, cmd)
			return
		}
	}
	g.defineAllFlags()
}

// defineAllFlags defines every deferred flag set.
func (g *Globals) defineAllFlags() {
	for cmd, define := range g.deferred {
		define()
		delete(g.deferred, cmd)
	}
}
