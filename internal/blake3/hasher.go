package blake3

import (
	"encoding/binary"
	"hash"
)

// Size is the size of a BLAKE3-256 digest in bytes.
const Size = 32

const (
	blockLen = 64   // bytes per compression
	chunkLen = 1024 // bytes per chunk (16 blocks)

	// maxDepth bounds the chaining-value stack: 2^54 chunks of 2^10 bytes
	// cover 2^64 bytes of input.
	maxDepth = 54
)

// Domain-separation flags.
const (
	flagChunkStart = 1 << 0
	flagChunkEnd   = 1 << 1
	flagParent     = 1 << 2
	flagRoot       = 1 << 3
)

// The initialisation vector (the SHA-256 IV). They are constants, so using
// them costs nothing at start-up.
const (
	iv0 = 0x6A09E667
	iv1 = 0xBB67AE85
	iv2 = 0x3C6EF372
	iv3 = 0xA54FF53A
	iv4 = 0x510E527F
	iv5 = 0x9B05688C
	iv6 = 0x1F83D9AB
	iv7 = 0x5BE0CD19
)

// ivWords returns the IV as a chaining value (the key words of the
// unkeyed hash mode).
func ivWords() [8]uint32 {
	return [8]uint32{iv0, iv1, iv2, iv3, iv4, iv5, iv6, iv7}
}

var _ hash.Hash = (*Hasher)(nil)

// Hasher computes a BLAKE3-256 digest incrementally. Create one with New;
// the zero value is not ready for use.
//
// Invariant: once any input has been written, the last 1..64 bytes seen are
// held in buf and not yet compressed, because the compression of the final
// block (and whether its chunk is the root) depends on there being no more
// input.
type Hasher struct {
	cv     [8]uint32 // chaining value of the current chunk
	chunk  uint64    // index of the current chunk = number of completed chunks
	blocks int       // blocks of the current chunk already compressed (0..15)
	bufLen int       // bytes in buf (0..64)
	buf    [blockLen]byte

	// stack holds the chaining values of completed subtrees, largest
	// (leftmost) first. Its length is always the popcount of chunk.
	stackLen int
	stack    [maxDepth][8]uint32
}

// New returns a Hasher computing the unkeyed BLAKE3 hash with 32-byte output.
func New() *Hasher {
	h := new(Hasher)
	h.Reset()
	return h
}

// Reset resets the Hasher to its initial state.
func (h *Hasher) Reset() {
	h.cv = ivWords()
	h.chunk = 0
	h.blocks = 0
	h.bufLen = 0
	h.stackLen = 0
}

// Size returns the digest size, 32 bytes.
func (h *Hasher) Size() int { return Size }

// BlockSize returns the BLAKE3 block size, 64 bytes.
func (h *Hasher) BlockSize() int { return blockLen }

// Write adds p to the running hash. It never returns an error.
func (h *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if h.bufLen == blockLen {
			// More input follows the buffered block, so it is not final.
			h.compressBlock(&h.buf)
			h.bufLen = 0
		}
		if h.bufLen == 0 {
			// Compress straight from p, always keeping at least one byte
			// back for the buffer.
			if h.blocks == 0 {
				for len(p) > chunkLen {
					h.pushChunk(chunkCV(p[:chunkLen], h.chunk))
					p = p[chunkLen:]
				}
			}
			for len(p) > blockLen {
				h.compressBlock((*[blockLen]byte)(p))
				p = p[blockLen:]
			}
		}
		c := copy(h.buf[h.bufLen:], p)
		h.bufLen += c
		p = p[c:]
	}
	return n, nil
}

// compressBlock compresses a full block of the current chunk that is known
// not to be the last block of the input.
func (h *Hasher) compressBlock(b *[blockLen]byte) {
	var flags uint32
	switch h.blocks {
	case 0:
		flags = flagChunkStart
	case chunkLen/blockLen - 1:
		flags = flagChunkEnd
	}
	compress(&h.cv, b, h.chunk, blockLen, flags)
	h.blocks++
	if h.blocks == chunkLen/blockLen {
		h.pushChunk(h.cv)
		h.cv = ivWords()
		h.blocks = 0
	}
}

