package graphsim

import (
	"fmt"
	"slices"
	"strings"
)

// This file is a small but real OData $filter parser: eq comparisons, and,
// or, not, parentheses and the any() lambda over string collections, with
// string, GUID, null and boolean literals. It type-checks against the
// entity's properties as Graph and Dataverse do, so a filter that would fail
// at Microsoft (a quoted GUID in Dataverse, an unescaped quote, an unknown
// property) fails here too instead of matching nothing.

// kind is the type of a property or literal.
type kind int

const (
	kString  kind = iota // Edm.String
	kGUID                // Edm.Guid
	kBool                // Edm.Boolean
	kStrings             // Collection(Edm.String)
	kNull                // the null literal
)

func (k kind) String() string {
	return [...]string{"Edm.String", "Edm.Guid", "Edm.Boolean", "Collection(Edm.String)", "<null>"}[k]
}

// entity describes what a filter may name: property name → kind.
type entity struct {
	name  string // e.g. microsoft.graph.user, Microsoft.Dynamics.CRM.systemuser
	props map[string]kind
	fold  bool // property names match case-insensitively (Graph) or exactly (Dataverse)
}

func (e entity) prop(name string) (string, kind, bool) {
	if k, ok := e.props[name]; ok {
		return name, k, true
	}
	if e.fold {
		for p, k := range e.props {
			if strings.EqualFold(p, name) {
				return p, k, true
			}
		}
	}
	return "", 0, false
}

// row is one record to filter: a property's value is a string, nil (null),
// a bool or a []string.
type row map[string]any

// expr is a parsed filter.
type expr interface {
	eval(r row, vars map[string]string) bool
}

type orExpr struct{ l, r expr }
type andExpr struct{ l, r expr }
type notExpr struct{ x expr }

// cmpExpr is "<prop or lambda variable> eq <literal>".
type cmpExpr struct {
	prop    string
	isVar   bool
	litKind kind
	lit     string
	litBool bool
}

// anyExpr is "<collection>/any(<var>:<body>)".
type anyExpr struct {
	prop, v string
	body    expr
}

func (e orExpr) eval(r row, vars map[string]string) bool {
	return e.l.eval(r, vars) || e.r.eval(r, vars)
}
func (e andExpr) eval(r row, vars map[string]string) bool {
	return e.l.eval(r, vars) && e.r.eval(r, vars)
}
func (e notExpr) eval(r row, vars map[string]string) bool { return !e.x.eval(r, vars) }

func (e cmpExpr) eval(r row, vars map[string]string) bool {
	var v any
	if e.isVar {
		v = vars[e.prop]
	} else {
		v = r[e.prop]
	}
	switch x := v.(type) {
	case nil:
		return e.litKind == kNull
	case string:
		return e.litKind != kNull && strings.EqualFold(x, e.lit)
	case bool:
		return e.litKind == kBool && x == e.litBool
	}
	return false
}

func (e anyExpr) eval(r row, vars map[string]string) bool {
	items, _ := r[e.prop].([]string)
	inner := map[string]string{}
	for k, v := range vars {
		inner[k] = v
	}
	for _, it := range items {
		inner[e.v] = it
		if e.body.eval(r, inner) {
			return true
		}
	}
	return false
}

// candidates returns values one of which every row e matches holds in an
// indexed property (compared case-insensitively), or ok false when e does
// not narrow the rows that way. indexed names the indexed properties,
// string and GUID ones and string collections (through any). It lets a
// lookup by address or object id read the few rows an index holds for
// the value instead of every row, as Microsoft's directory does: a scan
// per call makes an emulated tenant of 10,000 guests quadratic.
func candidates(e expr, indexed map[string]bool) ([]string, bool) {
	lit := func(c cmpExpr) bool { return c.litKind == kString || c.litKind == kGUID }
	switch x := e.(type) {
	case cmpExpr:
		if !x.isVar && lit(x) && indexed[x.prop] {
			return []string{x.lit}, true
		}
	case anyExpr:
		if c, ok := x.body.(cmpExpr); ok && c.isVar && c.prop == x.v && lit(c) && indexed[x.prop] {
			return []string{c.lit}, true
		}
	case orExpr:
		l, okl := candidates(x.l, indexed)
		r, okr := candidates(x.r, indexed)
		if okl && okr {
			return append(l, r...), true
		}
	case andExpr:
		if l, ok := candidates(x.l, indexed); ok {
			return l, true
		}
		return candidates(x.r, indexed)
	}
	return nil, false
}

