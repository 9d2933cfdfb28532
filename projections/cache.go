package projections

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"strata/internal/fileutil"
)

// The result cache of one projection version lives in
// <tenant>/cache/projections/<name>/v<version>/ (FORMAT.md, "Projection
// result cache"):
//
//	result                the result at the newest seq reached, and status
//	cp-<20-digit seq>     checkpoints: the reducer at that seq
//	lock                  taken (try-lock) by a process replacing a file
const (
	cacheDirName   = "projections"
	resultFileName = "result"
	lockFileName   = "lock"
	checkpointPfx  = "cp-"
)

// cacheMagic opens every cache file; the byte after it is the format
// version.
const (
	cacheMagic   = "SPRJ"
	cacheVersion = 1
)

// errBadCache says a cache file is damaged or of another format: it is
// treated as absent (and replaced).
var errBadCache = errors.New("projection cache file is damaged")

// cacheHeader is what a cache file says about its payload.
type cacheHeader struct {
	Kind string `json:"kind"`
	// Def is a digest of the definition the payload reduces: a cache of
	// another definition (a log replaced under the same name and version)
	// is not used.
	Def string `json:"def"`
	// Seq and ID are the last event the payload reflects (0 and "" before
	// the first).
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
	// Gen names the run that wrote the file: a rebuild starts a new one,
	// and a process that loaded another generation does not overwrite it.
	Gen string `json:"gen"`
	// Result says the payload is the result itself (resultSaver kinds).
	Result  bool            `json:"result,omitempty"`
	Status  Status          `json:"status"`
	Options *RebuildOptions `json:"options,omitempty"`
}

// encodeCache frames h and payload:
//
//	"SPRJ" | u8 version | u32 LE header length | header JSON | payload |
//	u32 LE CRC-32 (IEEE) of everything before it
func encodeCache(h *cacheHeader, payload []byte) ([]byte, error) {
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(cacheMagic)+5+len(hj)+len(payload)+4)
	b = append(b, cacheMagic...)
	b = append(b, cacheVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hj)))
	b = append(b, hj...)
	b = append(b, payload...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b)), nil
}

// decodeCache checks and splits a cache file.
func decodeCache(b []byte) (*cacheHeader, []byte, error) {
	const pre = len(cacheMagic) + 5
	if len(b) < pre+4 || string(b[:len(cacheMagic)]) != cacheMagic || b[len(cacheMagic)] != cacheVersion {
		return nil, nil, errBadCache
	}
	body := b[:len(b)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, nil, errBadCache
	}
	hl := int(binary.LittleEndian.Uint32(b[len(cacheMagic)+1:]))
	if hl > len(body)-pre {
		return nil, nil, errBadCache
	}
	var h cacheHeader
	if err := json.Unmarshal(body[pre:pre+hl], &h); err != nil {
		return nil, nil, errBadCache
	}
	return &h, body[pre+hl:], nil
}

// readHeader reads only the header of the cache file at path, without
// checking the payload: enough to decide whether to replace it.
func readHeader(path string) (*cacheHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const pre = len(cacheMagic) + 5
	var p [pre]byte
	if _, err := io.ReadFull(f, p[:]); err != nil || string(p[:len(cacheMagic)]) != cacheMagic || p[len(cacheMagic)] != cacheVersion {
		return nil, errBadCache
	}
	hl := binary.LittleEndian.Uint32(p[len(cacheMagic)+1:])
	if hl > 1<<20 {
		return nil, errBadCache
	}
	hj := make([]byte, hl)
	if _, err := io.ReadFull(f, hj); err != nil {
		return nil, errBadCache
	}
	var h cacheHeader
	if json.Unmarshal(hj, &h) != nil {
		return nil, errBadCache
	}
	return &h, nil
}

// readCache reads and checks the cache file at path; a missing file is
// fs.ErrNotExist, a damaged one errBadCache.
func readCache(path string) (*cacheHeader, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return decodeCache(b)
}

// writeCache replaces the file at path atomically. Cache files are written
// without fsync: a crash can lose or tear one, the checksum then makes it
// absent, and it is rebuilt from the log — nothing is lost.
func writeCache(path string, h *cacheHeader, payload []byte) error {
	b, err := encodeCache(h, payload)
	if err != nil {
		return err
	}
	return fileutil.WriteFileNoSync(path, b, 0o644)
}

func checkpointName(seq uint64) string { return fmt.Sprintf("%s%020d", checkpointPfx, seq) }

// checkpoints lists the seqs of dir's checkpoints, ascending.
func checkpoints(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), checkpointPfx)
		if !ok || len(rest) != 20 {
			continue
		}
		if seq, err := strconv.ParseUint(rest, 10, 64); err == nil {
			seqs = append(seqs, seq)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// removeTemps removes temporary files a killed writer left in dir.
func removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".tmp") {
			if info, err := e.Info(); err == nil && info.ModTime().Before(tempCutoff()) {
				os.Remove(filepath.Join(dir, n))
			}
		}
	}
}
