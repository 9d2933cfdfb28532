package auth

import (
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Password hashes accepted in the users file:
//
//   - bcrypt, "$2y$", "$2a$" or "$2b$" — what `htpasswd -B` writes, and what
//     HashPassword writes (cost 10, prefix "$2y$" so Apache reads it too);
//   - argon2id as a PHC string, "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>",
//     salt and hash in unpadded standard base64 (what the reference `argon2`
//     tool and most libraries print). OWASP's minimum is m=19456,t=2,p=1.
//
// Everything else htpasswd can write is refused. "$apr1$" (MD5, 1000
// rounds), "{SHA}" (one unsalted SHA-1) and crypt(3) (DES, 8 characters)
// are fast hashes: a leaked users file falls to off-line guessing on a GPU
// in hours. SHA-crypt ("$5$", "$6$", htpasswd -2/-5) is slow but not
// memory-hard, has no implementation in the standard library or x/crypto,
// and bcrypt serves the same files. A user with a refused hash cannot log
// in until the password is set again; Users.Unsupported lists them.

// bcryptCost is the cost HashPassword uses: about 50 ms per check, paid once
// per login (sessions and tokens then spare later requests the hash).
const bcryptCost = 10

// HashPassword hashes a password for the users file with bcrypt at cost 10,
// with the "$2y$" prefix that `htpasswd -B` writes. bcrypt reads at most 72
// bytes: a longer password is refused rather than silently cut.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", err
	}
	// x/crypto writes "$2a$"; "$2y$" and "$2a$" mean the same hash (the
	// letter marks implementations free of an old OpenBSD bug), and
	// Apache's own tools write "$2y$".
	return "$2y$" + string(h[4:]), nil
}

// isBcrypt reports whether hash has one of the accepted bcrypt prefixes.
// "$2x$" (hashes made by a buggy implementation) and "$2$" are refused.
func isBcrypt(hash string) bool {
	return len(hash) == 60 && hash[0] == '$' && hash[1] == '2' &&
		(hash[2] == 'a' || hash[2] == 'b' || hash[2] == 'y') && hash[3] == '$'
}

// bcryptCostOf returns the cost of a bcrypt hash, or -1.
func bcryptCostOf(hash string) int {
	if !isBcrypt(hash) || hash[6] != '$' {
		return -1
	}
	c, err := strconv.Atoi(hash[4:6])
	if err != nil || c < bcrypt.MinCost || c > bcrypt.MaxCost {
		return -1
	}
	return c
}

// argon2Hash is a parsed argon2id PHC string.
type argon2Hash struct {
	memory  uint32 // KiB
	time    uint32 // passes
	threads uint8  // lanes
	salt    []byte
	key     []byte
}

// Limits on argon2id parameters read from the users file. The file is the
// administrator's, but a typo such as m=19456000 should fail to parse, not
// allocate 18 GiB on every login.
const (
	argon2MaxMemory = 4 << 20 // KiB: 4 GiB
	argon2MaxTime   = 64
	argon2MinSalt   = 8
	argon2MinKey    = 16
	argon2MaxKey    = 128
)

// parseArgon2id parses "$argon2id$v=19$m=…,t=…,p=…$salt$hash". Only
// version 19 (0x13, the final one) and the parameters in this order are
// accepted, as the PHC format and the reference implementation write them.
func parseArgon2id(s string) (argon2Hash, bool) {
	var h argon2Hash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
		return h, false
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return h, false
	}
	var v [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		num, ok := strings.CutPrefix(params[i], name)
		if !ok || num == "" || num[0] == '0' || len(num) > 10 {
			return h, false
		}
		n, err := strconv.ParseUint(num, 10, 32)
		if err != nil {
			return h, false
		}
		v[i] = n
	}
	h.memory, h.time = uint32(v[0]), uint32(v[1])
	if v[2] > 255 || h.time > argon2MaxTime || h.memory > argon2MaxMemory || uint64(h.memory) < 8*v[2] {
		return h, false
	}
	h.threads = uint8(v[2])
	var err error
	enc := base64.RawStdEncoding.Strict()
	if h.salt, err = enc.DecodeString(parts[4]); err != nil || len(h.salt) < argon2MinSalt {
		return h, false
	}
	if h.key, err = enc.DecodeString(parts[5]); err != nil || len(h.key) < argon2MinKey || len(h.key) > argon2MaxKey {
		return h, false
	}
	return h, true
}

