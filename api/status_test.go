package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestStatusOnlyInErrors keeps errors.go the one place that chooses an
// error's status: elsewhere in the package a handler names an error code
// (errorf) or returns an error as it is, and writes only the statuses of
// success. It also checks that every code given to errorf is in the table,
// and that faults are made with fault(), whose messages say nothing of the
// error.
func TestStatusOnlyInErrors(t *testing.T) {
	success := map[string]bool{"StatusOK": true, "StatusCreated": true, "StatusAccepted": true, "StatusNoContent": true, "StatusPartialContent": true, "StatusNotModified": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		table := name == "errors.go"
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "http" && strings.HasPrefix(n.Sel.Name, "Status") && n.Sel.Name != "StatusText" && !table && !success[n.Sel.Name] {
					t.Errorf("%s: http.%s outside errors.go: name an error code instead", fset.Position(n.Pos()), n.Sel.Name)
				}
			case *ast.AssignStmt:
				for _, l := range n.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "status" && !table {
						t.Errorf("%s: an error's status set outside errors.go", fset.Position(n.Pos()))
					}
				}
			case *ast.CompositeLit:
				if id, ok := n.Type.(*ast.Ident); ok && id.Name == "apiError" && !table {
					t.Errorf("%s: an apiError made outside errors.go: use errorf", fset.Position(n.Pos()))
				}
			case *ast.CallExpr:
				fn, ok := n.Fun.(*ast.Ident)
				if !ok || len(n.Args) == 0 {
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "WriteHeader" && len(n.Args) == 1 {
						if _, lit := n.Args[0].(*ast.BasicLit); lit {
							t.Errorf("%s: WriteHeader with a number", fset.Position(n.Pos()))
						}
					}
					return true
				}
				switch fn.Name {
				case "errorf", "fault":
					lit, ok := n.Args[0].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						if !table {
							t.Errorf("%s: %s with a code that is not a literal", fset.Position(n.Pos()), fn.Name)
						}
						return true
					}
					code, _ := strconv.Unquote(lit.Value)
					if _, ok := statusOf[code]; !ok {
						t.Errorf("%s: code %q is not in statusOf", fset.Position(n.Pos()), code)
					}
					_, isFault := faultMessage[code]
					if fn.Name == "errorf" && isFault {
						t.Errorf("%s: errorf(%q, …): a fault's answer is fault(%q)", fset.Position(n.Pos()), code, code)
					}
					if fn.Name == "fault" && !isFault {
						t.Errorf("%s: fault(%q) has no faultMessage", fset.Position(n.Pos()), code)
					}
				}
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("checked %d files: run in the package's directory", checked)
	}
	for code, status := range statusOf { // isFault: 5xx but quota_exceeded and needs_server
		if _, ok := faultMessage[code]; ok != errorf(code, "").isFault() {
			t.Errorf("code %q, status %d: a fault (5xx) has a faultMessage, and only a fault", code, status)
		}
	}
}
