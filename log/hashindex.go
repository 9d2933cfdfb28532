package log

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"strata/internal/fileutil"
)

// A hashIndex maps a 64-bit tag to seqs: an open-addressing table with
// linear probing, kept in a memory-mapped file (FORMAT.md, "Hash indexes").
//
//	page 0: [8] magic "STRATHIX" | u32 version | u32 kind | u64 slots |
//	        u64 used | [32] seed | u32 stride (versions only, else 0)
//	then the slots: for ids and keys 16 bytes, u64 tag (0 = empty) | u64 seq;
//	for entities 32 bytes, u64 tag | u64 check | u64 seq | u64 version.
//
// Tags are 63 bits of a hash with the low bit forced to 1, so 0 never
// appears. Different ids or keys may share a tag: every hit is checked
// against the record it names, so a collision costs a read, never a wrong
// answer. Entities carry 64 more bits of their hash (check) and their
// version, so the append path learns an entity's version without reading a
// record; two names agreeing on all 127 bits is not a risk worth a read.
// The table doubles when it is half full; the bigger table is built beside
// it and renamed over it, and the head file's gen tells other processes to
// map it again.
const (
	hixMagic     = "STRATHIX"
	hixVersion   = 2 // 2: names hashed with SipHash-2-4 (1 used BLAKE3)
	hixHeaderLen = 4096
	hixMinSlots  = 1 << 12

	hixOffSlots  = 16
	hixOffUsed   = 24
	hixOffSeed   = 32
	hixOffStride = 64 // versions: the versionStride it was written with
)

// Kinds of hash index, by what they map to seqs.
const (
	kindIDs      = 1 // event id → its seq
	kindEntities = 2 // entity → seq of its newest event
	kindKeys     = 3 // idempotency key → seq
	kindVersions = 4 // (entity, version) → seq, for every versionStride-th version
)

// kinds lists every kind of hash index, in file order.
var kinds = []uint32{kindIDs, kindEntities, kindKeys, kindVersions}

var hixNames = map[uint32]string{kindIDs: "ids.hix", kindEntities: "entities.hix", kindKeys: "keys.hix", kindVersions: "versions.hix"}

// counts holds a number per kind of hash index (indexed by kind).
type counts [kindVersions + 1]uint64

// versionStride: the versions index holds the seq of each entity's
// versions 8, 16, 24 …, so that a forward read of an entity from any
// point walks back at most this many events along its chain (entity.go).
// Each step back may be a record in another compressed frame (zseg.go), so
// the stride bounds what an entity page costs from a cold frame cache: 64
// made it 3× a plain segment's over HTTP. 8 over 16: EntityVersion reads
// half as many records, for 2 more bytes of index an event (bench_test.go,
// BenchmarkCompressedRead). The table's header records the stride; a table
// written with another (every 64th, before the header said) is a bad
// index, rebuilt once.
const versionStride = 8

func checkpointed(version uint64) bool { return version%versionStride == 0 }

// versionTag is the tag of an entity's version in the versions index.
func (x *hashIndex) versionTag(entity string, version uint64) uint64 {
	seed := x.seed[:]
	k := func(i int) uint64 { return binary.LittleEndian.Uint64(seed[8*i:]) }
	return sipHash(k(0)^version, k(1), entity) | 1
}

type hashIndex struct {
	path    string
	kind    uint32
	m       *mapping
	mask    uint64
	slotLen int
	seed    [32]byte
}

func slotLen(kind uint32) int {
	if kind == kindEntities {
		return 32
	}
	return 16
}

// createHashIndex writes an empty table with room for at least n keys and
// renames it over path.
func createHashIndex(path string, kind uint32, n uint64, seed *[32]byte) (*hashIndex, error) {
	slots := uint64(hixMinSlots)
	for slots/2 < n {
		slots *= 2
	}
	tmp := path + ".tmp"
	f, err := fileutil.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	size := hixHeaderLen + int64(slots)*int64(slotLen(kind))
	if err := fileutil.Allocate(f, size); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	h := make([]byte, hixOffStride+4)
	copy(h, hixMagic)
	binary.LittleEndian.PutUint32(h[8:], hixVersion)
	binary.LittleEndian.PutUint32(h[12:], kind)
	binary.LittleEndian.PutUint64(h[16:], slots)
	if seed == nil {
		seed = new([32]byte)
		rand.Read(seed[:])
	}
	copy(h[hixOffSeed:], seed[:])
	if kind == kindVersions {
		binary.LittleEndian.PutUint32(h[hixOffStride:], versionStride)
	}
	if _, err := fileutil.WriteAt(f, h, 0); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	m, err := mapFile(f, int(size))
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := fileutil.Rename(tmp, path); err != nil {
		m.close()
		os.Remove(tmp)
		return nil, err
	}
	return &hashIndex{path: path, kind: kind, m: m, mask: slots - 1, slotLen: slotLen(kind), seed: *seed}, nil
}

