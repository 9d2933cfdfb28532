package auth

import (
	"strings"
	"unicode"
)

// LookAlike returns the form of a user name that names which could pass
// for one another share: case folded, invisible format characters (zero-
// width spaces, direction marks) dropped, fullwidth forms made ASCII, and
// the letters of other scripts that look like a Latin letter (Cyrillic а,
// Greek Ε, ö …) made that letter. New names are ASCII (CheckNewUserName);
// this is what keeps one from being made beside a look-alike that came in
// with an htpasswd file. It is a short list of the common cases, not
// Unicode's full confusables table.
func LookAlike(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case unicode.Is(unicode.Cf, r):
			continue
		case 0xFF01 <= r && r <= 0xFF5E: // fullwidth ASCII
			r -= 0xFEE0
		}
		r = unicode.ToLower(r)
		if l, ok := lookAlikes[r]; ok {
			r = l
		}
		b.WriteRune(r)
	}
	return b.String()
}

// lookAlikes maps lower-case letters of other scripts (and accented Latin
// ones) to the ASCII letter they pass for.
var lookAlikes = func() map[rune]rune {
	m := map[rune]rune{}
	for ascii, others := range map[rune]string{
		'a': "аαɑàáâãäåā", 'b': "вβьЬ", 'c': "сϲçć", 'd': "ԁ", 'e': "еёεèéêëē",
		'g': "ɡ", 'h': "һнη", 'i': "іїιıìíîïī", 'j': "јϳȷ", 'k': "кκ",
		'l': "ӏℓ", 'm': "м", 'n': "ñп", 'o': "оοòóôõöøō", 'p': "рρ",
		'q': "ԛ", 's': "ѕ", 't': "тτ", 'u': "υùúûüū", 'v': "ν",
		'w': "ԝω", 'x': "хχ", 'y': "уүγýÿ", 'z': "ζ",
	} {
		for _, r := range others {
			m[unicode.ToLower(r)] = ascii
		}
	}
	return m
}()
