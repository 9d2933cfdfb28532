// Package jq runs user-defined jq programs (gojq) on JSON values, for the
// custom and state projections and for filters, so that no program can
// hurt the process that runs it.
//
// What it promises:
//
//   - Compile errors carry jq's own message ("unexpected token ...",
//     "function not defined: foo/1"), fit to show a client in a 400.
//   - A program sees only its input and its variables: $ENV and env are
//     empty objects, input, inputs and modules (import, include) do not
//     compile, and nothing reads a file, the clock aside (now).
//   - A run is bounded (Limits): wall time, heap growth, nesting of calls,
//     and the size of one value one builtin call may build (a string of
//     16 MB, an array of 2M elements: gojq.MaxStringLen, MaxArrayLen). Past
//     a limit the run stops with a *LimitError naming it, which no try in
//     the program can catch; the process and every other run go on. A
//     panic inside gojq is an error too, never a crash.
//   - Numbers: Decode keeps an integer exact (int, or *big.Int past int64),
//     anything with a fraction or exponent is a float64, and gojq's
//     arithmetic keeps integers exact where it can; Encode writes jq's
//     JSON (object members sorted, NaN as null, infinities as ±1.797…e308).
//
// How the limits work (a patched gojq, third_party/gojq/STRATA-PATCH.md):
// gojq checks the context before every instruction; every 1024
// instructions, and at once after a builtin built a value of 64 KB or
// more, it calls back here to compare the clock with the run's start and,
// every millisecond or after such a value, the heap (runtime.ReadMemStats,
// about 10 µs; runtime/metrics would be cheaper to read but its package
// init costs every process 0.1 ms) with the heap at the first check. The
// heap is the process's, so two runs at once count each other's growth,
// and garbage counts until a forced collection shows what is live: a run
// is stopped only if the heap is still past the limit after runtime.GC.
// The time before the first check (1024 instructions, microseconds) is
// not counted, which keeps the clock and the heap off the fast path: a
// reducer of a few instructions pays neither.
package jq

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/itchyny/gojq"
)

// Limits bound one Run. A zero field sets no bound.
type Limits struct {
	// Time is the wall time of one run.
	Time time.Duration
	// Memory is how far the heap may grow during one run, in bytes.
	Memory int64
	// Depth is how deeply calls may nest (a recursive def).
	Depth int
}

// DefaultLimits are safe for a shared host: a second, 64 MB, 10,000
// nested calls.
var DefaultLimits = Limits{Time: time.Second, Memory: 64 << 20, Depth: 10000}

// MaxSource bounds a program's text: the parser and compiler recurse on its
// nesting, and a longer program is no reducer.
const MaxSource = 64 << 10

// LimitError says that a run went past one of its limits.
type LimitError struct {
	// Limit is "time", "memory", "depth" or "size" (one value built by
	// one builtin call).
	Limit  string
	Detail string
}

func (e *LimitError) Error() string {
	return "jq program stopped: past its " + e.Limit + " limit (" + e.Detail + ")"
}

// RuntimeError is an error the program raised or ran into (error/1, a type
// error, halt_error); Msg is jq's message.
type RuntimeError struct{ Msg string }

func (e *RuntimeError) Error() string { return e.Msg }

// CompileError is a program that does not parse or compile; Msg is jq's
// message.
type CompileError struct{ Msg string }

func (e *CompileError) Error() string { return e.Msg }

// ErrNoValue: the program produced no value (empty) where one is needed.
var ErrNoValue = errors.New("jq program produced no value")

// Program is a compiled program. It is safe for concurrent use.
type Program struct {
	code   *gojq.Code
	vars   []string
	limits Limits
	runs   sync.Pool // of *run
}

// Compile compiles src with the named variables (with or without their $),
// whose values each Run passes in the same order. It uses DefaultLimits.
func Compile(src string, vars ...string) (*Program, error) {
	if len(src) > MaxSource {
		return nil, &CompileError{fmt.Sprintf("program is longer than %d bytes", MaxSource)}
	}
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, compileError(src, err)
	}
	names := make([]string, len(vars))
	for i, v := range vars {
		names[i] = "$" + strings.TrimPrefix(v, "$")
	}
	code, err := gojq.Compile(q, gojq.WithVariables(names))
	if err != nil {
		return nil, compileError(src, err)
	}
	return &Program{code: code, vars: names, limits: DefaultLimits}, nil
}

