package main

// The JSON checks of --format ndjson and --key-field, written to give the same answer
// as the kinesis-batcher CLI (cli/src/keys.rs, on serde_json) for every line, so that
// one file is refused the same way by both: which lines are invalid_json, which are
// key_field_missing, and which key every other line gets. encoding/json would not do:
// it differs on a few lines that matter here (bytes that are not UTF-8 inside a string,
// numbers out of a float64's range, unpaired UTF-16 surrogates in a key).
//
// What the CLI accepts, and so what this accepts:
//   - --format ndjson: a line is one JSON value (RFC 8259 grammar, whitespace around
//     it), strings checked for their escapes and control characters but not for UTF-8,
//     numbers for their grammar but not their range, nesting unbounded.
//   - --key-field NAME: the same, and the line must be an object. Its members' names
//     are compared with NAME after unescaping (the last NAME wins). NAME's value must be
//     valid UTF-8; a string is the key (unescaped; an unpaired surrogate escape is kept
//     as its 3 WTF-8 bytes, which the library then refuses as key_not_utf8), a number
//     its JSON text; anything else, no NAME, or a line that is valid JSON but not an
//     object, is key_field_missing. A line that is a string (not an object) must be
//     valid UTF-8 without unpaired surrogates, and a line that is a number must fit a
//     float64, or it is invalid_json.

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Refusal reasons of the JSON checks, as the CLI names them.
const (
	reasonInvalidJSON     = "invalid_json"
	reasonKeyFieldMissing = "key_field_missing"
)

// jsonRefusal is a line refused by the JSON checks: a reason and what exactly.
type jsonRefusal struct {
	reason, detail string
}

// scanner reads one line as JSON.
type scanner struct {
	b     []byte
	i     int
	err   string // the first error, "" while there is none
	stack []byte // the open containers of ignore: '{' or '['
}

func (s *scanner) fail(what string) bool {
	if s.err == "" {
		s.err = fmt.Sprintf("%s at column %d", what, s.i+1)
	}
	return false
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// ignoreString skips a string at s.i (its opening quote): escapes and control
// characters are checked, UTF-8 is not. It reports whether the string had escapes.
func (s *scanner) ignoreString() (escaped, ok bool) { return s.skipString(false) }

// skipString is ignoreString, with control characters allowed or not: serde_json reads
// the names of the members of the line's object (--key-field) as bytes, without
// checking for them, and checks every other string.
func (s *scanner) skipString(controls bool) (escaped, ok bool) {
	s.i++ // the opening quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, true
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				s.i = len(s.b)
				return escaped, s.fail("EOF while parsing a string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				s.i += 2
				for k := 0; k < 4; k++ {
					if s.i >= len(s.b) {
						return escaped, s.fail("EOF while parsing a string")
					}
					if !isHex(s.b[s.i]) {
						return escaped, s.fail("invalid escape")
					}
					s.i++
				}
			default:
				s.i++
				return escaped, s.fail("invalid escape")
			}
		case c < 0x20 && !controls:
			return escaped, s.fail("control character (\\u0000-\\u001F) found while parsing a string")
		default:
			s.i++
		}
	}
	return escaped, s.fail("EOF while parsing a string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ignoreNumber skips a number at s.i, checking its grammar only.
func (s *scanner) ignoreNumber() bool {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for isDigit(s.peek()) {
			s.i++
		}
	default:
		return s.fail("invalid number")
	}
	if s.peek() == '.' {
		s.i++
		if !isDigit(s.peek()) {
			return s.fail("invalid number")
		}
		for isDigit(s.peek()) {
			s.i++
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !isDigit(s.peek()) {
			return s.fail("invalid number")
		}
		for isDigit(s.peek()) {
			s.i++
		}
	}
	return true
}

func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return s.fail("expected value")
}

// memberName skips whitespace and an object member's name and its ':', returning the
// name's span (quotes included) and whether it had escapes. controls: see skipString.
func (s *scanner) memberName(controls bool) (start, end int, escaped, ok bool) {
	s.ws()
	if s.peek() != '"' {
		if s.i >= len(s.b) {
			return 0, 0, false, s.fail("EOF while parsing an object")
		}
		return 0, 0, false, s.fail("key must be a string")
	}
	start = s.i
	if escaped, ok = s.skipString(controls); !ok {
		return 0, 0, false, false
	}
	end = s.i
	s.ws()
	if s.peek() != ':' {
		return 0, 0, false, s.fail("expected `:`")
	}
	s.i++
	return start, end, escaped, true
}

