package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestMakeFuzzListsEveryTarget fails when a fuzz target is missing from the
// Makefile's fuzz rule (or the rule names one that is gone): make fuzz and
// the short fuzz of make test run only the targets listed there, one go test
// per target, so a new one would otherwise never be fuzzed.
func TestMakeFuzzListsEveryTarget(t *testing.T) {
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, m := range regexp.MustCompile(`\$\(GO\) test (\./\S+) -run '\^\$\$' -fuzz '\^(Fuzz\w+)\$\$'`).FindAllSubmatch(mk, -1) {
		listed = append(listed, filepath.Clean(string(m[1]))+" "+string(m[2]))
	}
	var found []string
	decl := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(\w+ \*testing\.F\)`)
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			found = append(found, filepath.Dir(path)+" "+string(m[1]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(listed)
	slices.Sort(found)
	if len(found) == 0 {
		t.Fatal("no fuzz targets found")
	}
	if !slices.Equal(listed, found) {
		t.Errorf("the Makefile's fuzz rule lists\n\t%s\nbut the fuzz targets are\n\t%s", strings.Join(listed, "\n\t"), strings.Join(found, "\n\t"))
	}
}