// pushChunk adds the chaining value of the completed, non-final chunk number
// h.chunk to the stack and advances to the next chunk. Because more input is
// known to follow, every subtree it completes can be merged right away: one
// merge per trailing zero bit of the new chunk count.
func (h *Hasher) pushChunk(cv [8]uint32) {
	h.chunk++
	for t := h.chunk; t&1 == 0; t >>= 1 {
		h.stackLen--
		cv = parentCV(&h.stack[h.stackLen], &cv, 0)
	}
	h.stack[h.stackLen] = cv
	h.stackLen++
}

// chunkCV returns the chaining value of a full 1024-byte chunk that is not
// the last chunk of the input.
func chunkCV(p []byte, counter uint64) [8]uint32 {
	p = p[:chunkLen]
	cv := ivWords()
	compress(&cv, (*[blockLen]byte)(p[0:]), counter, blockLen, flagChunkStart)
	for i := blockLen; i < chunkLen-blockLen; i += blockLen {
		compress(&cv, (*[blockLen]byte)(p[i:]), counter, blockLen, 0)
	}
	compress(&cv, (*[blockLen]byte)(p[chunkLen-blockLen:]), counter, blockLen, flagChunkEnd)
	return cv
}

// parentCV compresses two child chaining values into their parent's;
// extraFlags is flagRoot for the root node.
func parentCV(left, right *[8]uint32, extraFlags uint32) [8]uint32 {
	var block [blockLen]byte
	for i := 0; i < 8; i++ {
		binary.LittleEndian.PutUint32(block[4*i:], left[i])
		binary.LittleEndian.PutUint32(block[32+4*i:], right[i])
	}
	cv := ivWords()
	compress(&cv, &block, 0, blockLen, flagParent|extraFlags)
	return cv
}

// Sum appends the current digest to b and returns the resulting slice. It
// does not change the state of the Hasher.
func (h *Hasher) Sum(b []byte) []byte {
	d := h.sum()
	return append(b, d[:]...)
}

func (h *Hasher) sum() [Size]byte {
	// The final chunk: the buffered block, zero-padded, with CHUNK_END.
	var block [blockLen]byte
	copy(block[:], h.buf[:h.bufLen])
	flags := uint32(flagChunkEnd)
	if h.blocks == 0 {
		flags |= flagChunkStart
	}
	cv := h.cv
	if h.stackLen == 0 {
		compress(&cv, &block, h.chunk, uint32(h.bufLen), flags|flagRoot)
		return cvBytes(&cv)
	}
	compress(&cv, &block, h.chunk, uint32(h.bufLen), flags)
	// Merge the right edge of the tree, top of the stack first; the last
	// merge is the root.
	for i := h.stackLen - 1; i > 0; i-- {
		cv = parentCV(&h.stack[i], &cv, 0)
	}
	cv = parentCV(&h.stack[0], &cv, flagRoot)
	return cvBytes(&cv)
}

func cvBytes(cv *[8]uint32) (out [Size]byte) {
	for i, w := range cv {
		binary.LittleEndian.PutUint32(out[4*i:], w)
	}
	return out
}

// Sum256 returns the BLAKE3-256 digest of b. It does not allocate.
func Sum256(b []byte) [Size]byte {
	if len(b) > chunkLen {
		var h Hasher
		h.Reset()
		h.Write(b)
		return h.sum()
	}
	// A single chunk, which is also the root.
	cv := ivWords()
	flags := uint32(flagChunkStart)
	for len(b) > blockLen {
		compress(&cv, (*[blockLen]byte)(b), 0, blockLen, flags)
		flags = 0
		b = b[blockLen:]
	}
	var block [blockLen]byte
	copy(block[:], b)
	compress(&cv, &block, 0, uint32(len(b)), flags|flagChunkEnd|flagRoot)
	return cvBytes(&cv)
}
