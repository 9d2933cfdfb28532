package log

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"strata/internal/zstdx"
)

// A sealed segment may be stored compressed, as <first>.zseg (FORMAT.md,
// "Compressed segments"): a plain zstd stream whose decompression is the
// original .seg byte for byte, made of independent frames of whole records
// and ended by a seek table in zstd's seekable format. Reads go through
// zsegReader, an io.ReaderAt over the original bytes that decodes only the
// frames a read touches, so offsets, ids and every read result stay what
// they were.
//
// Frame size and level were chosen by measuring 40,000 realistic events
// (zseg_gen_test.go: ~510 bytes of NDJSON each, random ids and correlation
// ids) in a 14 MB segment, klauspost/compress on one core:
//
//	level    frame  size/NDJSON  size/.seg  encode    decode a frame
//	default  4K     0.291        0.421
//	default  8K     0.254        0.367
//	fastest  32K    0.219        0.317      265 MB/s  26 µs
//	default  16K    0.230        0.332      224 MB/s  17 µs
//	default  32K    0.219        0.317      243 MB/s  26 µs
//	default  64K    0.214        0.309      250 MB/s  47 µs
//	default  256K   0.209        0.302      211 MB/s  159 µs
//	better   32K    0.215        0.311      141 MB/s  25 µs
//	best     64K    0.206        0.297      35 MB/s   41 µs
//
// The ids (32 random bytes each; each prev repeats the id before) bound
// the ratio, so bigger frames or higher levels gain a percent or two while
// a read that misses the frame cache pays for decoding its whole frame.
// 16 KiB at the default level (zstd level 3, internal/zstdx's encoder) is
// well under the 0.3× target and keeps a miss near 20 µs:
// BenchmarkCompressedRead measured p50 by seq 1.2 µs compressed / 1.6 µs
// plain when the frames are cached ("warm"), 19 µs / 1.7 µs when most
// reads miss ("cold", 48 MB of log against the 16 MiB cache); 32 KiB
// frames made that 31 µs, 8 KiB 13 µs (at a ratio of 0.254). Over HTTP
// (strata serve, loopback, random reads of a 37 MB log compacted to 12 MB,
// several runs) the p50 of a read by seq went from 90–120 µs to 95–170 µs,
// by id from 70–95 µs to 85–135 µs: within 1.5×. A page of an entity's
// events walks back along its chain through up to 64 records, each in
// another frame when the cache is cold: 260–310 µs became 830–930 µs (~3×).
const (
	zsegExt    = ".zseg"
	zsegTmpExt = ".zseg.tmp"

	// zsegFrameSize is the most original bytes a frame holds, unless a
	// single record is bigger (it then has a frame of its own).
	zsegFrameSize = 16 << 10

	// The seek table (zstd contrib/seekable_format): a skippable frame
	// (magic, u32 content length) of entries (u32 compressed size, u32
	// decompressed size), then the footer: u32 frame count, u8
	// descriptor, u32 seekable magic.
	skippableMagic  = 0x184D2A5E
	seekableMagic   = 0x8F92EAB1
	skippableHdrLen = 8
	seekFooterLen   = 9
	seekEntryLen    = 8
	seekChecksum    = 0x80 // descriptor bit: entries carry a u32 checksum (we write none)
	// maxFrameLen bounds a frame's decompressed size: the segment header
	// and one record of the largest size.
	maxFrameLen = segmentHeaderLen + recordHeaderLen + maxRecordLen
)

func zsegName(first uint64) string { return fmt.Sprintf("%020d%s", first, zsegExt) }

// zframe is one frame of a .zseg: where its compressed bytes are in the
// file, and which original bytes it holds.
type zframe struct {
	coff, doff   int64
	csize, dsize uint32
}

// zsegReader reads the original bytes of a .zseg. It is safe for
// concurrent use; decoded frames are shared through frameCache.
type zsegReader struct {
	f      io.ReaderAt
	c      io.Closer // f's, nil when there is nothing to close
	name   string    // base name, for errors
	id     uint64    // this reader's key in frameCache
	frames []zframe
	size   int64 // original size
	csize  int64 // file size
}

// zsegIDs numbers zsegReaders for frameCache.
var zsegIDs atomic.Uint64

// openZseg opens the .zseg at path and reads its seek table.
func openZseg(path string) (*zsegReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil {
		var z *zsegReader
		if z, err = newZsegReader(f, st.Size(), st.Name()); err == nil {
			z.c = f
			return z, nil
		}
	}
	f.Close()
	return nil, err
}

// newZsegReader reads the seek table of the size bytes of a .zseg that r
// holds; name is for errors.
func newZsegReader(r io.ReaderAt, size int64, name string) (*zsegReader, error) {
	z := &zsegReader{f: r, name: name, csize: size}
	if err := z.readSeekTable(r, size); err != nil {
		return nil, fmt.Errorf("%w: %s: seek table: %v", ErrCorrupt, z.name, err)
	}
	z.id = zsegIDs.Add(1)
	return z, nil
}

