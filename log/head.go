package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"strata/internal/fileutil"
)

// The head file, index/head, says how far the indexes reach: the committed
// seq that readers may serve. It is one page, shared by memory map:
//
//	[8] magic "STRATHED" | u32 version | u32 reserved |
//	u64 through  — last committed seq; advanced after fsync and indexing |
//	u64 synced   — last seq whose index pages are known to be on disk |
//	u64 gen      — bumped whenever an index file is replaced |
//	[40] boot id of the machine that last advanced through |
//	i64 waiters  — processes waiting for the tenant lock |
//	u64 compacted — bumped after each segment a compaction replaced
//
// through, gen and compacted are read without the lock; everything but
// compacted (and waiters, added to atomically) is written under it.
const (
	headFileName = "head"
	headMagic    = "STRATHED"
	headVersion  = 1
	headSize     = 4096

	headOffThrough = 16
	headOffSynced  = 24
	headOffGen     = 32
	headOffBoot    = 40
	headBootLen    = 40
	headOffWaiters = 80
	// headOffCompacted counts compacted segments (compact.go): a Log that
	// sees it move reads the segments it has open from their .zseg now.
	headOffCompacted = 88
)

type headFile struct{ m *mapping }

// openHead maps an existing head file; create makes a fresh one.
func openHead(path string, create bool) (*headFile, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_TRUNC
	}
	f, err := fileutil.OpenFile(path, flag, 0o644)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", errBadIndex, err)
	} else if err != nil {
		return nil, err
	}
	if create {
		b := make([]byte, headSize)
		copy(b, headMagic)
		binary.LittleEndian.PutUint32(b[8:], headVersion)
		if _, err := fileutil.WriteAt(f, b, 0); err != nil {
			f.Close()
			return nil, err
		}
	} else if st, err := f.Stat(); err != nil || st.Size() != headSize {
		f.Close()
		return nil, fmt.Errorf("%w: head file has the wrong size", errBadIndex)
	}
	m, err := mapFile(f, headSize)
	if err != nil {
		f.Close()
		return nil, err
	}
	if string(m.mem[:8]) != headMagic || binary.LittleEndian.Uint32(m.mem[8:]) != headVersion {
		m.close()
		return nil, fmt.Errorf("%w: head file has a bad magic or version", errBadIndex)
	}
	return &headFile{m: m}, nil
}

func (h *headFile) through() uint64 { return h.m.load(headOffThrough) }
func (h *headFile) synced() uint64  { return h.m.load(headOffSynced) }
func (h *headFile) gen() uint64     { return h.m.load(headOffGen) }

func (h *headFile) compacted() uint64 { return h.m.load(headOffCompacted) }

func (h *headFile) setThrough(seq uint64) { h.m.store(headOffThrough, seq) }
func (h *headFile) bumpGen()              { h.m.store(headOffGen, h.gen()+1) }

// bumpCompacted is atomic: a compactor holds no tenant lock.
func (h *headFile) bumpCompacted() { atomic.AddUint64(h.m.u64(headOffCompacted), 1) }

func (h *headFile) boot() []byte {
	return bytes.TrimRight(h.m.mem[headOffBoot:headOffBoot+headBootLen], "\x00")
}

func (h *headFile) setBoot(id []byte) {
	b := h.m.mem[headOffBoot : headOffBoot+headBootLen]
	clear(b)
	copy(b, id)
}

// waiters is how many processes wait for the tenant lock right now.
func (h *headFile) waiters() int64 { return int64(h.m.load(headOffWaiters)) }

// addWaiter counts a process in (+1) or out (-1) of the wait for the lock.
func (h *headFile) addWaiter(delta int64) {
	atomic.AddUint64(h.m.u64(headOffWaiters), uint64(delta))
}

// clearWaiters forgets waiters that never came: a process killed while it
// waited cannot count itself out.
func (h *headFile) clearWaiters() { h.m.store(headOffWaiters, 0) }

// markSynced records that every index page up to through is on disk.
func (h *headFile) markSynced(seq uint64) error {
	h.m.store(headOffSynced, seq)
	return h.m.sync()
}

// bootID names this run of the machine. The indexes are written to the page
// cache without fsync; a process crash loses none of that, a machine crash
// may. A head stamped with another boot id therefore trusts only its synced
// mark. Where the kernel offers no boot id, nothing but the synced mark is
// ever trusted after a crash.
func bootID() []byte {
	b := fileutil.BootID()
	if len(b) > headBootLen {
		b = b[:headBootLen]
	}
	return b
}
