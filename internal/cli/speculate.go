package cli

import (
	"os"
	"strings"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/launcher"
)

// The container's setup process is a second Go program that takes ~6 ms to start, and every
// launch waits for it: prestart starts it as soon as the flags and the configuration say which
// namespaces it needs, but that is ~2 ms into hpcctl (the command tree, flag parsing, the
// configuration). speculate starts it before any of that for the commonest launch, `exec|run|
// shell|test [a few flags that do not change the namespaces] IMAGE ...`, with the namespaces of a
// launch without flags; prestart then takes it when the launch's own plan is the same, and ends
// it and starts the right one otherwise (an APPTAINER_* variable, a site's default profile). So
// speculation changes when the process starts, never which process runs the container.

// speculate starts the setup process of a flagless launch when the command line is one.
func (g *Globals) speculate() {
	if !speculable(g.args) || os.Getuid() != os.Geteuid() {
		return
	}
	conf, err := loadConfig("")
	if err != nil {
		return
	}
	if sh, lo, ok := prestartPlan(&launchOptions{}, conf); ok {
		g.early, g.earlyConf = launcher.Prestart(sh, lo), conf
	}
}

// launchConfig is the launch's configuration: the one speculate read, when the flags name no other
// file (it read the same one), so that a launch reads and checks it once.
func (g *Globals) launchConfig(flag string) (*config.Config, error) {
	if flag == "" && g.earlyConf != nil {
		return g.earlyConf, nil
	}
	return loadConfig(flag)
}

// speculable reports whether args are a launch verb whose flags (before the image) cannot change
// the container's namespaces. Anything else, including a flag it does not know, is not.
func speculable(args []string) bool {
	i := 0
	for i < len(args) && isGlobalFlag(args[i]) {
		i++
	}
	if i == len(args) {
		return false
	}
	switch args[i] {
	case "exec", "run", "shell", "test":
	default:
		return false
	}
	for i++; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return true // the image
		}
		name, _, inline := strings.Cut(a, "=")
		switch name {
		case "-e", "--cleanenv", "--no-home":
			if inline {
				return false
			}
		case "-B", "--bind", "--env", "--pwd":
			if !inline {
				i++ // the flag's value
			}
		default:
			return false
		}
	}
	return false
}

func isGlobalFlag(a string) bool {
	switch a {
	case "-v", "--verbose", "-d", "--debug", "-q", "--quiet":
		return true
	}
	return false
}