func (z *zsegReader) readSeekTable(r io.ReaderAt, size int64) error {
	if size < skippableHdrLen+seekFooterLen {
		return fmt.Errorf("file of %d bytes", size)
	}
	var foot [seekFooterLen]byte
	if _, err := r.ReadAt(foot[:], size-seekFooterLen); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(foot[5:]) != seekableMagic {
		return errors.New("no seekable magic at the end")
	}
	desc := foot[4]
	if desc&^seekChecksum != 0 {
		return fmt.Errorf("descriptor %#x has reserved bits set", desc)
	}
	entry := int64(seekEntryLen)
	if desc&seekChecksum != 0 {
		entry += 4
	}
	n := int64(binary.LittleEndian.Uint32(foot[:4]))
	tableLen := n*entry + seekFooterLen
	if n == 0 || skippableHdrLen+tableLen > size {
		return fmt.Errorf("%d frames in a file of %d bytes", n, size)
	}
	b := make([]byte, skippableHdrLen+tableLen)
	start := size - int64(len(b))
	if _, err := r.ReadAt(b, start); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(b) != skippableMagic || int64(binary.LittleEndian.Uint32(b[4:])) != tableLen {
		return errors.New("not in a skippable frame of its length")
	}
	z.frames = make([]zframe, n)
	var coff, doff int64
	for i := range z.frames {
		e := b[skippableHdrLen+int64(i)*entry:]
		c, d := binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:])
		if c == 0 || d == 0 || d > maxFrameLen {
			return fmt.Errorf("frame %d: %d bytes compressed, %d original", i, c, d)
		}
		z.frames[i] = zframe{coff: coff, doff: doff, csize: c, dsize: d}
		coff += int64(c)
		doff += int64(d)
	}
	if coff != start {
		return fmt.Errorf("frames of %d bytes before a table at %d", coff, start)
	}
	z.size = doff
	return nil
}

// Size returns the original size.
func (z *zsegReader) Size() int64 { return z.size }

// Close closes the file and drops its frames from the cache.
func (z *zsegReader) Close() error {
	frameCache.drop(z.id)
	if z.c == nil {
		return nil
	}
	return z.c.Close()
}

