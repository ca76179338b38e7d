package sign

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// PassphraseEnv names the variable that supplies a key passphrase in batch jobs.
const PassphraseEnv = "HPCCTL_KEY_PASSPHRASE"

// PromptPassphrase returns a PassphraseFunc that takes the passphrase from env (when set, even if
// empty), or else asks on the terminal in, writing prompts to out.
func PromptPassphrase(what string, env func(string) (string, bool), in io.Reader, out io.Writer) PassphraseFunc {
	return func(confirm bool) ([]byte, error) {
		if v, ok := env(PassphraseEnv); ok {
			return []byte(v), nil
		}
		tty, ok := in.(*os.File)
		if !ok || !term.IsTerminal(int(tty.Fd())) {
			return nil, fmt.Errorf("no terminal to ask the passphrase for %s: set %s", what, PassphraseEnv)
		}
		pw, err := readHidden(tty, out, fmt.Sprintf("Passphrase for %s: ", what))
		if err != nil || !confirm {
			return pw, err
		}
		again, err := readHidden(tty, out, "Repeat the passphrase: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the passphrases differ")
		}
		return pw, nil
	}
}

func readHidden(tty *os.File, out io.Writer, prompt string) ([]byte, error) {
	fmt.Fprint(out, prompt)
	pw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	return pw, nil
}
