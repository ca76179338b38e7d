package isolation

import (
	"reflect"
	"testing"
)

func TestEnvironment(t *testing.T) {
	host := []string{"PATH=/host/bin", "LD_LIBRARY_PATH=/host/lib", "HOME=/host/home", "LANG=C.UTF-8",
		"TERM=xterm", "FOO=host", "HPCCTLENV_BAR=fromprefix", "HPCCTLENV_FOO=prefixed"}
	tests := []struct {
		name string
		in   EnvInput
		want []string
	}{
		{
			name: "host passes but for what the image owns",
			in:   EnvInput{Host: host[:6], Home: "/home/u"},
			want: []string{"LANG=C.UTF-8", "TERM=xterm", "FOO=host", "PATH=" + DefaultPath, "HOME=/home/u"},
		},
		{
			name: "image env wins over host, PATH from image",
			in:   EnvInput{Host: host[:6], Image: []string{"PATH=/opt/bin", "FOO=image", "LD_LIBRARY_PATH=/opt/lib"}, Home: "/h"},
			want: []string{"LANG=C.UTF-8", "TERM=xterm", "FOO=image", "PATH=/opt/bin", "LD_LIBRARY_PATH=/opt/lib", "HOME=/h"},
		},
		{
			name: "HPCCTLENV_ prefix sets the variable, explicit settings last",
			in:   EnvInput{Host: host, Image: []string{"FOO=image"}, Home: "/h", Set: []string{"BAZ=file", "BAZ=flag", "FOO=flag"}},
			want: []string{"LANG=C.UTF-8", "TERM=xterm", "FOO=flag", "PATH=" + DefaultPath, "HOME=/h", "BAR=fromprefix", "BAZ=flag"},
		},
		{
			name: "cleanenv keeps TERM and the prefixed variables",
			in:   EnvInput{Host: host, CleanEnv: true, Home: "/h", Extra: []string{"HPCCTL_CONTAINER=/i.sif"}},
			want: []string{"TERM=xterm", "PATH=" + DefaultPath, "HOME=/h", "HPCCTL_CONTAINER=/i.sif", "BAR=fromprefix", "FOO=prefixed"},
		},
		{
			name: "containall keeps TERM and the prefixed variables",
			in:   EnvInput{Host: host, Mode: EnvClean, Home: "/h"},
			want: []string{"TERM=xterm", "PATH=" + DefaultPath, "HOME=/h", "BAR=fromprefix", "FOO=prefixed"},
		},
		{
			name: "allow-list keeps TERM, the image's Env and explicit settings only",
			in:   EnvInput{Host: host, Mode: EnvAllowList, Image: []string{"LANG=C.UTF-8", "PATH=/opt/bin"}, Home: "/h", Set: []string{"X=1"}},
			want: []string{"TERM=xterm", "PATH=/opt/bin", "LANG=C.UTF-8", "HOME=/h", "X=1"},
		},
		{
			name: "explicit PATH wins",
			in:   EnvInput{Home: "/h", Set: []string{"PATH=/mine", "EMPTY="}},
			want: []string{"PATH=/mine", "HOME=/h", "EMPTY="},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Environment(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestEnvironmentRejectsBadSetting(t *testing.T) {
	for _, bad := range []string{"NOEQUALS", "=value"} {
		if _, err := Environment(EnvInput{Home: "/h", Set: []string{bad}}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseEnvFile(t *testing.T) {
	content := "# comment\n\nA=1\nexport B=two words\nC=\"quoted\\tvalue\"\nD='single $x'\n E = spaced \nF=\n"
	got, err := ParseEnvFile("f.env", content)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=two words", "C=quoted\tvalue", "D=single $x", "E=spaced", "F="}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"novalue\n", "=x\n", "A B=c\n", "A=\"unterminated\\\"\n"} {
		if _, err := ParseEnvFile("f.env", bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