// ReadAt reads original bytes, as (*os.File).ReadAt reads a .seg: io.EOF
// when p reaches past the end. A frame that does not decode (damage) is
// ErrCorrupt naming the file and the frame.
func (z *zsegReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", z.name, off)
	}
	i := sort.Search(len(z.frames), func(i int) bool { return z.frames[i].doff+int64(z.frames[i].dsize) > off })
	n := 0
	for ; n < len(p) && i < len(z.frames); i++ {
		fr := z.frames[i]
		at := off + int64(n) - fr.doff
		if at == 0 && len(p)-n >= int(fr.dsize) {
			// The read covers the whole frame (a scan): decode it into p,
			// keeping it out of the cache, where it would push out the
			// frames random reads come back to.
			if _, err := z.decode(i, p[n:n:n+int(fr.dsize)]); err != nil {
				return n, err
			}
			n += int(fr.dsize)
			continue
		}
		b, err := z.frame(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b[at:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// frameEnd returns the end (in original bytes) of the frame holding off:
// a record that starts at off ends by then, so a read of it need not go
// further and decode the next frame.
func (z *zsegReader) frameEnd(off int64) int64 {
	i := sort.Search(len(z.frames), func(i int) bool { return z.frames[i].doff+int64(z.frames[i].dsize) > off })
	if i == len(z.frames) {
		return z.size
	}
	return z.frames[i].doff + int64(z.frames[i].dsize)
}

// frame returns frame i decoded, from the cache or decoded into it.
func (z *zsegReader) frame(i int) ([]byte, error) {
	if b := frameCache.get(z.id, i); b != nil {
		return b, nil
	}
	b, err := z.decode(i, nil)
	if err != nil {
		return nil, err
	}
	frameCache.put(z.id, i, b)
	return b, nil
}

// decode decodes frame i after dst (whose capacity it uses if it can).
func (z *zsegReader) decode(i int, dst []byte) ([]byte, error) {
	fr := z.frames[i]
	src := make([]byte, fr.csize)
	if _, err := z.f.ReadAt(src, fr.coff); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s frame %d: %w", z.name, i, err)
	}
	out, err := zstdx.DecodeParallel(dst, src, int(fr.dsize))
	if err == nil && len(out)-len(dst) != int(fr.dsize) {
		err = fmt.Errorf("%d bytes where the seek table says %d", len(out)-len(dst), fr.dsize)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s frame %d (offset %d): %v", ErrCorrupt, z.name, i, fr.doff, err)
	}
	return out[len(dst):], nil
}

// frameCacheBytes is the budget of decoded frames kept for all compressed
// segments of the process: 1,024 frames of 16 KiB. Reads near one another
// (an entity's recent events, a page of the log, the records around a
// lookup) come back to a frame; a scan decodes past the cache.
const frameCacheBytes = 16 << 20

type frameKey struct {
	reader uint64
	frame  int
}

type cachedFrame struct {
	key frameKey
	b   []byte
}

// lruFrames is a byte-bounded LRU of decoded frames. Its zero value is
// ready: nothing is made before the first compressed read.
type lruFrames struct {
	mu    sync.Mutex
	m     map[frameKey]*list.Element
	order list.List // front = most recently used
	bytes int
}

var frameCache lruFrames

func (c *lruFrames) get(reader uint64, frame int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[frameKey{reader, frame}]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*cachedFrame).b
}

func (c *lruFrames) put(reader uint64, frame int, b []byte) {
	if len(b) > frameCacheBytes/8 {
		return // one huge record's frame would empty the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := frameKey{reader, frame}
	if _, ok := c.m[k]; ok {
		return
	}
	if c.m == nil {
		c.m = map[frameKey]*list.Element{}
	}
	c.m[k] = c.order.PushFront(&cachedFrame{k, b})
	c.bytes += len(b)
	for c.bytes > frameCacheBytes {
		c.remove(c.order.Back())
	}
}

// drop forgets every frame of reader (closed).
func (c *lruFrames) drop(reader uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, el := range c.m {
		if k.reader == reader {
			c.remove(el)
		}
	}
}

// remove takes el out; mu is held.
func (c *lruFrames) remove(el *list.Element) {
	cf := el.Value.(*cachedFrame)
	c.order.Remove(el)
	delete(c.m, cf.key)
	c.bytes -= len(cf.b)
}

// zsegWriter writes a .zseg: frames of whole records, then the seek table.
type zsegWriter struct {
	w      io.Writer
	frames []zframe
	buf    []byte
	n      int64 // bytes written
	doff   int64
}

// frame compresses b (whole records; the first frame also the header) as
// one frame.
func (zw *zsegWriter) frame(b []byte) error {
	out, err := zstdx.Encode(zw.buf[:0], b)
	if err != nil {
		return err
	}
	zw.buf = out
	if _, err := zw.w.Write(out); err != nil {
		return err
	}
	zw.frames = append(zw.frames, zframe{coff: zw.n, doff: zw.doff, csize: uint32(len(out)), dsize: uint32(len(b))})
	zw.n += int64(len(out))
	zw.doff += int64(len(b))
	return nil
}

// finish writes the seek table.
func (zw *zsegWriter) finish() error {
	tableLen := len(zw.frames)*seekEntryLen + seekFooterLen
	b := make([]byte, 0, skippableHdrLen+tableLen)
	b = binary.LittleEndian.AppendUint32(b, skippableMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(tableLen))
	for _, fr := range zw.frames {
		b = binary.LittleEndian.AppendUint32(b, fr.csize)
		b = binary.LittleEndian.AppendUint32(b, fr.dsize)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(zw.frames)))
	b = append(b, 0) // descriptor: no per-frame checksums (the frames carry their own)
	b = binary.LittleEndian.AppendUint32(b, seekableMagic)
	_, err := zw.w.Write(b)
	zw.n += int64(len(b))
	return err
}

// compressSegment writes the .zseg of the segment whose original bytes r
// holds (size bytes) to w and returns its length. Frames are cut at the
// record boundaries a scan of the records finds, every record's checksum
// checked on the way: a segment that does not end with a whole record is
// refused (ErrCorrupt), never compressed. progress, when set, is told of
// the original bytes done after each frame.
func compressSegment(w io.Writer, r io.ReaderAt, size int64, progress func(int64)) (n int64, records uint64, err error) {
	zw := &zsegWriter{w: w}
	sc := newScanner(r, segmentHeaderLen)
	var start int64 // of the frame being gathered
	buf := make([]byte, 0, zsegFrameSize)
	flush := func(end int64) error {
		if cap(buf) < int(end-start) {
			buf = make([]byte, 0, end-start)
		}
		b := buf[:end-start]
		if _, err := r.ReadAt(b, start); err != nil {
			return err
		}
		if err := zw.frame(b); err != nil {
			return err
		}
		if progress != nil {
			progress(end - start)
		}
		start = end
		return nil
	}
	for {
		body, off, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("%w: offset %d: %v", ErrCorrupt, off, err)
		}
		records++
		end := off + int64(len(body)) + recordHeaderLen
		first := start == 0 && off == segmentHeaderLen || off == start
		if !first && end-start > zsegFrameSize {
			if err := flush(off); err != nil {
				return 0, 0, err
			}
		}
	}
	end := sc.off + int64(sc.pos)
	if end != size {
		return 0, 0, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, size-end)
	}
	if err := flush(end); err != nil {
		return 0, 0, err
	}
	if err := zw.finish(); err != nil {
		return 0, 0, err
	}
	return zw.n, records, nil
}
