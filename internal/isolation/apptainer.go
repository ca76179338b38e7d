package isolation

import (
	"fmt"
	"strings"
	"time"
)

// apptainerScript is the wrapper that runs the program of an image without an OCI config
// (Apptainer's): it sources the image's /.singularity.d/env scripts, then sets the explicit
// settings again, which the scripts must not override (Apptainer applies --env, APPTAINERENV_ and
// PREPEND_PATH after them too), then execs "$@". A timeout bounds the scripts, as Apptainer's
// --runscript-timeout bounds its action script; the watchdog is gone before the program starts.
func apptainerScript(r EnvResult, timeout time.Duration, app string) string {
	var b strings.Builder
	if app != "" {
		// SCIF (--app): the app must exist; its environment comes after the image's, with its
		// bin and lib first, as in Apptainer.
		dir := "/scif/apps/" + app
		fmt.Fprintf(&b, `[ -d %s ] || { echo "hpcctl: the image has no app %s (list them with: ls /scif/apps)" >&2; exit 255; }; `, dir, app)
	}
	if timeout > 0 {
		secs := fmt.Sprintf("%.3f", timeout.Seconds())
		fmt.Fprintf(&b, `(trap 'kill $s 2>/dev/null; exit 0' TERM; sleep %s & s=$!; wait $s; echo "hpcctl: the image's environment scripts ran longer than %s (--runscript-timeout)" >&2; kill -KILL $$) & w=$!; `, secs, timeout)
	}
	b.WriteString(`for f in /.singularity.d/env/*.sh; do if [ -f "$f" ]; then . "$f"; fi; done; `)
	if app != "" {
		dir := "/scif/apps/" + app
		fmt.Fprintf(&b, `export APPTAINER_APPNAME=%s SINGULARITY_APPNAME=%s SCIF_APPNAME=%s; PATH=%s/bin:"$PATH"; LD_LIBRARY_PATH=%s/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; export LD_LIBRARY_PATH; `, app, app, app, dir, dir)
		fmt.Fprintf(&b, `for f in %s/scif/env/*.sh; do if [ -f "$f" ]; then . "$f"; fi; done; `, dir)
	}
	if timeout > 0 {
		b.WriteString(`kill $w 2>/dev/null; wait $w 2>/dev/null; `)
	}
	for _, kv := range r.Explicit {
		name, val, _ := strings.Cut(kv, "=")
		if nameLen(name) == len(name) && name != "" {
			fmt.Fprintf(&b, "export %s=%s; ", name, shellQuote(val))
		}
	}
	if r.Prepend != "" {
		fmt.Fprintf(&b, `PATH=%s"${PATH:+:$PATH}"; `, shellQuote(r.Prepend))
	}
	if r.Append != "" {
		fmt.Fprintf(&b, `PATH="${PATH:+$PATH:}"%s; `, shellQuote(r.Append))
	}
	b.WriteString(`exec "$@"`)
	return b.String()
}

// shellQuote quotes s for a POSIX shell: nothing in it is evaluated.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// nameLen is the length of the shell variable name at the start of s.
func nameLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return i
	}
	return len(s)
}

// CheckAppName refuses an --app name that is not a plain name (it becomes a path and a shell word).
func CheckAppName(app string) error {
	if app == "" || nameLenApp(app) != len(app) {
		return fmt.Errorf("--app %q: want a name of letters, digits, '_', '-' and '.'", app)
	}
	return nil
}

func nameLenApp(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c == '-' || c == '.' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			continue
		}
		return i
	}
	if strings.Trim(s, ".") == "" {
		return 0
	}
	return len(s)
}
