package localrunner

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Route is a parsed HTTP-trigger route template in the Functions (ASP.NET
// Core) syntax: literal segments, {param}, {param?} (optional, trailing
// only), {*rest} (catch-all, last only) and {param:constraint} with the
// constraints in routeConstraints. Anything else the runner cannot match
// faithfully (complex segments like {a}.{b}, default values, other
// constraints) is refused at start-up rather than matched differently from
// the host.
type Route struct {
	Template string
	segments []routeSegment
}

type routeSegment struct {
	literal    string // set for a literal segment
	param      string // set for a parameter segment
	constraint string
	optional   bool
	catchAll   bool
}

// routeConstraints are the inline constraints the runner checks; the host
// knows more (min, length, regex, ...), which are refused here.
var routeConstraints = map[string]func(string) bool{
	"int":  func(s string) bool { _, err := strconv.ParseInt(s, 10, 32); return err == nil },
	"long": func(s string) bool { _, err := strconv.ParseInt(s, 10, 64); return err == nil },
	"bool": func(s string) bool {
		_, err := strconv.ParseBool(s)
		return err == nil && (strings.EqualFold(s, "true") || strings.EqualFold(s, "false"))
	},
	"guid": func(s string) bool { _, err := uuid.Parse(s); return err == nil },
	"alpha": func(s string) bool {
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
		return s != ""
	},
	"double": func(s string) bool { _, err := strconv.ParseFloat(s, 64); return err == nil },
}

var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseRoute parses and checks a route template.
func ParseRoute(template string) (*Route, error) {
	if template == "" {
		return nil, fmt.Errorf("route is empty")
	}
	if strings.HasPrefix(template, "/") || strings.HasPrefix(template, "~") {
		return nil, fmt.Errorf("route %q must not start with '/' or '~'", template)
	}
	r := &Route{Template: template}
	seen := map[string]bool{}
	parts := strings.Split(template, "/")
	for i, part := range parts {
		if part == "" {
			return nil, fmt.Errorf("route %q: empty segment", template)
		}
		if !strings.ContainsAny(part, "{}") {
			if strings.ContainsAny(part, "?*#") {
				return nil, fmt.Errorf("route %q: segment %q has '?', '*' or '#' outside a parameter", template, part)
			}
			r.segments = append(r.segments, routeSegment{literal: part})
			continue
		}
		if !strings.HasPrefix(part, "{") || !strings.HasSuffix(part, "}") || strings.Count(part, "{") != 1 || strings.Count(part, "}") != 1 {
			return nil, fmt.Errorf("route %q: segment %q mixes literal text and parameters (complex segments are not supported by the local runner)", template, part)
		}
		seg, err := parseParam(part[1 : len(part)-1])
		if err != nil {
			return nil, fmt.Errorf("route %q: %v", template, err)
		}
		key := strings.ToLower(seg.param)
		if seen[key] {
			return nil, fmt.Errorf("route %q: parameter {%s} appears twice", template, seg.param)
		}
		seen[key] = true
		if seg.catchAll && i != len(parts)-1 {
			return nil, fmt.Errorf("route %q: catch-all {*%s} must be the last segment", template, seg.param)
		}
		r.segments = append(r.segments, seg)
	}
	// An optional parameter may only be followed by optional ones.
	for i, seg := range r.segments {
		if !seg.optional {
			continue
		}
		for _, later := range r.segments[i+1:] {
			if !later.optional && !later.catchAll {
				return nil, fmt.Errorf("route %q: optional {%s?} must be followed by optional parameters only", template, seg.param)
			}
		}
	}
	return r, nil
}

func parseParam(body string) (routeSegment, error) {
	var seg routeSegment
	switch {
	case strings.HasPrefix(body, "**"):
		seg.catchAll, body = true, body[2:]
	case strings.HasPrefix(body, "*"):
		seg.catchAll, body = true, body[1:]
	}
	if strings.HasSuffix(body, "?") {
		if seg.catchAll {
			return seg, fmt.Errorf("catch-all {*%s} cannot also be optional", strings.TrimSuffix(body, "?"))
		}
		seg.optional, body = true, strings.TrimSuffix(body, "?")
	}
	if strings.Contains(body, "=") {
		return seg, fmt.Errorf("parameter {%s}: default values are not supported by the local runner", body)
	}
	name, constraints, hasConstraint := strings.Cut(body, ":")
	if !paramName.MatchString(name) {
		return seg, fmt.Errorf("parameter name %q is not a valid identifier", name)
	}
	seg.param = name
	if hasConstraint {
		if strings.Contains(constraints, ":") {
			return seg, fmt.Errorf("parameter {%s}: several constraints (%s) are not supported by the local runner", name, constraints)
		}
		if _, ok := routeConstraints[constraints]; !ok {
			return seg, fmt.Errorf("parameter {%s}: constraint %q is not supported by the local runner (supported: int, long, bool, guid, alpha, "+
				"double)", name, constraints)
		}
		if seg.catchAll {
			return seg, fmt.Errorf("catch-all {*%s} cannot have a constraint", name)
		}
		seg.constraint = constraints
	}
	return seg, nil
}

// Match matches an escaped request path (relative to the route prefix, no
// leading slash) and returns the route's parameters, decoded. Literal
// segments match case-insensitively, as in ASP.NET Core routing.
func (r *Route) Match(escapedPath string) (map[string]string, bool) {
	escapedPath = strings.TrimSuffix(escapedPath, "/")
	var parts []string
	if escapedPath != "" {
		parts = strings.Split(escapedPath, "/")
	}
	params := map[string]string{}
	j := 0
	for _, seg := range r.segments {
		if seg.catchAll {
			rest, err := url.PathUnescape(strings.Join(parts[j:], "/"))
			if err != nil {
				return nil, false
			}
			if rest != "" {
				params[seg.param] = rest
			}
			return params, true
		}
		if j >= len(parts) {
			if seg.optional {
				continue
			}
			return nil, false
		}
		value, err := url.PathUnescape(parts[j])
		if err != nil || value == "" {
			return nil, false
		}
		if seg.literal != "" {
			if !strings.EqualFold(value, seg.literal) {
				return nil, false
			}
		} else {
			if seg.constraint != "" && !routeConstraints[seg.constraint](value) {
				return nil, false
			}
			params[seg.param] = value
		}
		j++
	}
	if j != len(parts) {
		return nil, false
	}
	return params, true
}

// precedence orders routes from the most to the least specific, as ASP.NET
// Core does: per segment, a literal beats a constrained parameter, which
// beats a plain one, then an optional one, then a catch-all.
func (r *Route) precedence() []int {
	p := make([]int, len(r.segments))
	for i, seg := range r.segments {
		switch {
		case seg.literal != "":
			p[i] = 1
		case seg.catchAll:
			p[i] = 5
		case seg.optional:
			p[i] = 4
		case seg.constraint != "":
			p[i] = 2
		default:
			p[i] = 3
		}
	}
	return p
}

// moreSpecific reports whether a is tried before b.
func moreSpecific(a, b *Route) bool {
	pa, pb := a.precedence(), b.precedence()
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return len(pa) > len(pb)
}

// sameShape reports whether two templates match exactly the same paths
// (same literals, same kinds of parameters at the same places): two
// functions with such routes and a common method are ambiguous.
func sameShape(a, b *Route) bool {
	if len(a.segments) != len(b.segments) {
		return false
	}
	for i := range a.segments {
		x, y := a.segments[i], b.segments[i]
		if !strings.EqualFold(x.literal, y.literal) || (x.param == "") != (y.param == "") ||
			x.constraint != y.constraint || x.optional != y.optional || x.catchAll != y.catchAll {
			return false
		}
	}
	return true
}
