package gojq

import "sync"

// strata: upstream builds its builtin tables (builtinFuncDefs,
// internalFuncs), the lexer's keywords and four strings.Replacers in package
// init, about 0.2 ms and 2,300 allocations in every process that links
// gojq, whether or not it ever runs a query. strata is a CGI program that
// pays init on every request, so they are built here instead, once, on
// first use: Parse (the lexer reads keywords) and Compile (everything else
// is read only by compiled code) call lazyInit.
var lazyOnce sync.Once

func lazyInit() {
	lazyOnce.Do(func() {
		initKeywords()
		initBuiltinFuncDefs()
		initInternalFuncs()
		initHtmlEscaper()
		initCsvEscaper()
		initTsvEscaper()
		initShEscaper()
	})
}