// ignore skips one value at s.i (after whitespace), with no recursion: the open
// containers are on s.stack.
func (s *scanner) ignore() bool {
	base := len(s.stack)
	defer func() { s.stack = s.stack[:base] }()
	for {
		// A value.
		s.ws()
		switch c := s.peek(); {
		case c == '{':
			s.i++
			s.ws()
			if s.peek() == '}' {
				s.i++
				break
			}
			if _, _, _, ok := s.memberName(false); !ok {
				return false
			}
			s.stack = append(s.stack, '{')
			continue
		case c == '[':
			s.i++
			s.ws()
			if s.peek() == ']' {
				s.i++
				break
			}
			s.stack = append(s.stack, '[')
			continue
		case c == '"':
			if _, ok := s.ignoreString(); !ok {
				return false
			}
		case c == '-' || isDigit(c):
			if !s.ignoreNumber() {
				return false
			}
		case c == 't':
			if !s.literal("true") {
				return false
			}
		case c == 'f':
			if !s.literal("false") {
				return false
			}
		case c == 'n':
			if !s.literal("null") {
				return false
			}
		case s.i >= len(s.b):
			return s.fail("EOF while parsing a value")
		default:
			return s.fail("expected value")
		}
		// A value is complete: close the containers it completes, or go on to the
		// next element or member.
		for {
			if len(s.stack) == base {
				return true
			}
			s.ws()
			top := s.stack[len(s.stack)-1]
			c := s.peek()
			if c == ',' {
				s.i++
				if top == '{' {
					if _, _, _, ok := s.memberName(false); !ok {
						return false
					}
				} else {
					s.ws()
					if s.peek() == ']' {
						return s.fail("trailing comma")
					}
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				s.i++
				s.stack = s.stack[:len(s.stack)-1]
				continue
			}
			if s.i >= len(s.b) {
				if top == '{' {
					return s.fail("EOF while parsing an object")
				}
				return s.fail("EOF while parsing a list")
			}
			if top == '{' {
				return s.fail("expected `,` or `}`")
			}
			return s.fail("expected `,` or `]`")
		}
	}
}

// end checks that only whitespace follows the value.
func (s *scanner) end() bool {
	s.ws()
	if s.i < len(s.b) {
		return s.fail("trailing characters")
	}
	return true
}

// checkNDJSON is --format ndjson's check of a line: nil when it is one JSON value.
func checkNDJSON(line []byte) *jsonRefusal {
	s := scanner{b: line}
	if s.ignore() && s.end() {
		return nil
	}
	return &jsonRefusal{reasonInvalidJSON, s.err}
}

// keyField is --key-field name's key for a line (its bytes: a view of the line, or for
// a string with escapes a new slice), or why the line is refused.
func keyField(line []byte, name string) ([]byte, *jsonRefusal) {
	s := scanner{b: line}
	invalid := func() *jsonRefusal { return &jsonRefusal{reasonInvalidJSON, s.err} }
	notObject := func(kind string) ([]byte, *jsonRefusal) {
		if !s.end() {
			return nil, invalid()
		}
		return nil, &jsonRefusal{reasonKeyFieldMissing,
			fmt.Sprintf("the line is %s, not an object with %q", kind, name)}
	}
	s.ws()
	start := s.i
	switch c := s.peek(); {
	case c == '{':
	case c == '[':
		if !s.ignore() {
			return nil, invalid()
		}
		return notObject("an array")
	case c == '"':
		// Read as a string proper: UTF-8, and no unpaired surrogate.
		escaped, ok := s.ignoreString()
		if !ok {
			return nil, invalid()
		}
		text := line[start+1 : s.i-1]
		if escaped {
			text = unescape(nil, text)
		}
		if !utf8.Valid(text) {
			return nil, &jsonRefusal{reasonInvalidJSON,
				fmt.Sprintf("invalid unicode code point or lone surrogate at column %d", start+1)}
		}
		return notObject("a string")
	case c == '-' || isDigit(c):
		if !s.ignoreNumber() {
			return nil, invalid()
		}
		if f, _ := strconv.ParseFloat(string(line[start:s.i]), 64); f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
			s.i = start
			s.fail("number out of range")
			return nil, invalid()
		}
		return notObject("a number")
	default:
		if !s.ignore() {
			return nil, invalid()
		}
		return notObject(map[byte]string{'t': "a boolean", 'f': "a boolean", 'n': "null"}[c])
	}

	// An object: every member read, the last one named name kept.
	found := false
	var vstart, vend int
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			ns, ne, escaped, ok := s.memberName(true)
			if !ok {
				return nil, invalid()
			}
			raw := line[ns+1 : ne-1]
			var match bool
			if escaped {
				match = string(unescape(nil, raw)) == name
			} else {
				match = string(raw) == name
			}
			s.ws()
			at := s.i
			if !s.ignore() {
				return nil, invalid()
			}
			if match {
				if !utf8.Valid(line[at:s.i]) {
					s.i = at
					s.fail("invalid unicode code point")
					return nil, invalid()
				}
				found, vstart, vend = true, at, s.i
			}
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			if s.peek() == '}' {
				s.i++
				break
			}
			if s.i >= len(s.b) {
				s.fail("EOF while parsing an object")
			} else {
				s.fail("expected `,` or `}`")
			}
			return nil, invalid()
		}
	}
	if !s.end() {
		return nil, invalid()
	}
	if !found {
		return nil, &jsonRefusal{reasonKeyFieldMissing, fmt.Sprintf("no field %q", name)}
	}
	value := line[vstart:vend]
	switch c := value[0]; {
	case c == '"':
		text := value[1 : len(value)-1]
		for _, b := range text {
			if b == '\\' {
				return unescape(nil, text), nil
			}
		}
		return text, nil
	case c == '-' || isDigit(c):
		return value, nil
	default:
		kind := map[byte]string{'n': "null", 't': "a boolean", 'f': "a boolean", '{': "an object", '[': "an array"}[c]
		return nil, &jsonRefusal{reasonKeyFieldMissing,
			fmt.Sprintf("field %q is %s, not a string or number", name, kind)}
	}
}

// unescape appends the string text (between its quotes, escapes already checked) to
// dst with its escapes decoded. A surrogate pair is one character; an unpaired
// surrogate is written as its 3 WTF-8 bytes, which are not UTF-8.
func unescape(dst, text []byte) []byte {
	for i := 0; i < len(text); {
		c := text[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		e := text[i+1]
		i += 2
		switch e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(text[i:])
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+6 <= len(text) && text[i] == '\\' && text[i+1] == 'u' {
				if r2 := hex4(text[i+2:]); r2 >= 0xDC00 && r2 < 0xE000 {
					dst = utf8.AppendRune(dst, 0x10000+(r-0xD800)<<10+(r2-0xDC00))
					i += 6
					continue
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				dst = append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
			} else {
				dst = utf8.AppendRune(dst, r)
			}
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
