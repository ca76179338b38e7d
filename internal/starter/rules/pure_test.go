package rules

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPure keeps this package what internal/starter counts on: decisions on values, no system
// call that looks up a path, opens a file or changes the process. Its files import only these
// packages, and call nothing of golang.org/x/sys/unix (its types and constants are fine).
func TestPure(t *testing.T) {
	allowed := []string{"bufio", "bytes", "errors", "fmt", "path/filepath", "slices", "strconv", "strings",
		"golang.org/x/sys/unix", "github.com/sylabs/sif/v2/pkg/sif",
		"github.com/hpcctl/hpcctl/internal/config", "github.com/hpcctl/hpcctl/internal/spec"}
	impure := map[string][]string{"filepath": {"Abs", "EvalSymlinks", "Glob", "Walk", "WalkDir"}}
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".go") || strings.HasSuffix(f.Name(), "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); !slices.Contains(allowed, p) {
				t.Errorf("%s imports %s: rules must stay pure (see the package doc)", f.Name(), p)
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok && (pkg.Name == "unix" || slices.Contains(impure[pkg.Name], sel.Sel.Name)) {
					t.Errorf("%s calls %s.%s: a system call belongs in internal/starter", f.Name(), pkg.Name, sel.Sel.Name)
				}
			}
			return true
		})
	}
}
