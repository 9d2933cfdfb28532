package jsonx

import (
	"hash/maphash"
	"sync"
)

// RFC 7386 JSON merge patches on compact JSON, as strata stores it: the
// default reduction of an entity's events to its state, and the diff
// between two of its versions. The rules that go beyond the RFC (byte
// preservation, member order, duplicate names, nulls in a diff) are in the
// package doc.

// MergePatch appends to dst the result of applying the RFC 7386 merge patch
// patch to target. Both are compact JSON, as Compact and ParseEvents leave
// them; an empty target means none (no state yet) and is treated as null.
//
// Members the patch does not name keep their bytes and their place; a
// member the patch replaces keeps its place and its name's spelling; members
// the patch adds follow, in the patch's order. A null in the patch deletes;
// a patch that is not an object replaces the target whole. A name that
// appears more than once in an object the patch changes comes out once, at
// its first place, merged from its last value (as JavaScript and Python
// read duplicates); objects the patch does not reach are copied as they
// are, duplicates included.
//
// The result is never nested deeper than the deeper of target and patch,
// so it is at most MaxDepth deep. Invalid or non-compact input is an
// error (a *SyntaxError whose message says "target" or "patch"); dst is
// then returned unchanged. dst must not overlap target or patch: reduce a
// state by alternating two buffers.
func MergePatch(dst, target, patch []byte) ([]byte, error) {
	start := len(dst)
	if len(target) == 0 {
		target = nil
	} else if target[0] != '{' {
		if err := checkCompact(target, "target"); err != nil {
			return dst, err
		}
		target = nil // a scalar or an array is replaced as null would be
	}
	if len(patch) == 0 || patch[0] != '{' {
		if err := checkCompact(patch, "patch"); err != nil {
			return dst, err
		}
		if len(target) > 0 {
			if err := checkCompact(target, "target"); err != nil {
				return dst, err
			}
		}
		return append(dst, patch...), nil
	}
	m := getMerger()
	defer m.put()
	dst, err := m.mergeObject(dst, target, 0, patch, 0, 1)
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// MergeDiff appends to dst the RFC 7386 merge patch that turns from into to
// (both compact JSON; an empty from means none, as null). Objects are
// compared member by member, recursively: a member only in from becomes
// null, a member whose value changed becomes its new value (or, when both
// are objects, their diff), a member with the same bytes in both is left
// out. When either side is not an object the patch is to itself.
//
// Values count as equal when their compact bytes are: a number or string
// spelled anew (1 → 1.0, "é" → "\u00e9") is a change, so applying the patch
// reproduces to's spelling. Members come in to's order, then the removed
// ones in from's order.
//
// exact reports whether MergePatch(from, patch) gives to (as a JSON reader
// sees it). RFC 7386 cannot express a member whose value is null, since a
// null in a patch deletes: when to holds one that the patch would have to
// carry, the patch says null for it (deleting it), and exact is false, so
// that a caller can answer to in full instead. Errors are as MergePatch's,
// and so is the rule on dst.
func MergeDiff(dst, from, to []byte) (patch []byte, exact bool, err error) {
	start := len(dst)
	m := getMerger()
	defer m.put()
	if len(to) == 0 || to[0] != '{' || len(from) == 0 || from[0] != '{' {
		if len(from) > 0 {
			if err := checkCompact(from, "from"); err != nil {
				return dst, false, err
			}
		}
		if err := checkCompact(to, "to"); err != nil {
			return dst, false, err
		}
		exact = true
		if to[0] == '{' {
			hasNull, err := m.hasNull(to, 0, 1)
			if err != nil {
				return dst, false, errIn(err, "to")
			}
			exact = !hasNull
		}
		return append(dst, to...), exact, nil
	}
	dst, exact, err = m.diffObject(dst, from, 0, to, 0, 1)
	if err != nil {
		return dst[:start], false, err
	}
	return dst, exact, nil
}

// checkCompact checks that src is exactly one compact JSON value; what
// names it in the error.
func checkCompact(src []byte, what string) error {
	s := scanner{src: src}
	if err := s.value(0); err != nil {
		return errIn(err, what)
	}
	if s.mark != 0 {
		return errIn(s.errAt(s.mark, msgNotCompact), what)
	}
	if s.i < len(src) {
		return errIn(s.errUnexpected(s.i, "after top-level value"), what)
	}
	return nil
}

// msgNotCompact reports whitespace where merge patches expect the compact
// JSON that strata stores.
const msgNotCompact = "whitespace in JSON that must be compact"

// errIn prefixes a *SyntaxError's message with the name of the input it is
// about.
func errIn(err error, what string) error {
	if se, ok := err.(*SyntaxError); ok {
		return &SyntaxError{Offset: se.Offset, Msg: what + ": " + se.Msg}
	}
	return err
}

// merger holds the scratch of one MergePatch or MergeDiff call. fields is
// a stack: each object being merged pushes its members and pops them when
// done, so a call allocates little beyond its result. tab is the same for
// the hash tables of objects with many members. na and nb hold decoded
// names, for the rare name written with escapes.
type merger struct {
	fields []field
	tab    []int32
	na, nb []byte
}

// mergers recycles the scratch of MergePatch and MergeDiff: an entity's
// state is reduced by one call per event, and a merger on the stack would
// not stay there (its slices are grown through a pointer).
var mergers = sync.Pool{New: func() any { return new(merger) }}

func getMerger() *merger { return mergers.Get().(*merger) }

// put returns m to the pool, unless it grew large, without keeping the
// caller's inputs reachable through it.
func (m *merger) put() {
	if cap(m.fields) > 1024 || cap(m.tab) > 1<<14 {
		return
	}
	clear(m.fields[:cap(m.fields)])
	m.fields, m.tab = m.fields[:0], m.tab[:0]
	mergers.Put(m)
}

// field is one member of an object being merged or compared; small,
// since every member of every object reached is one.
type field struct {
	key     []byte // the name as written, quotes and escapes included
	val     []byte // the value, compact
	voff    int32  // offset of val in the caller's input, for errors
	escaped bool   // key holds an escape: compare it decoded
	dead    bool   // shadowed: a later member has the same name (see dedupe)
	// ref is the absolute index in merger.fields of the member of the
	// same name on the other side (patch or target, from or to), or -1.
	// For a patch member, ref is the first target member of its name and
	// last the last one.
	ref, last int32
}

// name returns f's decoded name; it may use buf.
func (f *field) name(buf *[]byte) []byte {
	raw := f.key[1 : len(f.key)-1]
	if !f.escaped {
		return raw
	}
	// str has checked the escapes, so unescape cannot fail.
	*buf, _ = unescape((*buf)[:0], raw)
	return *buf
}

// same reports whether fields i and j have the same decoded name.
func (m *merger) same(i, j int) bool {
	a, b := &m.fields[i], &m.fields[j]
	if !a.escaped && !b.escaped {
		return string(a.key) == string(b.key)
	}
	return string(a.name(&m.na)) == string(b.name(&m.nb))
}

// hash returns the hash of field i's decoded name.
func (m *merger) hash(i int) uint64 {
	return hashName(m.fields[i].name(&m.na))
}

// fieldsOf pushes the members of obj, a compact object that ends exactly
// at len(obj), at nesting level depth (1 for a top-level object), checking
// everything in it. base is obj's offset in the caller's input.
func (m *merger) fieldsOf(obj []byte, base int32, depth int) error {
	s := scanner{src: obj, base: int(base)}
	if depth > MaxDepth {
		return s.errAt(0, "exceeded max depth")
	}
	s.i = 1
	if len(obj) > 1 && obj[1] == '}' {
		s.i = 2
	} else {
		for {
			begin := s.i
			if s.i >= len(obj) || obj[s.i] != '"' {
				return s.errUnexpected(s.i, "looking for beginning of object key string")
			}
			escaped, err := s.str()
			if err != nil {
				return err
			}
			key := obj[begin:s.i]
			if s.i >= len(obj) || obj[s.i] != ':' {
				return s.errUnexpected(s.i, "after object key")
			}
			s.i++
			v := s.i
			s.mark = v
			if err := s.value(depth); err != nil {
				return err
			}
			if s.mark != v {
				return s.errAt(s.mark, msgNotCompact)
			}
			m.fields = append(m.fields, field{key: key, val: obj[v:s.i], voff: base + int32(v), escaped: escaped, ref: -1, last: -1})
			if s.i >= len(obj) {
				return s.errAt(s.i, "unexpected end of JSON input")
			}
			if obj[s.i] == '}' {
				s.i++
				break
			}
			if obj[s.i] != ',' {
				return s.errUnexpected(s.i, "after object key:value pair")
			}
			s.i++
		}
	}
	if s.i < len(obj) {
		return s.errUnexpected(s.i, "after top-level value")
	}
	return nil
}

// linearMax is the most members looked up by comparing names one by one;
// past it a hash table is cheaper.
const linearMax = 8

// index is a lookup by name among fields[lo:hi]: a hash table in
// merger.tab[at:at+size], or none (size 0) for few members.
type index struct {
	lo, hi   int
	at, size int
}

// dedupe builds the index of fields[lo:hi] and collapses duplicate names:
// the first member of a name takes the value of the last, the others are
// marked dead. The table stays on merger.tab until the caller truncates it.
func (m *merger) dedupe(lo, hi int) index {
	ix := index{lo: lo, hi: hi, at: len(m.tab)}
	n := hi - lo
	if n <= linearMax {
		for j := lo + 1; j < hi; j++ {
			for i := lo; i < j; i++ {
				if !m.fields[i].dead && m.same(i, j) {
					m.shadow(i, j)
					break
				}
			}
		}
		return ix
	}
	ix.size = 16
	for ix.size < 2*n {
		ix.size *= 2
	}
	for range ix.size {
		m.tab = append(m.tab, -1)
	}
	tab := m.tab[ix.at:]
	for j := lo; j < hi; j++ {
		h := m.hash(j) & uint64(ix.size-1)
		for {
			i := tab[h]
			if i < 0 {
				tab[h] = int32(j - lo)
				break
			}
			if m.same(lo+int(i), j) {
				m.shadow(lo+int(i), j)
				break
			}
			h = (h + 1) & uint64(ix.size-1)
		}
	}
	return ix
}

// shadow gives member i the value of the later member j of the same name.
func (m *merger) shadow(i, j int) {
	m.fields[i].val, m.fields[i].voff = m.fields[j].val, m.fields[j].voff
	m.fields[j].dead = true
}

// find returns the absolute index of the live member in ix with the name
// of field j, or -1.
func (m *merger) find(ix index, j int) int32 {
	if ix.size == 0 {
		for i := ix.lo; i < ix.hi; i++ {
			if !m.fields[i].dead && m.same(i, j) {
				return int32(i)
			}
		}
		return -1
	}
	tab := m.tab[ix.at : ix.at+ix.size]
	for h := m.hash(j) & uint64(ix.size-1); ; h = (h + 1) & uint64(ix.size-1) {
		i := tab[h]
		if i < 0 {
			return -1
		}
		if m.same(ix.lo+int(i), j) {
			return int32(ix.lo) + i
		}
	}
}

// nameSeed keys the hash of member names per process: names are client
// data, and with a fixed hash a client could send thousands of names that
// collide and make every read of the state quadratic.
var nameSeed = maphash.MakeSeed()

func hashName(b []byte) uint64 { return maphash.Bytes(nameSeed, b) }

// isNull reports whether a compact value is null.
func isNull(v []byte) bool { return len(v) == 4 && v[0] == 'n' }

// member appends "key":, after a comma unless it is the first member of
// the object that starts at open (the index of its '{').
func member(dst []byte, open int, key []byte) []byte {
	if len(dst) > open+1 {
		dst = append(dst, ',')
	}
	dst = append(dst, key...)
	return append(dst, ':')
}

// mergeObject appends the result of applying patch, an object at nesting
// level depth, to tgt, an object or nil for none. tbase and pbase are their
// offsets in the caller's inputs. Recursion follows the patch's objects, so
// it is at most MaxDepth deep.
func (m *merger) mergeObject(dst, tgt []byte, tbase int32, patch []byte, pbase int32, depth int) ([]byte, error) {
	pLo := len(m.fields)
	defer func() { m.fields = m.fields[:pLo] }()
	if err := m.fieldsOf(patch, pbase, depth); err != nil {
		return dst, errIn(err, "patch")
	}
	pHi := len(m.fields)
	ix := m.dedupe(pLo, pHi)
	if tgt != nil {
		if err := m.fieldsOf(tgt, tbase, depth); err != nil {
			return dst, errIn(err, "target")
		}
	}
	tHi := len(m.fields)
	for i := pHi; i < tHi; i++ {
		p := m.find(ix, i)
		m.fields[i].ref = p
		if p >= 0 {
			if m.fields[p].ref < 0 {
				m.fields[p].ref = int32(i)
			}
			m.fields[p].last = int32(i)
		}
	}
	m.tab = m.tab[:ix.at]

	open := len(dst)
	dst = append(dst, '{')
	var err error
	for i := pHi; i < tHi; i++ {
		t := m.fields[i]
		if t.ref < 0 {
			dst = member(dst, open, t.key)
			dst = append(dst, t.val...)
			continue
		}
		p := m.fields[t.ref]
		if int(p.ref) != i || isNull(p.val) {
			continue // deleted, or a duplicate name merged at its first place
		}
		dst = member(dst, open, t.key)
		if p.val[0] != '{' {
			dst = append(dst, p.val...)
			continue
		}
		last := m.fields[p.last]
		var tv []byte
		if last.val[0] == '{' {
			tv = last.val
		}
		if dst, err = m.mergeObject(dst, tv, last.voff, p.val, p.voff, depth+1); err != nil {
			return dst, err
		}
	}
	for j := pLo; j < pHi; j++ {
		p := m.fields[j]
		if p.dead || p.ref >= 0 || isNull(p.val) {
			continue
		}
		dst = member(dst, open, p.key)
		if p.val[0] != '{' {
			dst = append(dst, p.val...)
			continue
		}
		// Merged into nothing: the nulls inside come out.
		if dst, err = m.mergeObject(dst, nil, 0, p.val, p.voff, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// diffObject appends the merge patch from object from to object to, both
// at nesting level depth, and whether it is exact (see MergeDiff).
func (m *merger) diffObject(dst, from []byte, fbase int32, to []byte, tbase int32, depth int) ([]byte, bool, error) {
	fLo := len(m.fields)
	defer func() { m.fields = m.fields[:fLo] }()
	if err := m.fieldsOf(from, fbase, depth); err != nil {
		return dst, false, errIn(err, "from")
	}
	tLo := len(m.fields)
	if err := m.fieldsOf(to, tbase, depth); err != nil {
		return dst, false, errIn(err, "to")
	}
	tHi := len(m.fields)
	fix := m.dedupe(fLo, tLo)
	tix := m.dedupe(tLo, tHi)
	for i := fLo; i < tHi; i++ {
		if m.fields[i].dead {
			continue
		}
		other := tix
		if i >= tLo {
			other = fix
		}
		m.fields[i].ref = m.find(other, i)
	}
	m.tab = m.tab[:fix.at]

	exact := true
	open := len(dst)
	dst = append(dst, '{')
	for i := tLo; i < tHi; i++ {
		t := m.fields[i]
		if t.dead {
			continue
		}
		var fv []byte
		if t.ref >= 0 {
			fv = m.fields[t.ref].val
			if string(fv) == string(t.val) {
				continue
			}
		}
		mark := len(dst)
		dst = member(dst, open, t.key)
		switch {
		case isNull(t.val):
			// Added or set to null: a patch can only say null, which
			// deletes.
			exact = false
			dst = append(dst, t.val...)
		case t.val[0] == '{' && len(fv) > 0 && fv[0] == '{':
			var ex bool
			var err error
			body := len(dst)
			if dst, ex, err = m.diffObject(dst, fv, m.fields[t.ref].voff, t.val, t.voff, depth+1); err != nil {
				return dst, false, err
			}
			exact = exact && ex
			if len(dst) == body+2 { // {}: the same members, respelled or reordered only
				dst = dst[:mark]
			}
		case t.val[0] == '{':
			// Applied to a non-object, this is merged into nothing, which
			// drops the nulls inside.
			hasNull, err := m.hasNull(t.val, t.voff, depth+1)
			if err != nil {
				return dst, false, errIn(err, "to")
			}
			exact = exact && !hasNull
			dst = append(dst, t.val...)
		default:
			dst = append(dst, t.val...)
		}
	}
	for i := fLo; i < tLo; i++ {
		f := m.fields[i]
		if f.dead || f.ref >= 0 {
			continue
		}
		dst = member(dst, open, f.key)
		dst = append(dst, "null"...)
	}
	return append(dst, '}'), exact, nil
}

// hasNull reports whether merging the object obj into nothing would drop
// a null: whether a member of it, or of an object member of it and so on,
// is null once duplicate names are collapsed. Arrays are values, not
// looked into.
func (m *merger) hasNull(obj []byte, base int32, depth int) (bool, error) {
	lo := len(m.fields)
	defer func() { m.fields = m.fields[:lo] }()
	if err := m.fieldsOf(obj, base, depth); err != nil {
		return false, err
	}
	hi := len(m.fields)
	ix := m.dedupe(lo, hi)
	m.tab = m.tab[:ix.at]
	for i := lo; i < hi; i++ {
		f := m.fields[i]
		if f.dead {
			continue
		}
		if isNull(f.val) {
			return true, nil
		}
		if f.val[0] == '{' {
			if has, err := m.hasNull(f.val, f.voff, depth+1); has || err != nil {
				return has, err
			}
		}
	}
	return false, nil
}
