module strata

go 1.26.8

require (
	github.com/coder/websocket v1.8.15
	github.com/itchyny/gojq v0.12.20
	github.com/klauspost/compress v1.20.4
	github.com/zeebo/blake3 v0.2.4
	golang.org/x/crypto v0.56.0
	golang.org/x/sys v0.47.0
	golang.org/x/term v0.45.0
)

require (
	github.com/itchyny/timefmt-go v0.1.9 // indirect
	github.com/klauspost/cpuid/v2 v2.0.12 // indirect
)

replace github.com/klauspost/compress => ./third_party/compress

// A copy of gojq whose builtin tables are built on first use, not at
// start-up, and whose runs are bounded: third_party/gojq/STRATA-PATCH.md.
replace github.com/itchyny/gojq => ./third_party/gojq
