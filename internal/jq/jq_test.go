package jq

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/itchyny/gojq"
)

func mustCompile(t testing.TB, src string, vars ...string) *Program {
	t.Helper()
	p, err := Compile(src, vars...)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	return p
}

func mustDecode(t testing.TB, s string) any {
	t.Helper()
	v, err := Decode([]byte(s))
	if err != nil {
		t.Fatalf("Decode(%s): %v", s, err)
	}
	return v
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ src, in, state, want string }{
		{`.a`, `{"a":[1,2]}`, `0`, `[1,2]`},
		{`$state + $event.data.amount`, `null`, `10`, `22`},
		{`$state + $event.data.amount`, `null`, `12345678901234567890123`, `12345678901234567890135`},
		{`$state + 1`, `null`, `9223372036854775807`, `9223372036854775808`},
		{`$state * 1.5`, `null`, `2`, `3`},
		{`$state + {($event.entity): 1}`, `null`, `{}`, `{"orders/1":1}`},
		{`$event | keys`, `null`, `0`, `["data","entity"]`},
		{`$ENV, env`, `null`, `0`, `{}`},
		{`1, 2`, `null`, `0`, `1`},
		{`"é" * 3 | [match(".";"g").offset]`, `null`, `0`, `[0,1,2]`},
		{`"aébc" | [match("(b)(c)").captures[].offset]`, `null`, `0`, `[2,3]`},
	} {
		p := mustCompile(t, c.src, "$state", "event")
		ev := mustDecode(t, `{"entity":"orders/1","data":{"amount":12}}`)
		v, err := p.Run(ctx, mustDecode(t, c.in), mustDecode(t, c.state), ev)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		b, err := Encode(v)
		if err != nil || string(b) != c.want {
			t.Errorf("%s: %s, %v; want %s", c.src, b, err, c.want)
		}
	}
}

func TestBool(t *testing.T) {
	for src, want := range map[string]bool{`true`: true, `.a`: true, `.b`: false, `null`: false, `empty`: false, `0`: true, `false, true`: false} {
		got, err := mustCompile(t, src).Bool(context.Background(), mustDecode(t, `{"a":1}`))
		if err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", src, got, err, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for src, want := range map[string]string{
		`1 +`:                            "unexpected EOF at line 1, column 4",
		".a |\n }":                       `unexpected token "}" at line 2, column 2`,
		`foo(1)`:                         "function not defined: foo/1",
		`input`:                          "input(s)/0 is not allowed",
		`[inputs]`:                       "input(s)/0 is not allowed",
		`import "a" as a; 1`:             `cannot load module: "a"`,
		`include "a"; 1`:                 `cannot load module: "a"`,
		`debug`:                          "function not defined: debug/0",
		`input_filename`:                 "function not defined: input_filename/0",
		`$x`:                             "variable not defined: $x",
		strings.Repeat(" ", MaxSource+1): "program is longer than 65536 bytes",
	} {
		_, err := Compile(src)
		var ce *CompileError
		if !errors.As(err, &ce) || err.Error() != want {
			t.Errorf("Compile(%.20q) = %v; want %q", src, err, want)
		}
	}
}

