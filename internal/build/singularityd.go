package build

import (
	"embed"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"
)

// apptainerScripts are Apptainer's own base scripts (see apptainer/README.md).
//
//go:embed apptainer/*.sh
var apptainerScripts embed.FS

// sdFile is one thing hpcctl writes under /.singularity.d (or a top-level link to it): what
// Apptainer's build writes, in the same places and modes, so that Apptainer and hpcctl's own run,
// run-help, test and inspect read an hpcctl-built image as they read Apptainer's.
type sdFile struct {
	Path string // relative to the image root
	Mode uint32
	Data string
	Link string // a symlink's target; Data unused
	Dir  bool
}

// baseSingularityD is Apptainer's base environment (makeBaseEnv in its build sources): the
// directories, action scripts, environment scripts, the default runscript and startscript, and
// the top-level links.
func baseSingularityD() []sdFile {
	files := []sdFile{
		{Path: ".singularity.d", Mode: 0o755, Dir: true},
		{Path: ".singularity.d/libs", Mode: 0o755, Dir: true},
		{Path: ".singularity.d/actions", Mode: 0o755, Dir: true},
		{Path: ".singularity.d/env", Mode: 0o755, Dir: true},
	}
	for _, f := range []struct{ script, path string }{
		{"exec.sh", "actions/exec"}, {"run.sh", "actions/run"}, {"shell.sh", "actions/shell"},
		{"start.sh", "actions/start"}, {"test.sh", "actions/test"},
		{"01-base.sh", "env/01-base.sh"}, {"90-environment.sh", "env/90-environment.sh"},
		{"95-apps.sh", "env/95-apps.sh"}, {"99-base.sh", "env/99-base.sh"},
		{"99-runtimevars.sh", "env/99-runtimevars.sh"},
		{"runscript.sh", "runscript"}, {"startscript.sh", "startscript"},
	} {
		files = append(files, sdFile{Path: ".singularity.d/" + f.path, Mode: 0o755, Data: apptainerScript(f.script)})
	}
	for _, l := range [][2]string{
		{"singularity", ".singularity.d/runscript"}, {".run", ".singularity.d/actions/run"},
		{".exec", ".singularity.d/actions/exec"}, {".test", ".singularity.d/actions/test"},
		{".shell", ".singularity.d/actions/shell"}, {"environment", ".singularity.d/env/90-environment.sh"},
	} {
		files = append(files, sdFile{Path: l[0], Mode: 0o777, Link: l[1]})
	}
	return files
}

func apptainerScript(name string) string {
	b, err := apptainerScripts.ReadFile("apptainer/" + name)
	if err != nil {
		// The scripts are embedded at compile time: a missing one is a broken build of hpcctl.
		return "#!/bin/sh\n"
	}
	return string(b)
}

// ociSingularityD is what Apptainer's OCI bootstrap adds for an image config: the environment as
// 10-docker2singularity.sh, a runscript running ENTRYPOINT and CMD, and the labels.
func ociSingularityD(env, entrypoint, cmd []string, labels map[string]string) []sdFile {
	return []sdFile{
		{Path: ".singularity.d/env/10-docker2singularity.sh", Mode: 0o755, Data: dockerEnvScript(env)},
		{Path: ".singularity.d/runscript", Mode: 0o755, Data: ociRunscript(entrypoint, cmd)},
		{Path: ".singularity.d/labels.json", Mode: 0o644, Data: labelsJSON(labels)},
	}
}

// envName is Apptainer's check of a variable name (variableRegex in its OCI bootstrap).
var envName = regexp.MustCompile(`^[a-zA-Z_]{1,}[a-zA-Z0-9_]{0,}$`)

