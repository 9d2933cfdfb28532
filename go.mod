module strata

go 1.26.8

require (
	github.com/klauspost/compress v1.20.4
	github.com/zeebo/blake3 v0.2.4
	golang.org/x/crypto v0.56.0
	golang.org/x/sys v0.47.0
	golang.org/x/term v0.45.0
)

require github.com/klauspost/cpuid/v2 v2.0.12 // indirect

replace github.com/klauspost/compress => ./third_party/compress
