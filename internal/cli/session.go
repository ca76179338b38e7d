package cli

import (
	"os"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/session"
)

// sessionOptions are a launch's shared image session settings, nil when the site
// ([session] enabled = false), --no-session or $HPCCTL_NO_SESSION turn sessions off.
func sessionOptions(o *launchOptions, conf *config.Config, img resolvedImage) *session.Options {
	if o.noSession || !conf.Session.Enabled || os.Getenv("HPCCTL_NO_SESSION") == "1" {
		return nil
	}
	return &session.Options{Squashfuse: img.Squashfuse, IdleTimeout: conf.Session.SessionIdle()}
}
