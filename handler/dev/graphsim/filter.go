package graphsim

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The $filter subset the simulator understands, as Graph does for users:
//
//	expr    := and ("or" and)*
//	and     := unary ("and" unary)*
//	unary   := "not" unary | primary
//	primary := "(" expr ")" | fn "(" property "," literal ")" | property op literal
//	fn      := startswith | endswith            (names case-insensitive)
//	op      := eq | ne
//	literal := 'text' ('' is one ') | null | true | false
//
// Operators and function names are case-insensitive as in Graph; string
// comparisons are case-insensitive too (directory properties are).
// endsWith, ne and not are "advanced queries": Graph accepts them only with
// ConsistencyLevel: eventual and $count=true.

// filterError is a refused filter, in Graph's terms: Code is BadRequest for
// a syntax error or an unknown property, Request_UnsupportedQuery for a
// clause Graph does not support (or not without advanced query
// parameters).
type filterError struct {
	Code    string
	Message string
}

func (e *filterError) Error() string { return e.Code + ": " + e.Message }

// filterNode is a parsed filter: evaluated against a user's properties.
type filterNode interface {
	eval(props map[string]any) bool
}

type orNode struct{ l, r filterNode }
type andNode struct{ l, r filterNode }
type notNode struct{ x filterNode }

// cmpNode is property op literal, or a string function of property and
// literal.
type cmpNode struct {
	op       string // eq, ne, startswith, endswith
	property string // canonical name
	lit      any    // string, bool or nil
}

func (n orNode) eval(p map[string]any) bool  { return n.l.eval(p) || n.r.eval(p) }
func (n andNode) eval(p map[string]any) bool { return n.l.eval(p) && n.r.eval(p) }
func (n notNode) eval(p map[string]any) bool { return !n.x.eval(p) }

func (n cmpNode) eval(p map[string]any) bool {
	v, set := p[n.property]
	if s, ok := v.(string); ok && s == "" {
		v, set = nil, false // an empty directory property is null
	}
	switch n.op {
	case "eq", "ne":
		var equal bool
		switch lit := n.lit.(type) {
		case nil:
			equal = !set || v == nil
		case string:
			s, ok := v.(string)
			equal = ok && strings.EqualFold(s, lit)
		case bool:
			b, ok := v.(bool)
			equal = ok && b == lit
		}
		return equal == (n.op == "eq")
	case "startswith", "endswith":
		s, ok := v.(string)
		lit, _ := n.lit.(string)
		if !ok {
			return false
		}
		s, lit = strings.ToLower(s), strings.ToLower(lit)
		if n.op == "startswith" {
			return strings.HasPrefix(s, lit)
		}
		return strings.HasSuffix(s, lit)
	}
	return false
}

// userProperties are the user properties a filter may name, by lower-case
// name, with their canonical name and whether they are strings (else
// booleans).
var userProperties = map[string]struct {
	name   string
	string bool
}{
	"id":                {"id", true},
	"displayname":       {"displayName", true},
	"givenname":         {"givenName", true},
	"surname":           {"surname", true},
	"mail":              {"mail", true},
	"userprincipalname": {"userPrincipalName", true},
	"jobtitle":          {"jobTitle", true},
	"department":        {"department", true},
	"preferredlanguage": {"preferredLanguage", true},
	"accountenabled":    {"accountEnabled", false},
}

// parsedFilter is a filter with what it needs of the request.
type parsedFilter struct {
	root filterNode
	// advanced names the first clause that needs ConsistencyLevel:
	// eventual and $count=true ("" when none does).
	advanced string
}

// parseFilter parses a $filter value. The error is Graph's refusal.
func parseFilter(src string) (*parsedFilter, error) {
	toks, err := lexFilter(src)
	if err != nil {
		return nil, err
	}
	p := &filterParser{src: src, toks: toks}
	root, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.syntax(t)
	}
	return &parsedFilter{root: root, advanced: p.advanced}, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokLParen
	tokRParen
	tokComma
)

type ftoken struct {
	kind tokKind
	text string // identifier as written, or the string literal's value
	pos  int    // byte offset in the filter
}

func lexFilter(src string) ([]ftoken, error) {
	var out []ftoken
	for i := 0; i < len(src); {
		r, size := utf8.DecodeRuneInString(src[i:])
		switch {
		case r == ' ' || r == '\t':
			i += size
		case r == '(':
			out = append(out, ftoken{kind: tokLParen, pos: i})
			i++
		case r == ')':
			out = append(out, ftoken{kind: tokRParen, pos: i})
			i++
		case r == ',':
			out = append(out, ftoken{kind: tokComma, pos: i})
			i++
		case r == '\'':
			start := i
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					return nil, &filterError{"BadRequest", fmt.Sprintf("Invalid filter clause: There is an unterminated string literal at position %d in '%s'.", start, src)}
				}
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(src[i])
				i++
			}
			out = append(out, ftoken{kind: tokString, text: b.String(), pos: start})
		case r == '_' || unicode.IsLetter(r):
			start := i
			for i < len(src) {
				r, size := utf8.DecodeRuneInString(src[i:])
				if r != '_' && r != '.' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				i += size
			}
			out = append(out, ftoken{kind: tokIdent, text: src[start:i], pos: start})
		default:
			return nil, &filterError{"BadRequest", fmt.Sprintf("Invalid filter clause: Syntax error: character '%c' is not valid at position %d in '%s'.", r, i, src)}
		}
	}
	return append(out, ftoken{kind: tokEOF, pos: len(src)}), nil
}

type filterParser struct {
	src      string
	toks     []ftoken
	i        int
	clauses  int
	advanced string
}

// maxFilterDepth and maxFilterClauses bound a filter, as Graph bounds its
// query trees.
const (
	maxFilterDepth   = 50
	maxFilterClauses = 100
)

