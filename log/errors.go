package log

import (
	"errors"
	"fmt"

	"strata/internal/fileutil"
)

// Sentinel errors. Callers test them with errors.Is; the api package maps
// each to one HTTP status.
var (
	// ErrNotFound: no event has that id or seq (on this chain).
	ErrNotFound = errors.New("not found")
	// ErrCorrupt: a record is damaged somewhere other than the tail.
	ErrCorrupt = errors.New("log is corrupt")
	// ErrLockTimeout: another writer held the tenant lock too long. It
	// matches fileutil.ErrLockTimeout too.
	ErrLockTimeout = fmt.Errorf("tenant lock busy: %w", fileutil.ErrLockTimeout)
	// ErrFailed: an earlier write or fsync failed; reopen the log.
	ErrFailed = errors.New("log refuses appends after a failed write")
	// ErrClosed: the Log was closed.
	ErrClosed = errors.New("log is closed")
	// ErrNoSpace wraps ENOSPC and EDQUOT.
	ErrNoSpace = errors.New("no space left on device")
	// ErrSegmentSize: Options.SegmentSize is over MaxSegmentSize.
	ErrSegmentSize = errors.New("a segment is at most 4G-1 bytes (4294967295): record offsets within a segment are 32-bit")
	// ErrTooLarge: a record or batch is over the hard limits.
	ErrTooLarge = errors.New("too large")
)

// InvalidError says which event of a batch and which field is unacceptable.
type InvalidError struct {
	Index int    // position of the event in its request
	Field string // "type", "entity", "key", "meta", …
	Err   error
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("event %d: field %q %v", e.Index, e.Field, e.Err)
}

func (e *InvalidError) Unwrap() error { return e.Err }

// VersionConflictError: an event's expected_version did not match.
type VersionConflictError struct {
	Index    int
	Entity   string
	Expected uint64
	Current  uint64 // 0 when the entity has no events
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("event %d: entity %q is at version %d, expected %d", e.Index, e.Entity, e.Current, e.Expected)
}

// HeadConflictError: the request's If-Match head was not the current head.
type HeadConflictError struct {
	Expected [32]byte
	Current  Head
}

func (e *HeadConflictError) Error() string {
	return fmt.Sprintf("head is %x (seq %d), not %x", e.Current.ID, e.Current.Seq, e.Expected)
}

// KeyConflictError: an idempotency key was used before for different content.
type KeyConflictError struct {
	Index    int
	Key      string
	Existing *Event
}

func (e *KeyConflictError) Error() string {
	return fmt.Sprintf("event %d: key %q was used for a different event (seq %d)", e.Index, e.Key, e.Existing.Seq)
}

// Error is a failure of an operation on one tenant's log, with where it
// happened.
type Error struct {
	Op   string // "append", "open", "read", "verify", …
	Dir  string
	Seq  uint64 // 0 when not about one record
	Err  error
	Hint string // what the user can do, if anything
}

func (e *Error) Error() string {
	s := e.Op + " " + e.Dir
	if e.Seq != 0 {
		s += fmt.Sprintf(" at seq %d", e.Seq)
	}
	s += ": " + e.Err.Error()
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }
