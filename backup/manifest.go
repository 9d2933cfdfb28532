package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Format is the manifest's format version a backup is written in. Format
// 2 stores segment parts with their records' CRCs zeroed; restore reads
// format 1 (segments as they are) too.
const Format = 2

// writeFormat is the format Create writes: a test makes format-1 backups
// with it, to prove they still restore.
var writeFormat = Format

const (
	manifestName = "manifest.json"
	filesDir     = "files"
	tmpSuffix    = ".tmp"
)

// Kinds of file a backup holds.
const (
	KindSegment = "segment" // bytes [Offset, Offset+Size) of a log segment
	KindBlob    = "blob"    // a content-addressed blob, copied once in a chain
	KindFile    = "file"    // any other durable file, copied whole every time
)

// Manifest describes one backup (FORMAT.md).
type Manifest struct {
	Format  int       `json:"format"`
	ID      string    `json:"id"`
	Parent  string    `json:"parent,omitempty"`
	Created string    `json:"created"`
	Tenant  string    `json:"tenant,omitempty"`
	Logs    []LogHead `json:"logs"`
	Files   []File    `json:"files"`
	Bytes   int64     `json:"bytes"`  // what the files restore to
	Stored  int64     `json:"stored"` // what they take in the backup
}

// LogHead is one log's share of a backup: events From..Through, the last
// with id Head.
type LogHead struct {
	Dir     string `json:"dir"` // relative to the data directory: tenants/<t>, system/audit
	From    uint64 `json:"from"`
	Through uint64 `json:"through"`
	Head    string `json:"head,omitempty"` // hex id of event Through
	Time    string `json:"time,omitempty"` // its time
}

// File is one stored file.
type File struct {
	Path       string `json:"path"` // in the data directory, slash-separated
	Kind       string `json:"kind"`
	Offset     int64  `json:"offset,omitempty"` // segments: where these bytes go
	Size       int64  `json:"size"`             // bytes restored
	Stored     string `json:"stored"`           // in the backup's directory
	StoredSize int64  `json:"stored_size"`
	BLAKE3     string `json:"blake3"`           // of the stored (compressed) file
	Events     uint64 `json:"events,omitempty"` // segments: the events these bytes add
}

// ReadManifest reads the manifest of backup id in dir.
func ReadManifest(dir, id string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, id, manifestName))
	if err != nil {
		return nil, err
	}
	m := new(Manifest)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", id, manifestName, err)
	}
	if m.Format < 1 || m.Format > Format {
		return nil, fmt.Errorf("%s/%s: format %d, this program reads 1 to %d", id, manifestName, m.Format, Format)
	}
	if m.ID != id {
		return nil, fmt.Errorf("%s/%s: names backup %q", id, manifestName, m.ID)
	}
	for _, f := range m.Files {
		if !local(f.Path) || !local(f.Stored) {
			return nil, fmt.Errorf("%s/%s: a path leaves its directory: %q", id, manifestName, f.Path)
		}
	}
	return m, nil
}

// local says p is a relative path that stays below its directory.
func local(p string) bool { return p != "" && filepath.IsLocal(filepath.FromSlash(p)) }

// List returns the manifests of every backup in dir, oldest first (ids
// sort by time). Directories without a manifest (a backup in progress or
// one that failed) are not backups and are left out.
func List(dir string) ([]*Manifest, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), tmpSuffix) {
			continue
		}
		m, err := ReadManifest(dir, e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Manifest) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Chain returns the backups restore applies to reach id ("" = the newest),
// root first.
func Chain(dir, id string) ([]*Manifest, error) {
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no backup in %s", dir)
	}
	byID := map[string]*Manifest{}
	for _, m := range all {
		byID[m.ID] = m
	}
	if id == "" {
		id = all[len(all)-1].ID
	}
	var chain []*Manifest
	for id != "" {
		m, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("backup %s: %w", id, ErrMissing)
		}
		chain = append(chain, m)
		id = m.Parent
	}
	slices.Reverse(chain)
	return chain, nil
}

// ErrMissing is a backup a chain needs that is not in the directory.
var ErrMissing = errors.New("not in the backup directory (a chain needs its parents)")

// ValidID says s has the form of a backup id (FORMAT.md),
// 20261202T153630.111603671Z-b963da55, so it can be joined to a path.
// (By hand, not a regexp: nothing may be built at start-up, which every
// CGI request pays.)
func ValidID(s string) bool {
	const form = "dddddddd" + "T" + "dddddd" + "." + "ddddddddd" + "Z-" + "hhhhhhhh"
	if len(s) != len(form) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch form[i] {
		case 'd':
			if c < '0' || c > '9' {
				return false
			}
		case 'h':
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		default:
			if c != form[i] {
				return false
			}
		}
	}
	return true
}