var errTooComplex = &filterError{"BadRequest", "Invalid filter clause: The query specified in the URI is not valid. The node count limit of '100' " +
	"has been exceeded."}

func (p *filterParser) peek() ftoken { return p.toks[p.i] }
func (p *filterParser) next() ftoken { t := p.toks[p.i]; p.i++; return t }

func (p *filterParser) syntax(t ftoken) error {
	return &filterError{"BadRequest", fmt.Sprintf("Invalid filter clause: Syntax error at position %d in '%s'.", t.pos, p.src)}
}

func (p *filterParser) keyword(word string) bool {
	t := p.peek()
	if t.kind == tokIdent && strings.EqualFold(t.text, word) {
		p.i++
		return true
	}
	return false
}

func (p *filterParser) expr(depth int) (filterNode, error) {
	if depth > maxFilterDepth {
		return nil, errTooComplex
	}
	l, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *filterParser) and(depth int) (filterNode, error) {
	l, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *filterParser) unary(depth int) (filterNode, error) {
	if depth > maxFilterDepth {
		return nil, errTooComplex
	}
	if p.keyword("not") {
		x, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		p.needAdvanced("not")
		return notNode{x}, nil
	}
	return p.primary(depth)
}

func (p *filterParser) needAdvanced(what string) {
	if p.advanced == "" {
		p.advanced = what
	}
}

func (p *filterParser) primary(depth int) (filterNode, error) {
	if p.clauses++; p.clauses > maxFilterClauses {
		return nil, errTooComplex
	}
	t := p.next()
	switch t.kind {
	case tokLParen:
		x, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokRParen {
			return nil, p.syntax(c)
		}
		return x, nil
	case tokIdent:
	default:
		return nil, p.syntax(t)
	}
	if p.peek().kind == tokLParen {
		fn := strings.ToLower(t.text)
		if fn != "startswith" && fn != "endswith" {
			return nil, &filterError{"BadRequest", fmt.Sprintf("Invalid filter clause: An unknown function with name '%s' was found. This may also "+
				"be a function import or a key lookup on a navigation property, which is not allowed.", t.text)}
		}
		p.i++
		prop, err := p.property()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokComma {
			return nil, p.syntax(c)
		}
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokRParen {
			return nil, p.syntax(c)
		}
		s, ok := lit.(string)
		if !ok || !userProperties[strings.ToLower(prop)].string {
			return nil, &filterError{"Request_UnsupportedQuery", fmt.Sprintf("Unsupported or invalid query filter clause specified for property "+
				"'%s' of resource 'User'.", prop)}
		}
		if fn == "endswith" {
			p.needAdvanced("endsWith")
		}
		return cmpNode{op: fn, property: userProperties[strings.ToLower(prop)].name, lit: s}, nil
	}
	p.i--
	prop, err := p.property()
	if err != nil {
		return nil, err
	}
	opTok := p.next()
	op := strings.ToLower(opTok.text)
	if opTok.kind != tokIdent {
		return nil, p.syntax(opTok)
	}
	switch op {
	case "eq", "ne":
	case "gt", "ge", "lt", "le", "has", "in":
		return nil, &filterError{"Request_UnsupportedQuery", fmt.Sprintf("Unsupported or invalid query filter clause specified for property '%s' "+
			"of resource 'User'.", prop)}
	default:
		return nil, p.syntax(opTok)
	}
	lit, err := p.literal()
	if err != nil {
		return nil, err
	}
	spec := userProperties[strings.ToLower(prop)]
	switch lit.(type) {
	case string:
		if !spec.string {
			return nil, &filterError{"BadRequest", fmt.Sprintf("Invalid filter clause: A binary operator with incompatible types was detected. "+
				"Found operand types 'Edm.Boolean' and 'Edm.String' for operator kind '%s'.", titleOp(op))}
		}
	case bool:
		if spec.string {
			return nil, &filterError{"BadRequest", fmt.Sprintf("Invalid filter clause: A binary operator with incompatible types was detected. "+
				"Found operand types 'Edm.String' and 'Edm.Boolean' for operator kind '%s'.", titleOp(op))}
		}
	}
	if op == "ne" {
		p.needAdvanced("ne")
	}
	if lit == nil {
		p.needAdvanced("eq null")
	}
	return cmpNode{op: op, property: spec.name, lit: lit}, nil
}

func titleOp(op string) string {
	if op == "ne" {
		return "NotEqual"
	}
	return "Equal"
}

func (p *filterParser) property() (string, error) {
	t := p.next()
	if t.kind != tokIdent {
		return "", p.syntax(t)
	}
	if _, ok := userProperties[strings.ToLower(t.text)]; !ok {
		return "", &filterError{"BadRequest", fmt.Sprintf("Invalid filter clause: Could not find a property named '%s' on type 'microsoft.graph.user'.", t.text)}
	}
	return t.text, nil
}

func (p *filterParser) literal() (any, error) {
	t := p.next()
	switch {
	case t.kind == tokString:
		return t.text, nil
	case t.kind == tokIdent && t.text == "null":
		return nil, nil
	case t.kind == tokIdent && t.text == "true":
		return true, nil
	case t.kind == tokIdent && t.text == "false":
		return false, nil
	case t.kind == tokIdent:
		if _, ok := userProperties[strings.ToLower(t.text)]; ok {
			return nil, &filterError{"Request_UnsupportedQuery", fmt.Sprintf("Unsupported or invalid query filter clause specified for property "+
				"'%s' of resource 'User'.", t.text)}
		}
		return nil, &filterError{"BadRequest", fmt.Sprintf("Invalid filter clause: Could not find a property named '%s' on type 'microsoft.graph.user'.", t.text)}
	}
	return nil, p.syntax(t)
}