func TestRuntimeErrors(t *testing.T) {
	for src, want := range map[string]string{
		`error("boom")`:          "boom",
		`error({a:1})`:           `error: {"a":1}`,
		`.[]`:                    "cannot iterate over: number (1)",
		`halt_error`:             "halt error: 1",
		`try error("x") catch .`: "",
	} {
		_, err := mustCompile(t, src).Run(context.Background(), 1)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", src, err)
			}
			continue
		}
		var re *RuntimeError
		if !errors.As(err, &re) || err.Error() != want {
			t.Errorf("%s: %v; want %q", src, err, want)
		}
	}
	if _, err := mustCompile(t, `empty`).Run(context.Background(), 1); err != ErrNoValue {
		t.Errorf("empty: %v", err)
	}
	if _, err := mustCompile(t, `.`, "a").Run(context.Background(), 1); err == nil {
		t.Error("a missing variable value is not an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := mustCompile(t, `last(range(1e9))`).Run(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestHostile runs each hostile program with tight limits: each is stopped
// with the right LimitError, quickly, and the next program runs fine.
func TestHostile(t *testing.T) {
	tight := Limits{Time: 300 * time.Millisecond, Memory: 16 << 20, Depth: 500}
	for _, c := range []struct{ name, src, limit string }{
		{"infinite loop", `def f: f; f`, "time"},
		{"infinite loop, caught", `def f: try f catch f; f`, "depth"},
		{"endless generator", `last(range(1e15))`, "time"},
		{"recursion into an array", `def f: [f]; f`, "depth"},
		{"recursion into a sum", `def f: 1 + f; f`, "depth"},
		{"recursion, caught", `def f: try (1 + f) catch 0; f`, "depth"},
		{"huge array", `[range(1e9)]`, "memory"},
		{"huge array of repeats", `[limit(1e9; repeat(1))]`, "memory"},
		{"many big strings", `[range(1e6) | "x" * 1000000 + tostring]`, "memory"},
		{"huge string at once", `"x" * 1e9`, "size"},
		{"huge string, caught", `try ("x" * 1e9) catch "caught"`, "size"},
		{"string doubling", `reduce range(64) as $i ("x"; . + .)`, "size"},
		{"array doubling", `reduce range(64) as $i ([1]; . + .)`, "size"},
		{"huge output", `[range(30)] as $x | reduce range(40) as $i ($x; [., .]) | tojson`, "size"},
		{"huge output of add", `["x" * 1000000] as $x | [range(1000) | $x[0]] | add`, "size"},
		{"huge join", `["x" * 1000000] as $x | [range(1000) | $x[0]] | join(",")`, "size"},
		{"huge @csv", `["x" * 1000000] as $x | [range(1000) | $x[0]] | @csv`, "size"},
		{"huge flatten", `reduce range(40) as $i ([1]; [., .]) | flatten`, "size"},
		{"huge index", `null | .[100000000] = 1`, "size"},
		{"huge explode", `"x" * 10000000 | explode`, "size"},
		{"huge split", `"x" * 10000000 | split("")`, "size"},
		{"many matches", `"x" * 1000000 | [match(".";"g")]`, "size"},
		{"integer squaring", `reduce range(40) as $i (12345678901234567890123; . * .)`, "size"},
	} {
		t.Run(c.name, func(t *testing.T) {
			lim := tight
			switch c.limit {
			case "memory": // slow generators: memory must stop them first
				lim.Time = time.Minute
			case "size": // a 2M-element array is 32 MB: the size must stop it first
				lim.Memory, lim.Time = 128<<20, time.Minute
			}
			p := mustCompile(t, c.src).WithLimits(lim)
			start := time.Now()
			_, err := p.Run(context.Background(), nil)
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != c.limit {
				t.Fatalf("err = %v; want a %s LimitError", err, c.limit)
			}
			if d := time.Since(start); d > 30*time.Second { // not a timing test: a stop that never came
				t.Errorf("stopped after %v", d)
			}
			// The next program runs fine.
			v, err := mustCompile(t, `[range(10)] | add`).Run(context.Background(), nil)
			if err != nil || v != 45 {
				t.Errorf("next program: %v, %v", v, err)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1,"b":[true,false,null],"c":"x\u00e9\n"}`: `{"a":1,"b":[true,false,null],"c":"xé\n"}`,
		` [ 1 , -2.5e3 , 0 , -0 ] `:                     `[1,-2500,0,0]`,
		`123456789012345678`:                            `123456789012345678`,
		`-9223372036854775808`:                          `-9223372036854775808`,
		`123456789012345678901234567890`:                `123456789012345678901234567890`,
		`1e999`:                                         `1.7976931348623157e+308`,
		`{"a":1,"a":2}`:                                 `{"a":2}`,
		`"\ud83d\ude00"`:                                `"😀"`,
		"\"\xff\"":                                      `"` + "\ufffd" + `"`,
	} {
		v, err := Decode([]byte(in))
		if err != nil {
			t.Errorf("Decode(%s): %v", in, err)
			continue
		}
		b, err := Encode(v)
		if err != nil || string(b) != want {
			t.Errorf("Decode(%s) encodes as %s, %v; want %s", in, b, err, want)
		}
	}
	if v, _ := Decode([]byte(`123456789012345678901234567890`)); func() bool { _, ok := v.(*big.Int); return !ok }() {
		t.Errorf("a big integer decodes as %T", v)
	}
	for _, in := range []string{``, ` `, `{`, `[1,]`, `{"a"}`, `{"a":1,}`, `01`, `1.`, `.5`, `-`, `1e`, `tru`, `nul`, `"abc`, "\"a\x01\"", `"\x"`, `1 2`, `[` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth+1)} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%.30q) is not an error", in)
		}
	}
}

// BenchmarkLimitsOverhead: a loop of many instructions run with the limits
// checked (every instruction counts, every 1024th checks the clock and
// the heap) and without (gojq's own run): the cost of the limits.
func BenchmarkLimitsOverhead(b *testing.B) {
	src := `reduce range(100000) as $i (0; . + $i)`
	p := mustCompile(b, src)
	q, _ := gojq.Parse(src)
	code, _ := gojq.Compile(q)
	b.Run("limits", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := p.Run(context.Background(), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("none", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if v, ok := code.Run(nil).Next(); !ok || v == nil {
				b.Fatal(v)
			}
		}
	})
}

// TestConcurrentRuns: one Program run from many goroutines at once (runs
// share pooled stacks) gives each its own answer, while a hostile program
// is stopped beside them.
func TestConcurrentRuns(t *testing.T) {
	p := mustCompile(t, `[$x, ($x | tostring), (reduce range(3) as $i (0; . + $x))]`, "x")
	hostile := mustCompile(t, `[range(1e9)]`).WithLimits(Limits{Time: time.Minute, Memory: 16 << 20, Depth: 100})
	done := make(chan error, 9)
	go func() {
		_, err := hostile.Run(context.Background(), nil)
		if le := (*LimitError)(nil); !errors.As(err, &le) || le.Limit != "memory" {
			done <- fmt.Errorf("hostile program: %v; want a memory LimitError", err)
			return
		}
		done <- nil
	}()
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 2000; i++ {
				x := g*10000 + i
				v, err := p.Run(context.Background(), nil, x)
				b, _ := Encode(v)
				if want := fmt.Sprintf(`[%d,"%d",%d]`, x, x, 3*x); err != nil || string(b) != want {
					done <- fmt.Errorf("run %d: %s, %v; want %s", x, b, err, want)
					return
				}
			}
			done <- nil
		}()
	}
	for i := 0; i < 9; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestMemoryOfOthers: the heap is the process's, yet a program within its
