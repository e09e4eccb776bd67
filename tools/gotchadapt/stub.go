package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// cFunc is one top-level C/C++ function definition in a source file.
type cFunc struct {
	Name     string
	Ret      string // return type, "void" for none
	First    int    // 0-based line of the signature
	BodyLine int    // line holding the opening brace
	BodyCol  int    // its column
	Last     int    // line of the closing brace
	LastCol  int    // its column
}

var sigRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_ \*]*?[\s\*])([A-Za-z_][A-Za-z0-9_]*)\s*\(`)

// functions finds the top-level function definitions of C-like source: a line starting in
// column 0 with "type name(" whose braces are then followed to depth zero. Braces inside
// string and character literals and comments are skipped.
func functions(lines []string) []cFunc {
	var fns []cFunc
	for i := 0; i < len(lines); i++ {
		m := sigRe.FindStringSubmatch(lines[i])
		if m == nil || strings.HasPrefix(lines[i], " ") || strings.HasPrefix(lines[i], "\t") {
			continue
		}
		ret := strings.TrimSpace(m[1])
		if ret == "return" || ret == "else" || strings.HasPrefix(ret, "typedef") {
			continue
		}
		f := cFunc{Name: m[2], Ret: ret, First: i, BodyLine: -1}
		depth := 0
		st := scanState{}
	scan:
		for j := i; j < len(lines); j++ {
			line := lines[j]
			for k := 0; k < len(line); k++ {
				c, ok := st.code(line, k)
				if !ok {
					continue
				}
				switch c {
				case ';':
					if f.BodyLine < 0 { // a declaration, not a definition
						break scan
					}
				case '{':
					if f.BodyLine < 0 {
						f.BodyLine, f.BodyCol = j, k
					}
					depth++
				case '}':
					depth--
					if depth == 0 {
						f.Last, f.LastCol = j, k
						fns = append(fns, f)
						i = j
						break scan
					}
				}
			}
			st.endLine()
		}
	}
	return fns
}

// scanState tracks literals and comments across a line scan.
type scanState struct {
	block       bool // inside /* */
	quote       byte // inside '...' or "..."
	escaped     bool // the previous byte in the literal was an unescaped backslash
	lineComment bool
}

// code reports the byte at k when it is code, not literal or comment text.
func (s *scanState) code(line string, k int) (byte, bool) {
	c := line[k]
	switch {
	case s.lineComment:
		return 0, false
	case s.block:
		if c == '/' && k > 0 && line[k-1] == '*' {
			s.block = false
		}
		return 0, false
	case s.quote != 0:
		switch {
		case s.escaped:
			s.escaped = false
		case c == '\\':
			s.escaped = true
		case c == s.quote:
			s.quote = 0
		}
		return 0, false
	case c == '/' && k+1 < len(line) && line[k+1] == '/':
		s.lineComment = true
		return 0, false
	case c == '/' && k+1 < len(line) && line[k+1] == '*':
		s.block = true
		return 0, false
	case c == '"' || c == '\'':
		s.quote = c
		return 0, false
	}
	return c, true
}

// endLine ends a line comment; a backslash ending a line splices it, escaping nothing.
func (s *scanState) endLine() { s.lineComment, s.escaped = false, false }

// errorLines returns the 0-based lines of file that the compiler output blames, both
// errors reported there and "required from here" context for errors inside headers.
func errorLines(compilerOut, file string) []int {
	re := regexp.MustCompile(regexp.QuoteMeta(file) + `:(\d+):\d+:`)
	seen := map[int]bool{}
	var out []int
	for _, m := range re.FindAllStringSubmatch(compilerOut, -1) {
		n, _ := strconv.Atoi(m[1])
		if !seen[n-1] {
			seen[n-1] = true
			out = append(out, n-1)
		}
	}
	sort.Ints(out)
	return out
}

// stubFunctions replaces the body of every function enclosing one of the given lines with
// one that records gotch's last error, so the symbol still links and a call fails clearly.
// It returns the new text and the names stubbed. A blamed line outside any function is an
// error: the adapter cannot fix it.
func stubFunctions(src string, blamed []int, version string) (string, []string, error) {
	lines := strings.Split(src, "\n")
	fns := functions(lines)
	hit := map[int]bool{} // index into fns
	for _, l := range blamed {
		i := sort.Search(len(fns), func(i int) bool { return fns[i].Last >= l })
		if i == len(fns) || fns[i].First > l {
			return "", nil, fmt.Errorf("line %d: %q is not inside a function", l+1, strings.TrimSpace(lines[l]))
		}
		hit[i] = true
	}
	var names []string
	// Rewrite from the end so earlier line numbers stay valid.
	for i := len(fns) - 1; i >= 0; i-- {
		if !hit[i] {
			continue
		}
		f := fns[i]
		names = append(names, f.Name)
		body := fmt.Sprintf(`{ torch_last_err = strdup("op %s is not available in libtorch %s");`, f.Name, version)
		if f.Ret != "void" {
			body += " return {};"
		}
		body += " }"
		head := lines[f.BodyLine][:f.BodyCol]
		tail := lines[f.Last][f.LastCol+1:]
		repl := head + body + tail
		lines = append(lines[:f.BodyLine], append([]string{repl}, lines[f.Last+1:]...)...)
	}
	sort.Strings(names)
	return strings.Join(lines, "\n"), names, nil
}
