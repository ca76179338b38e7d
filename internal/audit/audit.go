// Package audit runs one command under several isolation profiles, probes what each container saw
// of the host, and reports which results differ and which host leak explains them.
package audit

import "encoding/json"

// Outcomes of a run.
const (
	OutcomeExited   = "exited"      // the program ran and exited (Status says how)
	OutcomeTimedOut = "timed out"   // killed after the time limit
	OutcomeNoStart  = "not started" // the container or the program could not start
)

// Run is what one profile's run produced and saw.
type Run struct {
	Profile string `json:"profile"`
	Outcome string `json:"outcome"`
	Status  int    `json:"status"`
	// Error says why the container did not start (OutcomeNoStart).
	Error string `json:"error,omitempty"`
	// Session says whether the run's image mount came from a shared image session: "joined",
	// "started", or "" (none). It must not change results; it is recorded to show that.
	Session string `json:"session,omitempty"`
	Stdout  Stream `json:"stdout"`
	Stderr  Stream `json:"stderr"`
	// Outputs maps each regular file the program wrote under the outputs directory (a path
	// relative to it) to its digest; nil when no outputs directory was asked for.
	Outputs map[string]string `json:"outputs,omitempty"`
	// Probe is what the container saw (nil when the image has no shell to run the probe); Leaks
	// is what of it came from the host.
	Probe Probe  `json:"probe"`
	Leaks []Leak `json:"leaks"`
	// Spec is the launch Spec of the command, for the record.
	Spec json.RawMessage `json:"spec,omitempty"`
	// text is the start of stdout and stderr, kept to attribute differences, never recorded.
	text string
}

// SetText keeps the start of what the program printed, to attribute differences to the host
// values that appear in it.
func (r *Run) SetText(s string) { r.text = s }

// Stream is the digest of what the program wrote on one stream.
type Stream struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// status is the run's outcome as one line.
func (r Run) status() string {
	switch r.Outcome {
	case OutcomeExited:
		if r.Status == 0 {
			return "exit 0"
		}
		switch r.Status {
		case 126:
			return "cannot run, exit 126"
		case 127:
			return "not found, exit 127"
		}
		return "failed, exit " + itoa(r.Status)
	case OutcomeTimedOut:
		return "timed out"
	}
	return "not started, exit " + itoa(r.Status)
}
