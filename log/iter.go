package log

// Iter reads committed events in seq order. It reads each segment
// sequentially through a buffer, so a long read costs what it reads and no
// system call per event. It is a RawIter that decodes each record.
//
//	it := l.Scan(from, to)
//	for it.Next() { e := it.Event() … }
//	if err := it.Err(); err != nil { … }
type Iter struct {
	raw RawIter
	ev  Event
}

// Scan returns an iterator over the committed events from seq from through
// seq to, inclusive; to is capped at the committed head as of this call.
func (l *Log) Scan(from, to uint64) *Iter {
	it := new(Iter)
	l.scanRaw(&it.raw, from, to)
	return it
}

// Next advances to the next event and reports whether there is one.
func (it *Iter) Next() bool {
	if !it.raw.Next() {
		return false
	}
	it.raw.raw.Decode(&it.ev)
	return true
}

// Event returns the current event. It, and its Data and Meta, are valid
// only until the next call to Next.
func (it *Iter) Event() *Event { return &it.ev }

// Err returns the error that ended the iteration, if any.
func (it *Iter) Err() error { return it.raw.err }

// Bytes returns how many bytes of records the iterator has read.
func (it *Iter) Bytes() int64 { return it.raw.bytes }
