package e2e

import (
	"fmt"
	"strings"
	"unicode"
)

// A small evaluator for the Azure Pipelines expressions the template uses: template expressions
// (${{ parameters.x }}, replace(), join()) and runtime conditions (and, or, not, eq, ne, in, succeeded,
// failed, always, dependencies.STAGE.result, dependencies.STAGE.outputs['job.step.var']). It knows only
// what the template needs and fails on anything else, so a new construct in the template needs a test.

type adoValue = any // string, bool, []any or map[string]any

type adoParser struct {
	s   string
	pos int
	// ident resolves a property path such as parameters.aksName or dependencies.X.outputs['a.b.c'].
	ident func(path []string) (adoValue, error)
	// status is the result of the current stage's dependencies for succeeded() and failed().
	status func(fn string) (bool, error)
}

func evalADO(expr string, ident func([]string) (adoValue, error), status func(string) (bool, error)) (adoValue, error) {
	p := &adoParser{s: expr, ident: ident, status: status}
	v, err := p.expr()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", expr, err)
	}
	p.space()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("%s: unexpected %q", expr, p.s[p.pos:])
	}
	return v, nil
}

func (p *adoParser) space() {
	for p.pos < len(p.s) && unicode.IsSpace(rune(p.s[p.pos])) {
		p.pos++
	}
}

func (p *adoParser) expr() (adoValue, error) {
	p.space()
	if p.pos < len(p.s) && p.s[p.pos] == '\'' {
		end := strings.IndexByte(p.s[p.pos+1:], '\'')
		if end < 0 {
			return nil, fmt.Errorf("unterminated string")
		}
		v := p.s[p.pos+1 : p.pos+1+end]
		p.pos += end + 2
		return v, nil
	}
	start := p.pos
	for p.pos < len(p.s) && (unicode.IsLetter(rune(p.s[p.pos])) || unicode.IsDigit(rune(p.s[p.pos])) || strings.ContainsRune("_.-", rune(p.s[p.pos]))) {
		p.pos++
	}
	word := p.s[start:p.pos]
	if word == "" {
		return nil, fmt.Errorf("expected a value at %q", p.s[p.pos:])
	}
	p.space()
	if p.pos < len(p.s) && p.s[p.pos] == '(' {
		p.pos++
		var args []adoValue
		for {
			p.space()
			if p.pos < len(p.s) && p.s[p.pos] == ')' {
				p.pos++
				break
			}
			a, err := p.expr()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			p.space()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
			}
		}
		return p.call(strings.ToLower(word), args)
	}
	path := strings.Split(word, ".")
	// An index such as outputs['job.step.var'] is one more path element.
	for p.pos < len(p.s) && p.s[p.pos] == '[' {
		p.pos++
		idx, err := p.expr()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.s) || p.s[p.pos] != ']' {
			return nil, fmt.Errorf("expected ]")
		}
		p.pos++
		path = append(path, fmt.Sprint(idx))
	}
	switch word {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return p.ident(path)
}

func (p *adoParser) call(fn string, args []adoValue) (adoValue, error) {
	str := func(v adoValue) string {
		switch v := v.(type) {
		case nil:
			return ""
		case bool:
			if v {
				return "True"
			}
			return "False"
		}
		return fmt.Sprint(v)
	}
	truthy := func(v adoValue) bool {
		switch v := v.(type) {
		case bool:
			return v
		case string:
			return v != ""
		}
		return v != nil
	}
	switch fn {
	case "succeeded", "failed", "always", "succeededorfailed", "canceled":
		if fn == "always" {
			return true, nil
		}
		return p.status(fn)
	case "and", "or":
		acc := fn == "and"
		for _, a := range args {
			if fn == "and" {
				acc = acc && truthy(a)
			} else {
				acc = acc || truthy(a)
			}
		}
		return acc, nil
	case "not":
		return len(args) == 1 && !truthy(args[0]), nil
	case "eq", "ne":
		if len(args) != 2 {
			return nil, fmt.Errorf("%s takes 2 arguments", fn)
		}
		eq := strings.EqualFold(str(args[0]), str(args[1]))
		return eq == (fn == "eq"), nil
	case "in":
		for _, a := range args[1:] {
			if strings.EqualFold(str(args[0]), str(a)) {
				return true, nil
			}
		}
		return false, nil
	case "replace":
		if len(args) != 3 {
			return nil, fmt.Errorf("replace takes 3 arguments")
		}
		return strings.ReplaceAll(str(args[0]), str(args[1]), str(args[2])), nil
	case "join":
		if len(args) != 2 {
			return nil, fmt.Errorf("join takes 2 arguments")
		}
		list, _ := args[1].([]any)
		parts := make([]string, len(list))
		for i, v := range list {
			parts[i] = str(v)
		}
		return strings.Join(parts, str(args[0])), nil
	}
	return nil, fmt.Errorf("the test does not know the function %s()", fn)
}