// dockerEnvScript writes an OCI Env as Apptainer does: PATH is set, every other variable only
// defaults to the image's value, so that the host's (or --env's) wins.
func dockerEnvScript(env []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !envName.MatchString(k):
		case !ok:
			fmt.Fprintf(&b, "export %s=\"${%s:-}\"\n", k, k)
		case k == "PATH":
			fmt.Fprintf(&b, "export %s=\"%s\"\n", k, shellEscape(v))
		default:
			fmt.Fprintf(&b, "export %s=\"${%s:-\"%s\"}\"\n", k, k, shellEscape(v))
		}
	}
	return b.String()
}

// shellEscape escapes a string for use inside double quotes (Apptainer's shell.Escape).
func shellEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`).Replace(s)
}

func singleQuoteEscape(s string) string { return strings.ReplaceAll(s, `'`, `'"'"'`) }

func argsQuoted(a []string) string {
	q := make([]string, len(a))
	for i, v := range a {
		q[i] = `"` + shellEscape(v) + `"`
	}
	return strings.Join(q, " ")
}

// ociRunscriptTemplate is Apptainer's runscript for OCI images (conveyorPacker_oci.go), so that
// `apptainer run` of an hpcctl image does what it does for Apptainer's own build of the same image.
var ociRunscriptTemplate = template.Must(template.New("runscript").Parse(`
# When SINGULARITY_NO_EVAL set, use OCI compatible behavior that does
# not evaluate resolved CMD / ENTRYPOINT / ARGS through the shell, and
# does not modify expected quoting behavior of args.
if [ -n "$SINGULARITY_NO_EVAL" ]; then
    # ENTRYPOINT only - run entrypoint plus args
    if [ -z "$OCI_CMD" ] && [ -n "$OCI_ENTRYPOINT" ]; then
        {{ .PrependEntrypoint }}
        exec "$@"
    fi

    # CMD only - run CMD or override with args
    if [ -n "$OCI_CMD" ] && [ -z "$OCI_ENTRYPOINT" ]; then
        {{- if .PrependCmd }}
        if [ $# -eq 0 ]; then
            {{ .PrependCmd }}
        fi
        {{- end }}
        exec "$@"
    fi

    # ENTRYPOINT and CMD - run ENTRYPOINT with CMD as default args
    # override with user provided args
    {{- if .PrependEntrypoint }}
    if [ $# -gt 0 ]; then
        {{ .PrependEntrypoint }}
	else
        {{ .PrependCmd }}
        {{ .PrependEntrypoint }}
    fi
	{{- else if .PrependCmd }}
    if [ $# -eq 0 ]; then
        {{ .PrependCmd }}
    fi
    {{- end }}
    exec "$@"
fi

# Standard Apptainer behavior evaluates CMD / ENTRYPOINT / ARGS
# combination through shell before exec, and requires special quoting
# due to concatenation of CMDLINE_ARGS.
CMDLINE_ARGS=""
# prepare command line arguments for evaluation
for arg in "$@"; do
        CMDLINE_ARGS="${CMDLINE_ARGS} \"$arg\""
done

# ENTRYPOINT only - run entrypoint plus args
if [ -z "$OCI_CMD" ] && [ -n "$OCI_ENTRYPOINT" ]; then
    if [ $# -gt 0 ]; then
        SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${CMDLINE_ARGS}"
    else
        SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT}"
    fi
fi

# CMD only - run CMD or override with args
if [ -n "$OCI_CMD" ] && [ -z "$OCI_ENTRYPOINT" ]; then
    if [ $# -gt 0 ]; then
        SINGULARITY_OCI_RUN="${CMDLINE_ARGS}"
    else
        SINGULARITY_OCI_RUN="${OCI_CMD}"
    fi
fi

# ENTRYPOINT and CMD - run ENTRYPOINT with CMD as default args
# override with user provided args
if [ $# -gt 0 ]; then
    SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${CMDLINE_ARGS}"
else
    SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${OCI_CMD}"
fi

# Evaluate shell expressions first and set arguments accordingly,
# then execute final command as first container process
eval "set ${SINGULARITY_OCI_RUN}"
exec "$@"
`))

