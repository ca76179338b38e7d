package sign

import (
	"bytes"
	"strings"
	"testing"
)

func TestPromptPassphrase(t *testing.T) {
	env := func(vals map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vals[k]; return v, ok }
	}
	var out bytes.Buffer
	pw, err := PromptPassphrase("key x", env(map[string]string{PassphraseEnv: "from env"}), strings.NewReader(""), &out)(true)
	if err != nil || string(pw) != "from env" {
		t.Errorf("with %s set: %q, %v", PassphraseEnv, pw, err)
	}
	pw, err = PromptPassphrase("key x", env(map[string]string{PassphraseEnv: ""}), strings.NewReader(""), &out)(false)
	if err != nil || len(pw) != 0 {
		t.Errorf("with %s empty: %q, %v; want no passphrase", PassphraseEnv, pw, err)
	}
	_, err = PromptPassphrase("key x", env(nil), strings.NewReader("typed\n"), &out)(false)
	if err == nil || !strings.Contains(err.Error(), PassphraseEnv) || !strings.Contains(err.Error(), "key x") {
		t.Errorf("without a terminal: err = %v, want one naming the key and %s", err, PassphraseEnv)
	}
	if out.Len() != 0 {
		t.Errorf("prompted %q without a terminal", out.String())
	}
}
