package isolation

import (
	"errors"
	"fmt"
)

// Verb is the command that launches the container.
type Verb string

// Verbs.
const (
	VerbExec  Verb = "exec"
	VerbRun   Verb = "run"
	VerbShell Verb = "shell"
	VerbTest  Verb = "test"
)

// apptainerEnv sources an Apptainer image's environment scripts before running the program, as
// Apptainer's own action scripts do; "$@" is the program.
const apptainerEnv = `for f in /.singularity.d/env/*.sh; do if [ -f "$f" ]; then . "$f"; fi; done; exec "$@"`

const shellScript = `if [ -x /bin/bash ]; then exec /bin/bash "$@"; fi; exec /bin/sh "$@"`

const testScript = `if [ -x /.singularity.d/test ]; then exec /.singularity.d/test "$@"; fi; echo "hpcctl: the image defines no test" >&2; exit 0`

// Argv returns the program a verb runs in img: an image without an OCI config (Apptainer's) has
// its runscript and environment scripts under /.singularity.d.
func Argv(verb Verb, img Image, args []string) ([]string, error) {
	var argv []string
	switch verb {
	case VerbExec:
		if len(args) == 0 {
			return nil, errors.New("no command given to run in the container")
		}
		argv = args
	case VerbRun:
		if !img.OCIConfig {
			argv = append([]string{"/.singularity.d/runscript"}, args...)
			break
		}
		argv = append(argv, img.Entrypoint...)
		if len(args) > 0 {
			argv = append(argv, args...)
		} else {
			argv = append(argv, img.Cmd...)
		}
		if len(argv) == 0 {
			return nil, errors.New("the image sets no entrypoint or command; use hpcctl exec IMAGE COMMAND")
		}
	case VerbShell:
		argv = append([]string{"/bin/sh", "-c", shellScript, "sh"}, args...)
	case VerbTest:
		argv = append([]string{"/bin/sh", "-c", testScript, "sh"}, args...)
	default:
		return nil, errors.New("unknown verb " + string(verb))
	}
	if !img.OCIConfig {
		argv = append([]string{"/bin/sh", "-c", apptainerEnv, "sh"}, argv...)
	}
	return argv, nil
}

// AppArgv is Argv for a SCIF app of an Apptainer image (--app NAME): run runs the app's runscript
// and test its test; exec and shell run as without it. The wrapper Build makes sources the app's
// environment.
func AppArgv(verb Verb, img Image, app string, args []string) ([]string, error) {
	if err := CheckAppName(app); err != nil {
		return nil, err
	}
	if img.OCIConfig {
		return nil, fmt.Errorf("--app %s: an OCI image has no SCIF apps (they are in images built by Apptainer from a definition file)", app)
	}
	dir := "/scif/apps/" + app + "/scif/"
	switch verb {
	case VerbRun:
		return append([]string{"/bin/sh", "-c", apptainerEnv, "sh", dir + "runscript"}, args...), nil
	case VerbTest:
		script := `if [ -x ` + dir + `test ]; then exec ` + dir + `test "$@"; fi; echo "hpcctl: the app defines no test" >&2; exit 0`
		return append([]string{"/bin/sh", "-c", apptainerEnv, "sh", "/bin/sh", "-c", script, "sh"}, args...), nil
	}
	return Argv(verb, img, args)
}
