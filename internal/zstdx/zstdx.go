// Package zstdx compresses and decompresses small buffers (snapshots,
// cache files, later sealed segments and backups) with zstd, at no cost to
// a process that does neither.
//
// What it promises:
//
//   - Nothing at start-up: the encoder and the decoder are made on first
//     use and shared by the process (the patched klauspost/compress under
//     third_party makes its package init allocation-free too; see
//     STRATA-PATCH.md there). A CGI request that compresses nothing pays
//     nothing.
//   - Low memory: one single-threaded encoder and one single-threaded
//     low-memory decoder; concurrent callers take turns, which suits
//     buffers of kilobytes to a few megabytes. DecodeParallel has its own
//     low-memory decoder of GOMAXPROCS for small frames many readers
//     decode at once (compressed log segments), made only if used.
//   - A bound on what a decode may produce: Decode refuses (ErrTooLarge) a
//     frame that declares or expands past its limit, before allocating
//     past it, so a damaged or hostile file cannot exhaust memory.
//   - Frames are standard zstd with a checksum: `zstd -d` reads them.
package zstdx

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MaxLimit is the largest limit Decode honours: the decoder's own memory
// bound, whatever a caller asks.
const MaxLimit = 1 << 30

// ErrTooLarge: the frame decodes to more than the limit allowed.
var ErrTooLarge = errors.New("zstd frame decodes past the size limit")

// ErrCorrupt: the input is not a whole, valid zstd frame.
var ErrCorrupt = errors.New("zstd frame is corrupt")

var (
	encOnce sync.Once
	enc     *zstd.Encoder
	encErr  error
	decOnce sync.Once
	dec     *zstd.Decoder
	decErr  error
	parOnce sync.Once
	par     *zstd.Decoder
	parErr  error
)

func encoder() (*zstd.Encoder, error) {
	encOnce.Do(func() {
		enc, encErr = zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true),
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderCRC(true))
	})
	return enc, encErr
}

func decoder() (*zstd.Decoder, error) {
	decOnce.Do(func() {
		dec, decErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(MaxLimit),
			zstd.WithDecodeAllCapLimit(true))
	})
	return dec, decErr
}

// parallelDecoder is decoder for up to GOMAXPROCS callers at once.
func parallelDecoder() (*zstd.Decoder, error) {
	parOnce.Do(func() {
		par, parErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0), // GOMAXPROCS
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(MaxLimit),
			zstd.WithDecodeAllCapLimit(true))
	})
	return par, parErr
}

// Encode appends the zstd frame of src to dst and returns it.
func Encode(dst, src []byte) ([]byte, error) {
	e, err := encoder()
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return e.EncodeAll(src, dst), nil
}

// Decode appends what the zstd frame src holds to dst and returns it. It
// fails with ErrTooLarge if that is more than limit bytes (limit ≤ 0 or
// past MaxLimit means MaxLimit), and with ErrCorrupt if src is not one
// whole valid frame.
func Decode(dst, src []byte, limit int) ([]byte, error) {
	return decode(decoder, dst, src, limit)
}

// DecodeParallel is Decode for many small frames that concurrent callers
// decode at once (a compressed log segment's, one per read): its shared
// decoder serves up to GOMAXPROCS of them together, where Decode's has
// them take turns. It is made on first use too.
func DecodeParallel(dst, src []byte, limit int) ([]byte, error) {
	return decode(parallelDecoder, dst, src, limit)
}

func decode(decoder func() (*zstd.Decoder, error), dst, src []byte, limit int) ([]byte, error) {
	if limit <= 0 || limit > MaxLimit {
		limit = MaxLimit
	}
	var h zstd.Header
	if err := h.Decode(src); err != nil || h.Skippable {
		return nil, fmt.Errorf("%w: header", ErrCorrupt)
	}
	d, err := decoder()
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	if h.HasFCS {
		if h.FrameContentSize > uint64(limit) {
			return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, h.FrameContentSize, limit)
		}
		size := int(h.FrameContentSize)
		out, err := decodeInto(d, dst, src, size)
		if err == nil && len(out)-len(dst) != size {
			err = fmt.Errorf("%w: %d bytes where the header says %d", ErrCorrupt, len(out)-len(dst), size)
		}
		return out, err
	}
	// No declared size (a streamed frame, not one of ours): room doubles
	// from 1 MB up to the limit.
	for room := min(limit, 1<<20); ; room = min(limit, 2*room) {
		out, err := decodeInto(d, dst, src, room)
		if !errors.Is(err, ErrTooLarge) || room == limit {
			if errors.Is(err, ErrTooLarge) {
				err = fmt.Errorf("%w: limit %d", ErrTooLarge, limit)
			}
			return out, err
		}
	}
}

// decodeInto decodes src after dst's bytes, writing at most room bytes:
// with WithDecodeAllCapLimit the decoder writes no further than cap.
func decodeInto(d *zstd.Decoder, dst, src []byte, room int) ([]byte, error) {
	start := len(dst)
	if cap(dst)-start < room {
		grown := make([]byte, start, start+room)
		copy(grown, dst)
		dst = grown
	}
	out, err := d.DecodeAll(src, dst[:start:start+room])
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
		return nil, ErrTooLarge
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return out, nil
}
