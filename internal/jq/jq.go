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
// every 1024 instructions, and at once after a builtin built a value of
// 64 KB or more, gojq calls back here to compare the clock with the run's
// start, to look at the context (checked here rather than by gojq before
// every instruction, which cost a reducer-sized program a fifth of its
// time: BenchmarkRunSmall), and, every millisecond or after such a value,
// to read the heap (runtime.ReadMemStats, about 10 µs; runtime/metrics
// would be cheaper to read but its package init costs every process
// 0.1 ms) and compare it with the heap at the first check. The time before the first check (1024
// instructions, microseconds) is not counted, which keeps the clock, the
// context and the heap off the fast path: a reducer of a few instructions
// pays none of them. The time limit counts from the run's own start
// (waiting for memMu, below, not included), whatever its caller's
// deadline; a context that ends stops a run with the context's error, not
// a *LimitError: a caller out of time (a read's budget) is not the
// program's fault.
//
// The memory limit and other work: the heap is the process's, so what
// other goroutines allocate during a run counts as the run's growth, and
// garbage counts until collected. So a run is stopped only with good
// confidence that it is to blame: first, its heap must still be past the
// limit after runtime.GC; then the run is tried again alone — after
// another collection, holding memMu, which every run takes (shared) for
// its checked phase, so no other program runs its long part meanwhile —
// and only a second trip is a *LimitError. A run that another request's
// 100 MB body tripped thus passes on its second try; a hostile one is
// stopped twice, costing twice its limits. Programs are pure functions of
// their input and variables, so running one again gives the same answer.
// What stays: work outside jq that allocates and keeps 64 MB during the
// second try itself can still trip it.
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

// memMu keeps a run tried again for its memory (see the package doc)
// alone: every other run holds it shared from its first check (the start
// of its checked phase) to its end, and the retry holds it. A run of a few
// instructions never checks, so never takes it.
var memMu sync.RWMutex

// run is the state of one Run, pooled: its Check is bound once.
type run struct {
	p        *Program
	lim      gojq.Limits
	ctx      context.Context
	alone    bool  // the retry: holds memMu
	shared   bool  // holds memMu shared
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

func (p *Program) getRun(ctx context.Context, alone bool) *run {
	r, ok := p.runs.Get().(*run)
	if !ok {
		r = &run{p: p}
		r.lim = gojq.Limits{Depth: p.limits.Depth, Check: r.check}
	}
	r.ctx, r.alone, r.checked = ctx, alone, false
	return r
}

// done ends r's checked phase.
func (r *run) done() {
	if r.shared {
		memMu.RUnlock()
		r.shared = false
	}
	r.ctx = nil
}

func (r *run) heapNow(now int64) uint64 {
	runtime.ReadMemStats(&r.mem)
	r.heapRead = now
	return r.mem.HeapAlloc
}

// check is called by gojq every 1024 instructions and after big values.
// The time limit comes first: a run both past it and out of its caller's
// time ran too long whatever its caller's deadline.
func (r *run) check(big bool) error {
	l := &r.p.limits
	if !r.checked {
		if l.Memory > 0 && !r.alone {
			memMu.RLock() // before the clock starts: waiting is not the run's time
			r.shared = true
		}
		now := time.Now().UnixNano()
		r.checked, r.start = true, now
		if l.Memory > 0 {
			r.heap = r.heapNow(now)
		}
		return r.ctx.Err()
	}
	now := time.Now().UnixNano()
	if l.Time > 0 {
		if d := time.Duration(now - r.start); d > l.Time {
			return &LimitError{"time", "ran longer than " + l.Time.String()}
		}
	}
	if err := r.ctx.Err(); err != nil {
		return err
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
// ctx is looked at with the limits (every 1024 instructions): a run of a
// few instructions ends whatever ctx does. A run past its memory limit is
// tried again alone (see the package doc) before the limit is declared.
func (p *Program) Run(ctx context.Context, input any, vars ...any) (any, error) {
	if len(vars) != len(p.vars) {
		return nil, fmt.Errorf("jq: %d variable values for %d variables", len(vars), len(p.vars))
	}
	v, err := p.run(ctx, false, input, vars)
	if le, ok := err.(*LimitError); ok && le.Limit == "memory" && ctx.Err() == nil {
		memMu.Lock()
		runtime.GC()
		v, err = p.run(ctx, true, input, vars)
		memMu.Unlock()
	}
	return v, err
}

// run is one try of Run. gojq gets no context (it would look at it before
// every instruction): check looks at ctx.
func (p *Program) run(ctx context.Context, alone bool, input any, vars []any) (v any, err error) {
	r := p.getRun(ctx, alone)
	defer func() {
		r.done()
		if x := recover(); x != nil {
			v, err = nil, panicError(x)
			return // the run's state is unknown: not pooled
		}
		p.runs.Put(r)
	}()
	out, ok := p.code.RunFirst(context.Background(), &r.lim, input, vars...)
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
