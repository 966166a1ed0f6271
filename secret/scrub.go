package secret

import (
	"strings"
	"unicode/utf8"
)

// MaxText bounds the text Scrub returns, in bytes.
const MaxText = 2048

// minScrubbed is the shortest value Scrub replaces: shorter values would
// cut ordinary words out of messages and are not secrets worth the name.
const minScrubbed = 4

// Scrub makes text fit to be stored or shown: in the journal, the audit
// log, status, metrics and notifications. Every occurrence of a value of
// known is replaced by Redacted; control characters (terminal escape
// sequences, newlines) are replaced by spaces; the text is cut to MaxText
// bytes. It is the one sanitiser every error goes through before it is
// recorded; plugins keep secrets out of their errors in the first place,
// Scrub is the last guard for the values the engine holds.
func Scrub(text string, known ...Fields) string {
	for _, f := range known {
		for _, v := range f {
			if s := v.Reveal(); len(s) >= minScrubbed {
				text = strings.ReplaceAll(text, s, Redacted)
			}
		}
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, text)
	if len(text) > MaxText {
		cut := MaxText
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "..."
	}
	return text
}
