package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Report is the result of an audit.
type Report struct {
	Image   string   `json:"image"`
	Command []string `json:"command"`
	// Outputs is the outputs directory, "" when none was asked for.
	Outputs     string       `json:"outputs,omitempty"`
	Reference   string       `json:"reference"`
	Runs        []Run        `json:"runs"`
	Differences []Difference `json:"differences"`
	Same        bool         `json:"same"`
}

// NewReport compares the runs against the last one (the strictest profile).
func NewReport(image string, command []string, outputs string, runs []Run) Report {
	r := Report{Image: image, Command: command, Outputs: outputs, Runs: runs}
	if len(runs) > 0 {
		ref := runs[len(runs)-1]
		r.Reference = ref.Profile
		r.Differences = Compare(runs, ref)
	}
	r.Same = len(r.Differences) == 0
	return r
}

// WriteJSON writes the report for machines.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as a side-by-side table, then the differences with their causes.
func (r Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "audit of %s: %s\n\n", r.Image, strings.Join(r.Command, " "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "profile\tresult\tstdout\tstderr"
	if r.Outputs != "" {
		head += "\tfiles"
	}
	fmt.Fprintln(tw, head+"\thost leaks")
	for _, run := range r.Runs {
		cells := []string{run.Profile, run.status(), streamCell(run.Stdout), streamCell(run.Stderr)}
		if r.Outputs != "" {
			cells = append(cells, filesCell(run))
		}
		fmt.Fprintln(tw, strings.Join(append(cells, leaksCell(run)), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, run := range r.Runs {
		if run.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", run.Profile, run.Error)
		}
	}
	if r.Same {
		if strings.HasPrefix(r.Reference, "record") {
			_, err := fmt.Fprintf(w, "same: every profile gave the results of the %s\n", r.Reference)
			return err
		}
		_, err := fmt.Fprintf(w, "same: every profile gave the same results\n")
		return err
	}
	fmt.Fprintf(w, "differences (against %s):\n", r.Reference)
	for i, d := range r.Differences {
		fmt.Fprintf(w, "  %s: %s differs (%s, %s has %s)\n", d.Profile, d.Item, short(d.Got), d.Reference, short(d.Want))
		if i > 0 && r.Differences[i-1].Profile == d.Profile {
			continue
		}
		writeCauses(w, d.Causes)
	}
	return nil
}

// writeCauses names the likely causes, or all of them when none stands out.
func writeCauses(w io.Writer, cs []Cause) {
	if len(cs) == 0 {
		fmt.Fprintln(w, "    no host leak explains it: the program itself is not deterministic, or it depends on the CPU or the time")
		return
	}
	likely := 0
	for _, c := range cs {
		if c.Likely {
			fmt.Fprintf(w, "    likely cause: %s\n", c.Text)
			likely++
		}
	}
	rest := cs[likely:]
	if likely == 0 {
		for i, c := range rest {
			if i == 8 {
				break
			}
			fmt.Fprintf(w, "    possible cause: %s\n", c.Text)
		}
		rest = rest[min(8, len(rest)):]
	}
	if len(rest) > 0 {
		var names []string
		for _, c := range rest {
			names = append(names, c.Name)
		}
		fmt.Fprintf(w, "    other leaks: %s\n", clip(strings.Join(names, ", "), 100))
	}
}

func streamCell(s Stream) string { return short(s.Digest) + " " + itoa(int(s.Size)) + "B" }

func filesCell(run Run) string {
	if run.Outcome == OutcomeNoStart {
		return "-"
	}
	if len(run.Outputs) == 0 {
		return "none written"
	}
	if len(run.Outputs) == 1 {
		return "1 file"
	}
	return itoa(len(run.Outputs)) + " files"
}

// reportOrder is the order of a run's leak counts in the summary: the user's own first, then the
// host's system, then the walls.
var reportOrder = []LeakKind{LeakUserSite, LeakSearchPath, LeakEnv, LeakLocale, LeakMount, LeakHostFile, LeakSystem,
	LeakNamespace, LeakHostname, LeakNetwork, LeakJob}

func leaksCell(run Run) string {
	if run.Probe == nil {
		return "not probed"
	}
	n := map[LeakKind]int{}
	for _, l := range run.Leaks {
		n[l.Kind]++
	}
	if len(n) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range reportOrder {
		switch {
		case n[k] == 0:
		case k == LeakHostname || k == LeakNetwork:
			parts = append(parts, string(k))
		default:
			parts = append(parts, fmt.Sprintf("%s:%d", k, n[k]))
		}
	}
	return strings.Join(parts, " ")
}

// short abbreviates a digest.
func short(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}
