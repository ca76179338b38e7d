package cli

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Shell completion is cobra's (`hpcctl completion bash|zsh|fish`); these are its dynamic parts.

// completeCompanion completes the arguments of a companion verb (build, sign, ...): hpcctl hands
// their command lines over unparsed, so it asks hpcctl-image, which knows their flags. A missing
// or slow companion completes nothing rather than hanging the shell.
func completeCompanion(verb string) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		path, err := companionPath()
		if err != nil {
			return nil, cobra.ShellCompDirectiveDefault
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		argv := append(append([]string{cobra.ShellCompRequestCmd, verb}, args...), toComplete)
		out, err := exec.CommandContext(ctx, path, argv...).Output()
		if err != nil {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return parseCompletion(out)
	}
}

// parseCompletion reads cobra's __complete output: one completion a line, then ":DIRECTIVE".
func parseCompletion(out []byte) ([]cobra.Completion, cobra.ShellCompDirective) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
		return nil, cobra.ShellCompDirectiveDefault
	}
	d, err := strconv.Atoi(strings.TrimPrefix(lines[len(lines)-1], ":"))
	if err != nil {
		return nil, cobra.ShellCompDirectiveDefault
	}
	var comps []cobra.Completion
	for _, l := range lines[:len(lines)-1] {
		if l = strings.TrimSpace(l); l != "" {
			comps = append(comps, l)
		}
	}
	return comps, cobra.ShellCompDirective(d)
}

// completeInstanceNames completes the names of the caller's running instances on this host that
// start with toComplete, each written after prefix ("" or "instance://").
func completeInstanceNames(prefix, toComplete string) []cobra.Completion {
	dir, err := instanceDir()
	if err != nil {
		return nil
	}
	rs, err := dir.List("*")
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, r := range rs {
		if name := prefix + r.Name; strings.HasPrefix(name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(name, r.Image))
		}
	}
	return out
}

// completeImage completes a launch verb's IMAGE: instance://NAME once "instance:" is typed,
// files otherwise; the program and its arguments after it are files.
func completeImage(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) == 0 && strings.HasPrefix(toComplete, "instance:") {
		return completeInstanceNames(instanceScheme, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveDefault
}

// completeInstanceArg completes the NAME of `instance stop` and `instance list`.
func completeInstanceArg(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeInstanceNames("", toComplete), cobra.ShellCompDirectiveNoFileComp
}