func ociRunscript(entrypoint, cmd []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "OCI_ENTRYPOINT='%s'\n", singleQuoteEscape(argsQuoted(entrypoint)))
	fmt.Fprintf(&b, "OCI_CMD='%s'\n", singleQuoteEscape(argsQuoted(cmd)))
	prepend := func(words []string) string {
		var p strings.Builder
		for i := len(words) - 1; i >= 0; i-- {
			fmt.Fprintf(&p, "set -- '%s' \"$@\"\n", singleQuoteEscape(words[i]))
		}
		return p.String()
	}
	data := struct{ PrependCmd, PrependEntrypoint string }{prepend(cmd), prepend(entrypoint)}
	if err := ociRunscriptTemplate.Execute(&b, data); err != nil {
		// The template and its data are fixed: it cannot fail on a string builder.
		return "#!/bin/sh\nexec \"$@\"\n"
	}
	return b.String()
}

// labelsJSON is labels.json as Apptainer writes it (tab-indented; keys sorted by encoding/json).
func labelsJSON(labels map[string]string) string {
	if labels == nil {
		labels = map[string]string{}
	}
	b, err := json.MarshalIndent(labels, "", "\t")
	if err != nil {
		return "{}"
	}
	return string(b)
}

// recipeScript is a %runscript, %startscript or %test as Apptainer stores it
// (handleShebangScript): the section's own #! line or #!/bin/sh, with the section's arguments
// appended to it.
func recipeScript(body string, args []string) string {
	shebang, script := "#!/bin/sh", body
	if strings.HasPrefix(strings.TrimSpace(body), "#!") {
		first, rest, _ := strings.Cut(body, "\n")
		shebang, script = strings.TrimSpace(first), rest
	}
	if a := sectionArgs(args); a != "" {
		shebang += " " + a
	}
	return shebang + "\n\n" + script + "\n"
}

// sectionArgs are a section's arguments up to a # comment, as Apptainer reads them.
func sectionArgs(args []string) string {
	s, _, _ := strings.Cut(strings.Join(args, " "), "#")
	return strings.TrimSpace(s)
}

// buildLabels are the labels Apptainer's build adds (addBuildLabels), from the image's time
// rather than the clock, so that a rebuild gives the same bytes.
func buildLabels(at time.Time, arch string, header map[string]string, hasHelp bool, version string) map[string]string {
	at = at.UTC()
	l := map[string]string{
		"org.label-schema.schema-version":       "1.0",
		"org.opencontainers.image.created":      at.Format(time.RFC3339),
		"org.label-schema.build-date":           apptainerDate(at),
		"org.opencontainers.image.architecture": arch,
		"org.label-schema.build-arch":           arch,
		"org.label-schema.usage.hpcctl.version": version,
	}
	if hasHelp {
		l["org.label-schema.usage"] = "/.singularity.d/runscript.help"
		l["org.label-schema.usage.apptainer.runscript.help"] = "/.singularity.d/runscript.help"
	}
	for _, k := range slices.Sorted(maps.Keys(header)) {
		l["org.label-schema.usage.singularity.deffile."+k] = header[k]
	}
	return l
}

// apptainerDate is Apptainer's build-date label: Weekday_D_Month_YYYY_H:M:S_ZONE, unpadded.
func apptainerDate(t time.Time) string {
	zone, _ := t.Zone()
	return fmt.Sprintf("%s_%d_%s_%d_%d:%d:%d_%s", t.Weekday(), t.Day(), t.Month(), t.Year(), t.Hour(), t.Minute(), t.Second(), zone)
}

// parseLabels reads %labels lines (and what %post appended to $APPTAINER_LABELS): "KEY VALUE",
// the key up to the first blank, as Apptainer's parser.GetLabels.
func parseLabels(text string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, _ := strings.Cut(l, " ")
		if i := strings.IndexAny(l, " \t"); i > 0 {
			k, v = l[:i], l[i+1:]
		}
		out[k] = strings.TrimSpace(v)
	}
	return out
}