// memory limit is not stopped for what others hold: neither another
// goroutine allocating and keeping 100 MB during the run (a large append
// in flight), nor two programs (45 MB each) that together, not each, grow the heap
// past the limit. The hostile programs of TestHostile are still stopped.
func TestMemoryOfOthers(t *testing.T) {
	lim := Limits{Time: 10 * time.Second, Memory: 64 << 20, Depth: 1000}
	// 300 ms of instructions, then a value of 70 KB (a heap check at once).
	spin := mustCompile(t, `now as $t | first(range(1e9) | select(now > $t + 0.3)) | "x" * 70000 | length`).WithLimits(lim)
	t.Run("another goroutine's 100 MB", func(t *testing.T) {
		held := make(chan []byte, 1)
		go func() {
			time.Sleep(100 * time.Millisecond) // the run is under way
			held <- make([]byte, 100<<20)
		}()
		v, err := spin.Run(context.Background(), nil)
		hog := <-held
		if err != nil || v != 70000 {
			t.Errorf("%v, %v; want 70000", v, err)
		}
		runtime.KeepAlive(hog)
	})
	t.Run("another program's 45 MB", func(t *testing.T) {
		// Each holds 45 MB for $s seconds; the second starts while the
		// first runs.
		p := mustCompile(t, `[range(1900000)] as $a | now as $t | first(range(1e9) | select(now > $t + $s)) | $a | length`, "s").WithLimits(lim)
		errs := make(chan error, 2)
		for i, s := range []float64{0.4, 0.1} {
			go func() {
				time.Sleep(time.Duration(i) * 100 * time.Millisecond)
				v, err := p.Run(context.Background(), nil, s)
				if err == nil && v != 1900000 {
					err = fmt.Errorf("got %v", v)
				}
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

// TestContextStops: a run whose context ends stops with the context's
// error, not a limit, even past its first check; its time limit counts
// from its own start, so a context that ends first wins.
func TestContextStops(t *testing.T) {
	p := mustCompile(t, `last(range(1e15))`).WithLimits(Limits{Time: time.Second, Memory: 64 << 20, Depth: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Run(ctx, nil); !errors.Is(err, context.DeadlineExceeded) || isLimit(err) {
		t.Errorf("deadline: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var le *LimitError
	if _, err := p.Run(ctx, nil); !errors.As(err, &le) || le.Limit != "time" {
		t.Errorf("time limit before the deadline: %v", err)
	}
}

// BenchmarkRunSmall: a reducer-sized program (a few instructions, no
// check reached): the fast path, which reads neither the clock, the
// context nor the heap.
func BenchmarkRunSmall(b *testing.B) {
	p := mustCompile(b, `{n: (.n + 1), qty: (.qty + $x)}`, "x")
	in := map[string]any{"n": 1, "qty": 2}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := p.Run(ctx, in, 3); err != nil {
			b.Fatal(err)
		}
	}
}