func openHashIndex(path string, kind uint32) (*hashIndex, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", errBadIndex, err)
	} else if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	var h [hixOffStride + 4]byte
	if _, err := f.ReadAt(h[:], 0); errors.Is(err, io.EOF) {
		f.Close()
		return nil, fmt.Errorf("%w: %s is too short", errBadIndex, path)
	} else if err != nil {
		f.Close()
		return nil, fmt.Errorf("read header of %s: %w", path, err)
	}
	slots := binary.LittleEndian.Uint64(h[16:])
	switch {
	case string(h[:8]) != hixMagic || binary.LittleEndian.Uint32(h[8:]) != hixVersion:
		err = errors.New("bad magic or version")
	case binary.LittleEndian.Uint32(h[12:]) != kind:
		err = errors.New("wrong kind")
	case kind == kindVersions && binary.LittleEndian.Uint32(h[hixOffStride:]) != versionStride:
		// Its checkpoints are not the ones readers look for: a read would
		// find none and walk an entity's whole chain (entity.go).
		err = fmt.Errorf("checkpoint stride %d (0: 64, not recorded), want %d", binary.LittleEndian.Uint32(h[hixOffStride:]), versionStride)
	case slots < hixMinSlots || slots&(slots-1) != 0 || st.Size() != hixHeaderLen+int64(slots)*int64(slotLen(kind)):
		err = errors.New("size does not match the slot count")
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %v", errBadIndex, path, err)
	}
	// Not mapped: a process that only reads looks slots up through pread,
	// so its address space does not grow with the log (a shared host's
	// ulimit -v); a writer maps the table with writable.
	x := &hashIndex{path: path, kind: kind, m: &mapping{f: f}, mask: slots - 1, slotLen: slotLen(kind)}
	copy(x.seed[:], h[hixOffSeed:])
	return x, nil
}

