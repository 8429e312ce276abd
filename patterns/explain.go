package patterns

import (
	"strconv"
	"strings"
)

// Take says what the walk did at one step.
type Take uint8

const (
	// TakeExact: the message's value matched an exact child; the walk
	// committed to it (and stacked the node's skip branch).
	TakeExact Take = iota + 1
	// TakeGlob: no exact child, but a glob child matched (the first added
	// that matches); the walk committed to it.
	TakeGlob
	// TakeSkip: the message lacks the key, or no child matched its value;
	// the walk went on at the node's skip branch (patterns that leave the
	// key out).
	TakeSkip
	// TakeBacktrack: the walk ran out of nodes with nothing found and
	// popped a skipped branch from its stack.
	TakeBacktrack
)

// String returns "exact", "glob", "skip" or "backtrack".
func (t Take) String() string {
	switch t {
	case TakeExact:
		return "exact"
	case TakeGlob:
		return "glob"
	case TakeSkip:
		return "skip"
	case TakeBacktrack:
		return "backtrack"
	}
	return "Take(" + strconv.Itoa(int(t)) + ")"
}

// Step is one step of the walk.
type Step struct {
	// Key is the key tested at the node (for TakeBacktrack: the key tested
	// by the node the walk resumes at).
	Key string
	// Value is the message's value for Key in string form, if Present.
	Value string
	// Present reports whether the message has a scalar value for Key.
	Present bool
	// Take is what the walk did.
	Take Take
	// Glob is the glob that matched, for TakeGlob.
	Glob string
	// Pattern is the pattern whose value sits at the node reached, if
	// HasAction; it became the walk's current answer.
	Pattern Pattern
	// HasAction reports whether a pattern ends at the node reached.
	HasAction bool
}

// Explanation says which pattern won a find and how the walk got there.
type Explanation struct {
	// Pattern is the winner, if Found.
	Pattern Pattern
	Found   bool
	// Steps are the walk's steps, in order.
	Steps []Step
}

// Explain walks msg as Find does and records the steps: the keys tested,
// the message's values, what was taken (exact, glob, skip, backtrack) and
// the pattern that won. It allocates; use it for debugging and tooling.
func (r *Router[T]) Explain(msg map[string]any) Explanation {
	src := source{m: msg}
	var ex Explanation
	r.mu.RLock()
	defer r.mu.RUnlock()
	// The winner's entry is read under the lock: a concurrent Remove
	// clears it.
	if e := r.walk(&src, modeFind, nil, &ex); e != nil {
		ex.Pattern, ex.Found = e.entry.pat, true
	}
	return ex
}

// String renders the explanation, one step a line:
//
//	found a:1
//	  a: "1" exact -> a:1
//	  b: missing, skip
//	  backtrack to c
func (e Explanation) String() string {
	var b strings.Builder
	if e.Found {
		b.WriteString("found ")
		b.WriteString(patternText(e.Pattern))
	} else {
		b.WriteString("not found")
	}
	for _, s := range e.Steps {
		b.WriteString("\n  ")
		if s.Take == TakeBacktrack {
			b.WriteString("backtrack to ")
			b.WriteString(s.Key)
			continue
		}
		b.WriteString(s.Key)
		if !s.Present {
			b.WriteString(": missing, skip")
			continue
		}
		b.WriteString(": ")
		b.WriteString(strconv.Quote(s.Value))
		b.WriteByte(' ')
		switch s.Take {
		case TakeGlob:
			b.WriteString("glob ")
			b.WriteString(strconv.Quote(s.Glob))
		case TakeSkip:
			b.WriteString("skip (no match)")
		default:
			b.WriteString(s.Take.String())
		}
		if s.HasAction {
			b.WriteString(" -> ")
			b.WriteString(patternText(s.Pattern))
		}
	}
	return b.String()
}

// patternText is String with "{}" for the empty pattern.
func patternText(p Pattern) string {
	if p.Len() == 0 {
		return "{}"
	}
	return p.String()
}