// gather is the distinct non-nil rows find holds for any of vals, in the
// order seq numbers them (creation order, as a scan returns them).
func gather[T comparable](vals []string, find func(string) []T, seq func(T) int) []T {
	var zero T
	var out []T
	for _, v := range vals {
		for _, r := range find(v) {
			if r != zero && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b T) int { return seq(a) - seq(b) })
	return out
}

// filterError is a $filter the emulator refuses; the message is OData's.
type filterError struct{ msg string }

func (e *filterError) Error() string { return e.msg }

// maxFilter bounds the text and the nesting a client can make us parse.
const (
	maxFilterLen   = 4096
	maxFilterDepth = 32
)

// parseFilter parses src against ent.
func parseFilter(src string, ent entity) (expr, error) {
	if len(src) > maxFilterLen {
		return nil, &filterError{fmt.Sprintf("The $filter is longer than %d characters.", maxFilterLen)}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks, ent: ent, vars: map[string]bool{}}
	if len(toks) == 1 { // only EOF
		return nil, &filterError{"The $filter expression is empty."}
	}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.typ != tEOF {
		return nil, p.syntax(t)
	}
	return e, nil
}

type parser struct {
	src   string
	toks  []token
	pos   int
	depth int
	ent   entity
	vars  map[string]bool // lambda variables in scope
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token { t := p.toks[p.pos]; p.pos++; return t }

func (p *parser) syntax(t token) error {
	return &filterError{fmt.Sprintf("Syntax error at position %d in '%s'.", t.at, p.src)}
}

func (p *parser) keyword(word string) bool {
	if t := p.peek(); t.typ == tIdent && t.text == word {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(typ tokType) (token, error) {
	t := p.next()
	if t.typ != typ {
		return t, p.syntax(t)
	}
	return t, nil
}

func (p *parser) or() (expr, error) {
	l, err := p.and()
	for err == nil && p.keyword("or") {
		var r expr
		if r, err = p.and(); err == nil {
			l = orExpr{l, r}
		}
	}
	return l, err
}

func (p *parser) and() (expr, error) {
	l, err := p.unary()
	for err == nil && p.keyword("and") {
		var r expr
		if r, err = p.unary(); err == nil {
			l = andExpr{l, r}
		}
	}
	return l, err
}

func (p *parser) unary() (expr, error) {
	if p.depth++; p.depth > maxFilterDepth {
		return nil, &filterError{"The $filter is nested too deeply."}
	}
	defer func() { p.depth-- }()
	if p.keyword("not") {
		x, err := p.unary()
		return notExpr{x}, err
	}
	if p.peek().typ == tLParen {
		p.next()
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
		return e, nil
	}
	return p.comparison()
}

// comparison parses "<path> eq <literal>" or "<path>/any(v:body)".
func (p *parser) comparison() (expr, error) {
	t := p.next()
	if t.typ != tIdent || isKeyword(t.text) {
		return nil, p.syntax(t)
	}
	if p.peek().typ == tLParen {
		return nil, &filterError{fmt.Sprintf("An unknown function with name '%s' was found; graphsim implements eq, and, or, not, parentheses and any().", t.text)}
	}
	name, k, isVar := t.text, kString, p.vars[t.text]
	if !isVar {
		var ok bool
		if name, k, ok = p.ent.prop(t.text); !ok {
			return nil, &filterError{fmt.Sprintf("Could not find a property named '%s' on type '%s'.", t.text, p.ent.name)}
		}
	}
	if p.peek().typ == tSlash {
		p.next()
		if !p.keyword("any") {
			return nil, p.syntax(p.peek())
		}
		if k != kStrings {
			return nil, &filterError{fmt.Sprintf("The parent value for a lambda expression must be a collection; '%s' is %s.", t.text, k)}
		}
		return p.lambda(name)
	}
	op := p.next()
	if op.typ != tIdent || op.text != "eq" {
		if op.typ == tIdent && contains([]string{"ne", "gt", "ge", "lt", "le", "in", "has"}, op.text) {
			return nil, &filterError{fmt.Sprintf("The operator '%s' is not supported by graphsim; it implements eq.", op.text)}
		}
		return nil, p.syntax(op)
	}
	lit := p.next()
	c := cmpExpr{prop: name, isVar: isVar, lit: lit.text}
	switch {
	case lit.typ == tString:
		c.litKind = kString
	case lit.typ == tGUID:
		c.litKind = kGUID
	case lit.typ == tIdent && lit.text == "null":
		c.litKind = kNull
	case lit.typ == tIdent && (lit.text == "true" || lit.text == "false"):
		c.litKind, c.litBool = kBool, lit.text == "true"
	default:
		return nil, p.syntax(lit)
	}
	if c.litKind != kNull && c.litKind != k {
		return nil, &filterError{fmt.Sprintf("A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind 'Equal'.", k, c.litKind)}
	}
	return c, nil
}

func (p *parser) lambda(prop string) (expr, error) {
	if _, err := p.expect(tLParen); err != nil {
		return nil, err
	}
	v, err := p.expect(tIdent)
	if err != nil || isKeyword(v.text) {
		return nil, p.syntax(v)
	}
	if p.vars[v.text] {
		return nil, &filterError{fmt.Sprintf("The range variable '%s' has already been declared.", v.text)}
	}
	if _, err := p.expect(tColon); err != nil {
		return nil, err
	}
	p.vars[v.text] = true
	body, err := p.or()
	delete(p.vars, v.text)
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tRParen); err != nil {
		return nil, err
	}
	return anyExpr{prop: prop, v: v.text, body: body}, nil
}

func isKeyword(s string) bool {
	return contains([]string{"eq", "and", "or", "not", "null", "true", "false", "any"}, s)
}

type tokType int

const (
	tEOF tokType = iota
	tIdent
	tString
	tGUID
	tLParen
	tRParen
	tSlash
	tColon
	tComma
)

type token struct {
	typ  tokType
	text string // identifier, unquoted string or GUID
	at   int    // byte offset, for messages
}

// lex splits a filter into tokens. String literals quote "'" by doubling it.
// A GUID is recognised by its 8-4-4-4-12 shape before identifiers, because
// one may start with a letter or a digit.
func lex(src string) ([]token, error) {
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')' || c == '/' || c == ':' || c == ',':
			toks = append(toks, token{typ: map[byte]tokType{'(': tLParen, ')': tRParen, '/': tSlash, ':': tColon, ',': tComma}[c], at: i})
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(src) {
					return nil, &filterError{fmt.Sprintf("There is an unterminated string literal at position %d in '%s'.", i, src)}
				}
				if src[j] == '\'' {
					if j+1 < len(src) && src[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(src[j])
				j++
			}
			toks = append(toks, token{typ: tString, text: b.String(), at: i})
			i = j + 1
		case isGUIDAt(src, i):
			toks = append(toks, token{typ: tGUID, text: src[i : i+36], at: i})
			i += 36
		case isIdentByte(c):
			j := i
			for j < len(src) && (isIdentByte(src[j]) || src[j] == '.') {
				j++
			}
			toks = append(toks, token{typ: tIdent, text: src[i:j], at: i})
			i = j
		default:
			return nil, &filterError{fmt.Sprintf("Syntax error: character '%c' is not valid at position %d in '%s'.", c, i, src)}
		}
	}
	return append(toks, token{typ: tEOF, at: len(src)}), nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isGUIDAt(s string, i int) bool {
	if len(s)-i < 36 || (len(s)-i > 36 && isIdentByte(s[i+36])) {
		return false
	}
	return isGUID(s[i : i+36])
}

// isGUID accepts the 8-4-4-4-12 hexadecimal form only (no braces).
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