// writable returns x mapped for the writer's loads and stores: x itself if
// it is, else a mapped copy on a descriptor of its own, so either can be
// closed first.
func (x *hashIndex) writable() (*hashIndex, error) {
	if x.m.mapped() {
		return x, nil
	}
	f, err := os.OpenFile(x.path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	was, err1 := x.m.f.Stat()
	is, err2 := f.Stat()
	if err1 != nil || err2 != nil || !os.SameFile(was, is) {
		f.Close()
		return nil, fmt.Errorf("%w: %s was replaced since it was opened", errBadIndex, x.path)
	}
	m, err := mapFile(f, hixHeaderLen+int(x.slots())*x.slotLen)
	if err != nil {
		f.Close()
		return nil, err
	}
	y := *x
	y.m = m
	return &y, nil
}

func (x *hashIndex) slots() uint64 { return x.mask + 1 }
func (x *hashIndex) used() uint64  { return x.m.load(hixOffUsed) }

func (x *hashIndex) slotOff(i uint64) int { return hixHeaderLen + int(i)*x.slotLen }

// tagID is the tag of an event id: ids are already uniformly random.
func tagID(id *[32]byte) uint64 { return binary.LittleEndian.Uint64(id[:8]) | 1 }

// tagString is the tag of an entity or key: a hash keyed with the table's
// secret seed, so that clients cannot choose names that pile up in one run
// of slots.
func (x *hashIndex) tagString(s string) uint64 {
	tag, _ := x.hashString(s)
	return tag
}

// hashString returns the tag of s and 64 further bits of its hash: two
// SipHash-2-4 sums under the two halves of the table's seed.
func (x *hashIndex) hashString(s string) (tag, check uint64) {
	seed := x.seed[:]
	k := func(i int) uint64 { return binary.LittleEndian.Uint64(seed[8*i:]) }
	return sipHash(k(0), k(1), s) | 1, sipHash(k(2), k(3), s)
}

// entity returns the seq and version stored for an entity's hash, or zeros.
func (x *hashIndex) entity(tag, check uint64) (seq, version uint64) {
	for i := tag & x.mask; ; i = (i + 1) & x.mask {
		off := x.slotOff(i)
		t := x.m.load(off)
		if t == 0 {
			return 0, 0
		}
		if t == tag && x.m.load(off+8) == check {
			return x.m.load(off + 16), x.m.load(off + 24)
		}
	}
}

// putEntity sets an entity's newest seq and version, adding its slot if it
// has none; with onlyNewer it leaves a slot that already holds a later seq
// (replay after a crash). The tenant lock is held and room reserved.
func (x *hashIndex) putEntity(tag, check, seq, version uint64, onlyNewer bool) {
	for i := tag & x.mask; ; i = (i + 1) & x.mask {
		off := x.slotOff(i)
		t := x.m.load(off)
		if t == 0 {
			x.m.store(off+16, seq)
			x.m.store(off+24, version)
			x.m.store(off+8, check)
			x.m.store(off, tag)
			x.m.store(hixOffUsed, x.used()+1)
			return
		}
		if t == tag && x.m.load(off+8) == check {
			if !onlyNewer || x.m.load(off+16) < seq {
				x.m.store(off+16, seq)
				x.m.store(off+24, version)
			}
			return
		}
	}
}

// find calls fn with every seq stored under tag, until fn returns true.
func (x *hashIndex) find(tag uint64, fn func(seq uint64) bool) {
	for i := tag & x.mask; ; i = (i + 1) & x.mask {
		off := x.slotOff(i)
		t := x.m.load(off)
		if t == 0 {
			return
		}
		if t == tag {
			// The seq is stored before the tag, so a tag seen means its
			// seq is there too; 0 can only come from a torn crash page.
			if seq := x.m.load(off + 8); seq != 0 && fn(seq) {
				return
			}
		}
	}
}

// insert adds tag → seq. The caller holds the tenant lock and has made room
// with reserve.
func (x *hashIndex) insert(tag, seq uint64) {
	for i := tag & x.mask; ; i = (i + 1) & x.mask {
		off := x.slotOff(i)
		if x.m.load(off) == 0 {
			x.m.store(off+8, seq)
			x.m.store(off, tag)
			x.m.store(hixOffUsed, x.used()+1)
			return
		}
	}
}

// grow builds a table with room for n more keys beside x and renames it
// over x's file. The caller swaps it in and closes x. It reads x through
// pread, not its map, so that with release, where the caller alone uses x
// (a rebuild's tables, in no view), x is unmapped first: the rebuild then
// needs address space for the bigger table only, not for both, which under
// a shared host's ulimit -v is the difference between a rebuild that
// finishes and one that fails at the same doubling every time it resumes.
func (x *hashIndex) grow(n uint64, release bool) (*hashIndex, error) {
	// Double, or more if one batch needs it; createHashIndex keeps the
	// table at most half full.
	want := max(x.slots(), x.used()+n)
	if release {
		x.m.unmap()
	}
	y, err := createHashIndex(x.path+".grow", x.kind, want, &x.seed)
	if err != nil {
		return nil, fmt.Errorf("grow %s: %w", x.path, err)
	}
	buf := make([]byte, 1<<16)
	for i := uint64(0); i <= x.mask; {
		k := min(uint64(len(buf)/x.slotLen), x.mask+1-i)
		b := buf[:k*uint64(x.slotLen)]
		if _, err := x.m.f.ReadAt(b, int64(x.slotOff(i))); err != nil {
			y.close()
			os.Remove(y.path)
			return nil, fmt.Errorf("grow %s: %w", x.path, err)
		}
		for ; len(b) > 0; b = b[x.slotLen:] {
			u := func(off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
			switch tag := u(0); {
			case tag == 0:
			case x.kind == kindEntities:
				y.putEntity(tag, u(8), u(16), u(24), false)
			default:
				y.insert(tag, u(8))
			}
		}
		i += k
	}
	if err := fileutil.Rename(y.path, x.path); err != nil {
		y.close()
		os.Remove(y.path)
		return nil, fmt.Errorf("grow %s: %w", x.path, err)
	}
	y.path = x.path
	return y, nil
}

// The read* methods are find and entity for readers: they go through
// pread instead of the memory map, so a process that only serves reads keeps
// none of a big index resident, whatever it looks up, and needs no map. A slot is written seq
// first and tag last, and pread copies in address order, so a slot seen
// with its tag has its seq.

// readSlots calls visit with the slots from i on, a page at a time, until
// visit returns true or an empty slot ends the run.
func (x *hashIndex) readSlots(i uint64, visit func(slot []byte) bool) error {
	var page [4096]byte
	for {
		n := min(uint64(len(page)/x.slotLen), x.mask+1-i) // to the end of the table
		b := page[:n*uint64(x.slotLen)]
		if _, err := x.m.f.ReadAt(b, int64(x.slotOff(i))); err != nil {
			return err
		}
		for ; len(b) > 0; b = b[x.slotLen:] {
			if binary.LittleEndian.Uint64(b) == 0 || visit(b) {
				return nil
			}
		}
		i = (i + n) & x.mask
	}
}

// readFind is find through pread.
func (x *hashIndex) readFind(tag uint64, fn func(seq uint64) bool) error {
	return x.readSlots(tag&x.mask, func(s []byte) bool {
		if binary.LittleEndian.Uint64(s) != tag {
			return false
		}
		seq := binary.LittleEndian.Uint64(s[8:])
		return seq != 0 && fn(seq)
	})
}

// readEntity is entity through pread.
func (x *hashIndex) readEntity(tag, check uint64) (seq uint64, err error) {
	err = x.readSlots(tag&x.mask, func(s []byte) bool {
		if binary.LittleEndian.Uint64(s) == tag && binary.LittleEndian.Uint64(s[8:]) == check {
			seq = binary.LittleEndian.Uint64(s[16:])
			return true
		}
		return false
	})
	return seq, err
}

func (x *hashIndex) sync() error { return x.m.sync() }

func (x *hashIndex) close() error { return x.m.close() }
