package projections

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"strata/jsonx"
	"strata/log"
)

// Reader reads entity states from a log through its snapshots: every
// state, history page and diff starts from the nearest valid snapshot at or
// before the point asked (or the latest-state cache) and folds only the
// events after it, so it costs O(events since that snapshot), not
// O(versions). A read that folds through a version that is a multiple of
// the interval writes that version's snapshot on the way (appends pay
// nothing; CGI requests build them too), and a read of the current state
// that folded anything rewrites the latest-state cache. Snapshots are
// caches: each is used only if its seq and id are on the chain, a damaged
// one is removed and rewritten, and all may be deleted at any time.
type Reader struct {
	l     *log.Log
	every uint64 // versions between automatic snapshots; 0: none, and no latest-state cache
}

// NewReader returns a Reader of l writing an automatic snapshot every
// every versions of an entity; every ≤ 0 writes none (existing snapshots,
// manual ones included, are still used).
func NewReader(l *log.Log, every int) *Reader {
	return &Reader{l: l, every: uint64(max(every, 0))}
}

// ctxEvery is how many events a fold applies between two looks at its
// context.
const ctxEvery = 256

// latestAfter is how many events a read of the current state must fold
// before it rewrites the latest-state cache: folding a few events (a
// dozen reads and merges) costs less than writing a file, so reads and
// entity writes that alternate write no file each.
const latestAfter = 16

// maxAutoPerFold bounds the automatic snapshots one fold writes (each is a
// file created and renamed, ~0.1–1 ms): the first read of an entity of
// 100,000 versions writes all 781 of them, one of millions writes the
// first 1,024 and leaves the rest to the reads that fold through them
// later, so no request does unbounded work.
const maxAutoPerFold = 1024

// StateAt returns entity's state at point p.
func (r *Reader) StateAt(ctx context.Context, entity string, p Point) (*State, error) {
	through := r.l.Through()
	to, err := p.bound(r.l, entity, through)
	if err != nil {
		return nil, err
	}
	base, err := r.nearest(entity, to)
	if err != nil {
		return nil, err
	}
	s, err := r.Fold(ctx, entity, base, to)
	if err != nil {
		return nil, err
	}
	folded := s.Version
	if base != nil {
		folded -= base.Version
	}
	if r.every > 0 && to == through && folded >= latestAfter {
		writeSnapshot(r.l, s, kindLatest) // a cache: failing to write it costs speed only
	}
	return s, nil
}

// nearest returns the newest valid snapshot of entity at or before seq
// to, the latest-state cache included, or nil.
func (r *Reader) nearest(entity string, to uint64) (*State, error) {
	dir := entityDir(r.l.Dir(), entity)
	latest, _, err := readSnapshot(r.l, filepath.Join(dir, latestName), entity)
	if err != nil {
		return nil, err
	}
	if latest != nil && latest.Seq <= to {
		// Nothing newer of the entity at or before to: no listing needed.
		head, err := r.l.EntityHead(entity)
		if err != nil {
			return nil, err
		}
		if head == latest.Seq {
			return latest, nil
		}
		// Newer events, but none at a multiple of the interval (no
		// automatic snapshot can be newer; a manual one rewrites the
		// latest-state cache too): no listing either.
		if r.every > 0 && head <= to {
			e, err := r.l.Event(head)
			if err != nil {
				return nil, err
			}
			if e.Version/r.every == latest.Version/r.every {
				return latest, nil
			}
		}
	} else {
		latest = nil
	}
	files, err := listSnapshots(r.l.Dir(), entity)
	if err != nil {
		return latest, nil // an unreadable cache directory: fold from what there is
	}
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		if f.seq > to {
			continue
		}
		if latest != nil && f.seq <= latest.Seq {
			break
		}
		s, _, err := readSnapshot(r.l, filepath.Join(dir, f.name), entity)
		if err != nil {
			return nil, err
		}
		if s != nil {
			return s, nil
		}
	}
	return latest, nil
}