// compileError words a parse or compile error as jq does, with the place
// of a parse error.
func compileError(src string, err error) error {
	var pe *gojq.ParseError
	if errors.As(err, &pe) {
		line, col := 1, 1
		at := max(min(pe.Offset-len(pe.Token), len(src)), 0) // the token's start
		for _, c := range src[:at] {
			if c == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		return &CompileError{fmt.Sprintf("%s at line %d, column %d", pe.Error(), line, col)}
	}
	return &CompileError{err.Error()}
}

// WithLimits returns a copy of p that runs with l.
func (p *Program) WithLimits(l Limits) *Program {
	return &Program{code: p.code, vars: p.vars, limits: l}
}

// Limits returns the limits p runs with.
func (p *Program) Limits() Limits { return p.limits }

// run is the state of one Run, pooled: its Check is bound once.
type run struct {
	p        *Program
	lim      gojq.Limits
	checked  bool  // the first check ran: start and heap are set
	start    int64 // time at the first check, ns
	heap     uint64
	heapRead int64 // when the heap was last read, ns
	mem      runtime.MemStats
}

// heapEvery is how often a long run reads the heap (runtime.ReadMemStats
// stops the world for about 10 µs): about 1% of its time. A big value
// (gojq's bigValue, 64 KB) has it read at once.
const heapEvery = time.Millisecond

func (p *Program) getRun() *run {
	if r, ok := p.runs.Get().(*run); ok {
		r.checked = false
		return r
	}
	r := &run{p: p}
	r.lim = gojq.Limits{Depth: p.limits.Depth, Check: r.check}
	return r
}

func (r *run) heapNow(now int64) uint64 {
	runtime.ReadMemStats(&r.mem)
	r.heapRead = now
	return r.mem.HeapAlloc
}

// check is called by gojq every 1024 instructions and after big values.
func (r *run) check(big bool) error {
	l := &r.p.limits
	now := time.Now().UnixNano()
	if !r.checked {
		r.checked, r.start = true, now
		if l.Memory > 0 {
			r.heap = r.heapNow(now)
		}
		return nil
	}
	if l.Time > 0 {
		if d := time.Duration(now - r.start); d > l.Time {
			return &LimitError{"time", "ran longer than " + l.Time.String()}
		}
	}
	if l.Memory > 0 && (big || now-r.heapRead >= int64(heapEvery)) {
		limit := r.heap + uint64(l.Memory)
		if r.heapNow(now) > limit {
			// Garbage counts until collected: stop only if what is
			// live is past the limit.
			runtime.GC()
			if h := r.heapNow(now); h > limit {
				return &LimitError{"memory", fmt.Sprintf("heap grew by %d MB, more than %d MB", (h-r.heap)>>20, l.Memory>>20)}
			}
		}
	}
	return nil
}

// Run runs the program on input with the variables' values (in Compile's
// order) and returns its first output; ErrNoValue if it has none. The
// error is a *LimitError, a *RuntimeError, ctx's error, or ErrNoValue.
func (p *Program) Run(ctx context.Context, input any, vars ...any) (v any, err error) {
	if len(vars) != len(p.vars) {
		return nil, fmt.Errorf("jq: %d variable values for %d variables", len(vars), len(p.vars))
	}
	r := p.getRun()
	defer func() {
		if x := recover(); x != nil {
			v, err = nil, panicError(x)
			return // the run's state is unknown: not pooled
		}
		p.runs.Put(r)
	}()
	out, ok := p.code.RunFirst(ctx, &r.lim, input, vars...)
	if !ok {
		return nil, ErrNoValue
	}
	if e, ok := out.(error); ok {
		return nil, runError(ctx, e)
	}
	return out, nil
}

// Bool runs the program as a condition: true if its first output is
// neither false nor null; no output is false.
func (p *Program) Bool(ctx context.Context, input any, vars ...any) (bool, error) {
	v, err := p.Run(ctx, input, vars...)
	if err == ErrNoValue {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return v != nil && v != false, nil
}

// runError turns an error value from gojq into this package's errors.
func runError(ctx context.Context, e error) error {
	var le *gojq.LimitError
	switch {
	case errors.As(e, &le):
		return &LimitError{le.Limit, le.Msg}
	case isLimit(e):
		return e
	case ctx.Err() != nil && errors.Is(e, ctx.Err()):
		return e
	}
	var ve gojq.ValueError
	if errors.As(e, &ve) {
		if s, ok := ve.Value().(string); ok {
			return &RuntimeError{s} // error("text"): the text, as jq prints it
		}
	}
	return &RuntimeError{e.Error()}
}

func isLimit(e error) bool {
	var le *LimitError
	return errors.As(e, &le)
}

// panicError turns a panic inside gojq into an error: a value too large
// is a *LimitError; anything else (a gojq bug) a *RuntimeError, so that a
// program cannot crash the process.
func panicError(x any) error {
	if le, ok := x.(*gojq.LimitError); ok {
		return &LimitError{le.Limit, le.Msg}
	}
	return &RuntimeError{fmt.Sprintf("jq: internal error: %v", x)}
}
