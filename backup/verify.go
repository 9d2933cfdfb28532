package backup

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"strata/internal/blake3"
)

// ErrDamaged is a stored file that does not match its manifest.
var ErrDamaged = errors.New("does not match its manifest")

// Verify checks every stored file of every backup in dir against its
// manifest (size and BLAKE3), and that every parent a backup names is
// there. The error names the first damaged file, relative to dir. each is
// told of every file checked.
func Verify(dir string, each func(m *Manifest, f File)) ([]*Manifest, error) {
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, m := range all {
		ids[m.ID] = true
	}
	for _, m := range all {
		if m.Parent != "" && !ids[m.Parent] {
			return all, fmt.Errorf("%s: parent %s: %w", m.ID, m.Parent, ErrMissing)
		}
		for _, f := range m.Files {
			if err := checkFile(dir, m, f); err != nil {
				return all, err
			}
			if each != nil {
				each(m, f)
			}
		}
	}
	return all, nil
}

// checkFile checks one stored file.
func checkFile(dir string, m *Manifest, f File) error {
	name := m.ID + "/" + f.Stored
	in, err := os.Open(filepath.Join(dir, m.ID, filepath.FromSlash(f.Stored)))
	if err != nil {
		return fmt.Errorf("%s (%s): %w", name, f.Path, err)
	}
	defer in.Close()
	h := blake3.New()
	n, err := io.Copy(h, in)
	if err != nil {
		return fmt.Errorf("%s (%s): %w", name, f.Path, err)
	}
	if n != f.StoredSize || hex.EncodeToString(h.Sum(nil)) != f.BLAKE3 {
		return fmt.Errorf("%s (%s): %w", name, f.Path, ErrDamaged)
	}
	return nil
}
