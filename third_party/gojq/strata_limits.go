package gojq

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
)

// strata: limits that keep a hostile query from hurting the process that
// runs it. Upstream stops a run only through its context (checked before
// every instruction). A query can also recurse without end, grow its
// values past any memory, or build one huge value in a single builtin call
// (a string repeated 2^31 times, an array index of 2^29, tojson of a value
// that shares itself 2^40 times); the last kind kills the process before
// any periodic check could run. So:
//
//   - RunWithLimits runs code like RunWithContext and, every checkEvery
//     instructions, stops the run with a *LimitError when calls nest deeper
//     than Limits.Depth, or with the error of Limits.Check (the caller's
//     memory probe). Like a cancelled context, these end the run: try and
//     ?// cannot catch them.
//   - One builtin call may build at most MaxStringLen bytes of string,
//     MaxArrayLen array elements or a MaxIntBits integer; past that it
//     panics with a *LimitError
//     (the builtins have no error path deep in encoders and loops). The
//     caller of Next recovers it; Marshal returns it as its error.

// MaxStringLen and MaxArrayLen bound the string (bytes) and the array
// (elements) that one builtin call may build; MaxIntBits bounds the
// product of two big integers (squaring doubles the bits: 40 squarings
// would take hours in one call).
const (
	MaxStringLen = 16 << 20
	MaxArrayLen  = 2 << 20
	MaxIntBits   = 1 << 16
)

// checkEvery is how many instructions run between two checks of Limits.
// A builtin call that builds a value of bigValue bytes or elements or more
// has the next instruction check at once: without that, a loop building
// one 16 MB string per iteration could hold gigabytes before its 1024th
// instruction.
const (
	checkEvery = 1024
	bigValue   = 64 << 10
)

// bigValues counts the big values built by any run in the process; a run
// checks when it moved (a run elsewhere moving it only checks early).
var bigValues atomic.Uint64

// Limits bound one run of compiled code.
type Limits struct {
	// Depth bounds the nesting of function calls (0: no bound).
	Depth int
	// Check, if set, is called every checkEvery instructions and after a
	// big value (big is then true); an error ends the run with that
	// error.
	Check func(big bool) error
}

// LimitError says which limit a run went past: "depth", "size" (one
// value) or a limit named by the caller's Check.
type LimitError struct {
	Limit string
	Msg   string
}

func (e *LimitError) Error() string { return e.Msg }

// RunWithLimits runs the code with ctx and lim (see Limits).
func (c *Code) RunWithLimits(ctx context.Context, lim *Limits, v any, values ...any) Iter {
	if len(values) > len(c.variables) {
		return NewIter[any](&tooManyVariableValuesError{})
	} else if len(values) < len(c.variables) {
		return NewIter[any](&expectedVariableError{c.variables[len(values)]})
	}
	env := newEnv(ctx)
	env.limits, env.bigSeen = lim, bigValues.Load()
	return env.execute(c, v, values...)
}

// RunFirst is RunWithLimits for the first output only: it returns that
// output (false: none), and keeps the run's stacks for a later run, which
// spares a program of a few instructions most of its allocations (a
// projection runs one per event). Like Next, it may panic with a
// *LimitError; that run's memory is then not reused.
func (c *Code) RunFirst(ctx context.Context, lim *Limits, v any, values ...any) (any, bool) {
	if len(values) != len(c.variables) {
		return c.RunWithLimits(ctx, lim, v, values...).Next()
	}
	env, _ := envPool.Get().(*env)
	if env == nil {
		env = newEnv(ctx)
	}
	env.ctx, env.limits, env.bigSeen = ctx, lim, bigValues.Load()
	out, ok := env.execute(c, v, values...).Next()
	env.reset()
	envPool.Put(env)
	return out, ok
}

var envPool sync.Pool // of *env, reset

// reset makes e as newEnv made it, keeping its slices' memory and
// dropping the values it held.
func (e *env) reset() {
	resetStack(e.stack)
	resetStack(e.paths)
	resetStack(e.scopes)
	clear(e.values)
	clear(e.forks)
	// args is not cleared (a tenth of a small run's time): it holds the
	// last builtin call's arguments until the next run overwrites them or
	// the pool drops the env at a garbage collection.
	e.pc, e.codes, e.codeinfos, e.forks, e.backtrack = 0, nil, nil, e.forks[:0], false
	e.offset, e.expdepth, e.label, e.ctx, e.limits, e.steps = 0, 0, 0, nil, nil, 0
}

func resetStack[T any](s *stack[T]) {
	clear(s.data)
	s.data, s.index, s.limit = s.data[:0], -1, -1
}

func (env *env) checkLimits() error {
	big := false
	if n := bigValues.Load(); n != env.bigSeen {
		env.bigSeen, big = n, true
	}
	if env.steps++; env.steps%checkEvery != 0 && !big {
		return nil
	}
	if d := env.limits.Depth; d > 0 && env.scopes.index > d {
		return &LimitError{"depth", "calls nest deeper than " + strconv.Itoa(d)}
	}
	if env.limits.Check != nil {
		return env.limits.Check(big)
	}
	return nil
}

// checkStringLen and checkArrayLen panic with a *LimitError when one call
// would build a string of n bytes or an array of n elements past the bound.
func checkStringLen(n uint64) {
	if n >= bigValue {
		bigValues.Add(1)
	}
	capStringLen(n)
}

// capStringLen is checkStringLen for the encoder, which calls it for every
// value it writes: it only caps.
func capStringLen(n uint64) {
	if n > MaxStringLen {
		panic(&LimitError{"size", "string of " + strconv.FormatUint(n, 10) + " bytes is too large"})
	}
}

func checkArrayLen(n uint64) {
	if n >= bigValue {
		bigValues.Add(1)
	}
	if n > MaxArrayLen {
		panic(&LimitError{"size", "array of " + strconv.FormatUint(n, 10) + " elements is too large"})
	}
}

func checkIntBits(n uint64) {
	if n > MaxIntBits {
		panic(&LimitError{"size", "integer of " + strconv.FormatUint(n, 10) + " bits is too large"})
	}
}