// Fold returns entity's state through seq to: base (nil: none, read from
// the entity's first event) with every event of the entity after base.Seq
// and at most to applied; base must be the entity's state at base.Seq. It
// writes the automatic snapshots it folds through, and stops with ctx's
// error when ctx is done (a client that went away).
func (r *Reader) Fold(ctx context.Context, entity string, base *State, to uint64) (*State, error) {
	var s State
	if base != nil {
		s = *base
		s.Event = nil
	}
	s.Entity = entity
	it := r.l.ScanEntity(entity, s.Seq, to)
	written := 0
	for n := 1; it.Next(); n++ {
		if err := s.apply(it.Event()); err != nil {
			return nil, err
		}
		if n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if r.every > 0 && s.Version%r.every == 0 && written < maxAutoPerFold {
			if r.autoSnapshot(&s) {
				written++
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	if s.Version == 0 {
		return nil, ErrNoEntity
	}
	return &s, nil
}

// autoSnapshot writes the automatic snapshot of s unless one is there,
// and reports whether it wrote one.
func (r *Reader) autoSnapshot(s *State) bool {
	path := filepath.Join(entityDir(r.l.Dir(), s.Entity), snapName(s.Version, s.Seq))
	if _, err := os.Stat(path); err == nil {
		return false
	}
	_, err := writeSnapshot(r.l, s, KindAuto) // a cache: failing to write it costs speed only
	return err == nil
}

// History returns up to limit versions of entity after version after, each
// with its state and the event that made it, and whether more follow. It
// starts from the nearest snapshot at or before version after:
// O(events since it + limit).
func (r *Reader) History(ctx context.Context, entity string, after uint64, limit int) ([]*State, bool, error) {
	through := r.l.Through()
	var base *State
	if after > 0 {
		seq, err := r.l.EntityVersion(entity, after)
		switch {
		case errors.Is(err, log.ErrNotFound):
			// Past the newest version: an empty page, if the entity exists.
			if head, err := r.l.EntityHead(entity); err != nil || head == 0 {
				return nil, false, errors.Join(err, ErrNoEntity)
			}
			return nil, false, nil
		case err != nil:
			return nil, false, err
		}
		if base, err = r.nearest(entity, seq); err != nil {
			return nil, false, err
		}
		if base, err = r.Fold(ctx, entity, base, seq); err != nil {
			return nil, false, err
		}
	}
	var page []*State
	s := State{Entity: entity}
	if base != nil {
		s = *base
	}
	it := r.l.ScanEntity(entity, s.Seq, through)
	for it.Next() {
		if len(page) == limit {
			return page, true, nil
		}
		e := it.Event()
		if err := s.apply(e); err != nil {
			return nil, false, err
		}
		v := s
		v.Event = e
		page = append(page, &v)
	}
	if err := it.Err(); err != nil {
		return nil, false, err
	}
	if page == nil && base == nil {
		return nil, false, ErrNoEntity
	}
	return page, false, nil
}

// Diff returns entity's states at versions from and to (from may be 0, the
// null before its first event; to 0 is its newest version) and the merge
// patch that takes the one to the other. Each state starts from the
// nearest snapshot at or before it.
//
// exact is false when the patch cannot say what to holds: RFC 7386 has no
// way to set a member to null (a null deletes it), so such a member comes
// out deleted (jsonx.MergeDiff).
func (r *Reader) Diff(ctx context.Context, entity string, from, to uint64) (a, b *State, patch []byte, exact bool, err error) {
	if to != 0 && from > to {
		return nil, nil, nil, false, fmt.Errorf("diff from version %d to %d: %w", from, to, ErrBackwards)
	}
	through := r.l.Through()
	toSeq, err := Point{Version: to}.bound(r.l, entity, through)
	if err != nil {
		return nil, nil, nil, false, err
	}
	a = &State{Entity: entity, State: null}
	if from > 0 {
		if a, err = r.StateAt(ctx, entity, Point{Version: from}); err != nil {
			return nil, nil, nil, false, err
		}
	}
	base, err := r.nearest(entity, toSeq)
	if err != nil {
		return nil, nil, nil, false, err
	}
	if base == nil || base.Seq < a.Seq {
		base = a
	}
	if b, err = r.Fold(ctx, entity, base, toSeq); err != nil {
		return nil, nil, nil, false, err
	}
	if patch, exact, err = jsonx.MergeDiff(nil, a.State, b.State); err != nil {
		return nil, nil, nil, false, fmt.Errorf("diff of %q from version %d to %d: %w", entity, from, to, err)
	}
	return a, b, patch, exact, nil
}
