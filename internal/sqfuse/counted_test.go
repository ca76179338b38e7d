package sqfuse

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// notRequests are the methods of fuse.RawFileSystem that answer no request of the kernel's.
var notRequests = []string{"Init", "OnUnmount", "SetDebug"}

// TestEveryRequestCounted: FS embeds go-fuse's default RawFileSystem, whose methods answer a
// request uncounted (its Flush answered OK, so every close(2) was a round trip nobody saw). Every
// request method of the interface must be FS's own, so that the server's counts leave none out;
// a go-fuse upgrade that adds a request fails here until FS answers it.
func TestEveryRequestCounted(t *testing.T) {
	own := methodsOfFS(t)
	iface := reflect.TypeOf((*fuse.RawFileSystem)(nil)).Elem()
	for i := range iface.NumMethod() {
		name := iface.Method(i).Name
		if !own[name] && !slices.Contains(notRequests, name) {
			t.Errorf("fuse.RawFileSystem.%s is answered by go-fuse's default, uncounted: define it on FS", name)
		}
	}
}

// methodsOfFS returns the names of the methods this package declares on *FS.
func methodsOfFS(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || len(fn.Recv.List) != 1 {
				continue
			}
			if star, ok := fn.Recv.List[0].Type.(*ast.StarExpr); ok {
				if id, ok := star.X.(*ast.Ident); ok && id.Name == "FS" {
					own[fn.Name.Name] = true
				}
			}
		}
	}
	if len(own) == 0 {
		t.Fatal("found no methods of FS: the test reads the package's own files")
	}
	return own
}
