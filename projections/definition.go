package projections

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"strata/query"
)

// Definition is a projection's definition, as a client writes it and as it
// is stored (data of a strata.projection.defined event). Which fields a
// kind reads is the kind's business (its validate function); a field a kind
// does not read is refused, so a typo does not pass silently.
type Definition struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// By is what a counter counts per: "type", "entity" or a bucket.
	By string `json:"by,omitempty"`
	// Path is a data path (".amount", ".a.b") for timeseries.
	Path string `json:"path,omitempty"`
	// Op is a timeseries aggregate: count, sum, avg, min or max.
	Op string `json:"op,omitempty"`
	// Bucket is minute, hour, day, week (ISO, from Monday) or month, UTC.
	Bucket string `json:"bucket,omitempty"`
	// Steps and Window make a funnel.
	Steps  []string `json:"steps,omitempty"`
	Window string   `json:"window,omitempty"`
	// Init, Reduce and Key make a jq reducer (kinds custom and state).
	Init   json.RawMessage `json:"init,omitempty"`
	Reduce string          `json:"reduce,omitempty"`
	Key    string          `json:"key,omitempty"`
	// Entity is the entity glob of a state kind ("orders/*").
	Entity string `json:"entity,omitempty"`
	Filter Filter `json:"filter,omitzero"`
	// Narrow is the narrowing of the latest rebuild of this definition
	// version (its TypeRebuilt record, see ReadDef), nil for none. It is
	// not part of the definition as stored or compared (a rebuild does
	// not make a new version) but it is part of what the result folds:
	// it goes into the cache's digest, so a result of another narrowing
	// is never used, and a deleted cache is folded again with it.
	Narrow *RebuildOptions `json:"-"`
}

// Filter selects the events a projection sees. Types are exact types or
// globs ("order.*"); Entity is an exact entity or a glob ("orders/*"; as in
// GET /events, * does not cross a "/"). Empty means any. Events of the
// reserved strata.* types are seen only when a type pattern names them
// (starts with "strata.").
type Filter struct {
	Types  []string `json:"types,omitempty"`
	Entity string   `json:"entity,omitempty"`
}

// FieldError says which field of a definition is wrong and why.
type FieldError struct {
	Field string // "name", "filter.types[1]", …
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("definition field %s: %s", e.Field, e.Msg) }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// MaxNameLen bounds a projection's name (it is part of a path and of an
// entity name).
const MaxNameLen = 64

// ValidName reports whether s is a projection name: lowercase letters and
// digits, words joined by single '.', '_' or '-' (the event type rule) —
// safe in a URL path, a file name and the entity strata/projections/<name>.
func ValidName(s string) bool { return len(s) <= MaxNameLen && isWords(s) }

// isWords reports whether s is ^[a-z0-9]+([._-][a-z0-9]+)*$, an event
// type's shape. (Hand-written: a regexp compiled at init would cost every
// CGI request its start-up.)
func isWords(s string) bool {
	if s == "" {
		return false
	}
	sep := true // the last byte was a separator (or the start)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			sep = false
		case c == '.' || c == '_' || c == '-':
			if sep {
				return false
			}
			sep = true
		default:
			return false
		}
	}
	return !sep
}

// isTypePattern reports whether s is made of the characters of event types
// and glob syntax.
func isTypePattern(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._-*?[]", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// ParseDefinition decodes and checks a definition. A bad field is a
// *FieldError naming it.
func ParseDefinition(body []byte) (*Definition, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var d Definition
	if err := dec.Decode(&d); err != nil {
		return nil, DecodeError(err)
	}
	if dec.More() {
		return nil, fieldErr("body", "must be one JSON object")
	}
	if err := d.Check(); err != nil {
		return nil, err
	}
	return &d, nil
}

// DecodeError turns a JSON decoding error of a definition (projections',
// consumers') into a FieldError naming the field.
func DecodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "body"
		}
		return fieldErr(field, "must be %s", jsonKind(te.Type.Kind().String()))
	}
	if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ := strconv.Unquote(rest)
		return fieldErr(name, "is not a definition field")
	}
	return fieldErr("body", "must be a JSON object (%v)", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct":
		return "an object"
	}
	return "of another JSON type"
}

// Check validates d: its name, kind, filter, and then the kind's own fields.
func (d *Definition) Check() error {
	switch {
	case d.Name == "":
		return fieldErr("name", "is required")
	case len(d.Name) > MaxNameLen:
		return fieldErr("name", "is longer than %d bytes", MaxNameLen)
	case !isWords(d.Name):
		return fieldErr("name", "must be lowercase letters and digits joined by single '.', '_' or '-'")
	case d.Kind == "":
		return fieldErr("kind", "is required")
	}
	k, ok := kinds[d.Kind]
	if !ok {
		return fieldErr("kind", "must be one of %s", strings.Join(KindNames(), ", "))
	}
	if err := d.Filter.Check(); err != nil {
		return err
	}
	if k.validate != nil {
		return k.validate(d)
	}
	return nil
}

// Check validates f; a bad pattern is a *FieldError naming it
// ("filter.types[1]", "filter.entity").
func (f *Filter) Check() error {
	for i, t := range f.Types {
		field := fmt.Sprintf("filter.types[%d]", i)
		if t == "" || len(t) > 128 || !isTypePattern(t) || !query.ValidPattern(t) {
			return fieldErr(field, "must be an event type or a glob such as \"order.*\"")
		}
	}
	if f.Entity != "" && (len(f.Entity) > 256 || !query.ValidPattern(f.Entity)) {
		return fieldErr("filter.entity", "must be an entity or a glob such as \"orders/*\"")
	}
	return nil
}

// Only refuses every kind-specific field of d that is set and not among
// allowed (JSON names: "by", "path", "op", "bucket", "steps", "window",
// "init", "reduce", "key", "entity"). Kinds call it from validate.
func (d *Definition) Only(allowed ...string) error {
	set := map[string]bool{
		"by": d.By != "", "path": d.Path != "", "op": d.Op != "", "bucket": d.Bucket != "",
		"steps": d.Steps != nil, "window": d.Window != "", "init": d.Init != nil,
		"reduce": d.Reduce != "", "key": d.Key != "", "entity": d.Entity != "",
	}
	for _, a := range allowed {
		delete(set, a)
	}
	for _, f := range []string{"by", "path", "op", "bucket", "steps", "window", "init", "reduce", "key", "entity"} {
		if set[f] {
			return fieldErr(f, "is not used by kind %s", d.Kind)
		}
	}
	return nil
}

// ParseWindow parses a funnel window: a Go duration ("36h", "90m") or a
// whole number of days or weeks ("7d", "2w"). It must be positive.
func ParseWindow(s string) (time.Duration, error) {
	var unit time.Duration
	switch {
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		unit = 7 * 24 * time.Hour
	}
	if unit != 0 {
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 16)
		if err != nil || n == 0 {
			return 0, errors.New("must be a positive duration such as \"7d\", \"2w\" or \"36h\"")
		}
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errors.New("must be a positive duration such as \"7d\", \"2w\" or \"36h\"")
	}
	return d, nil
}