// String encodes h as a PHC string.
func (h argon2Hash) String() string {
	enc := base64.RawStdEncoding
	return "$argon2id$v=19$m=" + strconv.FormatUint(uint64(h.memory), 10) +
		",t=" + strconv.FormatUint(uint64(h.time), 10) +
		",p=" + strconv.FormatUint(uint64(h.threads), 10) +
		"$" + enc.EncodeToString(h.salt) + "$" + enc.EncodeToString(h.key)
}

// verify reports whether password hashes to h.key, comparing in constant
// time.
func (h argon2Hash) verify(password string) bool {
	k := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}

// supportedHash reports whether verifyHash can check hash.
func supportedHash(hash string) bool {
	if bcryptCostOf(hash) >= 0 {
		return true
	}
	_, ok := parseArgon2id(hash)
	return ok
}

// verifyHash reports whether password matches hash, of a supported kind.
func verifyHash(hash, password string) bool {
	if bcryptCostOf(hash) >= 0 {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	}
	if h, ok := parseArgon2id(hash); ok {
		return h.verify(password)
	}
	return false
}

// dummyBcrypt holds, for each cost from 4 to 14, a bcrypt hash of a random
// password nobody knows, generated once and written here as constants so no
// process pays for making them. Checking a password against one costs what
// checking a real hash of that cost does.
var dummyBcrypt = [...]string{
	"$2y$04$X7TpqRGltKKDHFa/8tnx6uAU6qlsZvmZcKtsreARTphjN1EE1hlZG",
	"$2y$05$G1RZO/Px8byPbb15Qg1zS.grkJJ0H3Vppz/XAguBHuDdxy1h649ja",
	"$2y$06$6akQkpe.FZWjboxwQs/FbORUkjAxPzD6pLqc/uSK3FCCyWe7cPBiS",
	"$2y$07$phuFsgZ.R8e0kzAaRKUBqutgfoyYqLTHjbGyJGGpwlp9zYDSvo9gK",
	"$2y$08$jcea1fM8A3T3RHLsFpgg.upBpzNvW7EOKupbtgIntK6d7RgL7x1zC",
	"$2y$09$lY4PLdGHKozp8il..YfuFu7nL1zpkBu5At1L8K2CBT1LFi0Bu8E32",
	"$2y$10$RlmlH5.pSX8fb/Pt4fvvPuNr./NerEahkjypD15PoO5qqXorDSVOW",
	"$2y$11$xR5kpNpOSe2NNzxPF0uBPOiUj.llUvF61nBwNUyUyTh74A/BugHIm",
	"$2y$12$YhSUu7/XYZusWWnkAJDwwuuByTTnI9niVRPvGuhu6PgTZO9uh.Dva",
	"$2y$13$p2Nm5VwjIOuckbOv2H3U5.TvTqjFpVJ5vFs2RYOTuwpGA.EvPq2pm",
	"$2y$14$CYqJvjGebskvJUgKmlgw9.JFSvC5V8LaZFH1JSE9u0rahJx7pAY8a",
}

// dummyFor returns a hash that costs as much to check as hash does and that
// no password matches: the bcrypt constant of its cost (costs above 14 use
// 14, which already takes over a second), or an argon2id hash with its
// parameters, an all-zero salt and an all-zero key.
func dummyFor(hash string) string {
	if c := bcryptCostOf(hash); c >= 0 {
		c = max(c, 4)
		c = min(c, 14)
		return dummyBcrypt[c-4]
	}
	if h, ok := parseArgon2id(hash); ok {
		h.salt = make([]byte, len(h.salt))
		h.key = make([]byte, len(h.key))
		return h.String()
	}
	return dummyBcrypt[bcryptCost-4]
}

// hashKind names a hash's kind and cost parameters, so that the most common
// one in a users file can be found.
func hashKind(hash string) string {
	if c := bcryptCostOf(hash); c >= 0 {
		return "bcrypt " + strconv.Itoa(c)
	}
	if h, ok := parseArgon2id(hash); ok {
		i := strings.LastIndexByte(hash, '$')
		return hash[:strings.LastIndexByte(hash[:i], '$')] + " " + strconv.Itoa(len(h.salt)) + " " + strconv.Itoa(len(h.key))
	}
	return ""
}
