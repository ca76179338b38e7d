package compat

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func flags() (*pflag.FlagSet, *bool, *string, *[]string) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	contain := fs.Bool("contain", false, "")
	pwd := fs.String("pwd", "", "")
	ov := fs.StringArray("overlay", nil, "")
	fs.StringArray("bind", nil, "")
	return fs, contain, pwd, ov
}

func TestFromEnvPrecedence(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		contain bool
		pwd     string
		ov      []string
		used    []string
	}{
		{"apptainer", nil, []string{"APPTAINER_CONTAIN=1"}, true, "", nil, []string{"APPTAINER_CONTAIN"}},
		{"singularity", nil, []string{"SINGULARITY_CONTAIN=true"}, true, "", nil, []string{"SINGULARITY_CONTAIN"}},
		{"hpcctl wins", nil, []string{"HPCCTL_PWD=/a", "APPTAINER_PWD=/b", "SINGULARITY_PWD=/c"}, false, "/a", nil, []string{"HPCCTL_PWD"}},
		{"apptainer over singularity", nil, []string{"SINGULARITY_PWD=/c", "APPTAINER_TARGET_PWD=/b"}, false, "/b", nil, []string{"APPTAINER_TARGET_PWD"}},
		{"command line wins", []string{"--pwd", "/cli"}, []string{"APPTAINER_PWD=/b"}, false, "/cli", nil, nil},
		{"empty sets nothing", nil, []string{"APPTAINER_CONTAIN= "}, false, "", nil, nil},
		{"list", nil, []string{"APPTAINER_OVERLAY=/a, /b:ro"}, false, "", []string{"/a", "/b:ro"}, []string{"APPTAINER_OVERLAY"}},
		{"bind left to the caller", nil, []string{"APPTAINER_BIND=/x"}, false, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, contain, pwd, ov := flags()
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			used, err := FromEnv(fs, EnvLookup(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, u := range used {
				names = append(names, u.Variable)
			}
			if *contain != tt.contain || *pwd != tt.pwd || !reflect.DeepEqual(*ov, tt.ov) || !reflect.DeepEqual(names, tt.used) {
				t.Errorf("contain %v pwd %q overlay %q used %q; want %v %q %q %q", *contain, *pwd, *ov, names, tt.contain, tt.pwd, tt.ov, tt.used)
			}
		})
	}
}

func TestFromEnvBadValue(t *testing.T) {
	fs, _, _, _ := flags()
	_, err := FromEnv(fs, EnvLookup([]string{"APPTAINER_CONTAIN=yes please"}))
	if err == nil || !strings.Contains(err.Error(), "$APPTAINER_CONTAIN") || !strings.Contains(err.Error(), "--contain") {
		t.Errorf("got %v, want an error naming the variable and the flag", err)
	}
}

func TestAppendValues(t *testing.T) {
	env := EnvLookup([]string{"HPCCTL_BIND=/h", "APPTAINER_BIND=/a", "SINGULARITY_BIND=/s", "SINGULARITY_BINDPATH=/sp"})
	var got []string
	for _, h := range AppendValues("bind", env) {
		got = append(got, h.Variable+"="+h.Value)
	}
	want := []string{"HPCCTL_BIND=/h", "APPTAINER_BIND=/a", "SINGULARITY_BINDPATH=/sp"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExpand(t *testing.T) {
	env := EnvLookup([]string{"A=1", "E="})
	tests := map[string]string{
		"$A":       "1",
		"${A}x":    "1x",
		"$Ax":      "",
		"${B:-d}":  "d",
		"${E:-d}":  "d",
		"${E-d}":   "",
		"${B-$A}":  "1",
		`\$A`:      "$A",
		"cost $ 5": "cost $ 5",
		"end$":     "end$",
		"/p:$A:/q": "/p:1:/q",
	}
	for in, want := range tests {
		got, err := Expand(in, env)
		if err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"${A", "${A/x/y}", "${}"} {
		if _, err := Expand(bad, env); err == nil {
			t.Errorf("Expand(%q): no error", bad)
		}
	}
}
