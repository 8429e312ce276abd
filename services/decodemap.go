package services

import (
	"math"
	"reflect"
	"strings"
	"unicode/utf8"
)

// decodeMap copies data into the struct v points to, as encoding/json would
// decode the JSON of data into it, without the JSON: an act made in-process
// with a map input, handled by a typed handler, costs half as much. It
// reports false, having changed nothing, when it cannot be sure to give
// the same result as the round trip (a field or value type beyond plain
// strings, bools and numbers, two keys for one field, a value JSON cannot
// encode); Decode then takes the round trip, errors and all.
func (s *Service) decodeMap(data map[string]any, v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return false
	}
	sv := rv.Elem()
	if sv.Kind() != reflect.Struct {
		return false
	}
	fs := s.mapFieldsOf(sv.Type())
	if fs == nil {
		return false
	}
	// First check every key and value, so that nothing is set when the
	// round trip has to decide.
	var seen [64]bool
	type set struct {
		f *mapField
		x any
	}
	var sets [16]set
	todo := sets[:0]
	for k, x := range data {
		f, ok := fs.lookup(k)
		if !ok {
			return false
		}
		if f == nil {
			if !jsonSafe(x, 0) {
				return false
			}
			continue
		}
		if f.index >= len(seen) || seen[f.index] {
			return false // two keys for one field: the round trip's order decides
		}
		seen[f.index] = true
		if x == nil {
			continue // null leaves a field as it is
		}
		if !f.accepts(x) {
			return false
		}
		todo = append(todo, set{f, x})
	}
	for _, s := range todo {
		s.f.set(sv.Field(s.f.index), s.x)
	}
	return true
}

// mapField is a struct field decodeMap can set: exported, not embedded,
// of a string, bool, integer or float64 kind with no unmarshal method of
// its own, without the ",string" option.
type mapField struct {
	index int
	kind  reflect.Kind
	bits  int // of integer kinds
}

// mapFields are a struct type's fields by JSON name, and by that name in
// lower case: encoding/json matches a key to a field without regard to
// case when no name matches exactly. Every name is ASCII.
type mapFields struct {
	exact  map[string]*mapField
	folded map[string]*mapField // nil entry: two fields fold alike
}

// lookup finds key's field: f is nil for a key no field takes; ok is false
// when only the round trip can tell (a key that is not ASCII and matches
// no name exactly could still match one by Unicode folding, and a key
// that folds to two fields matches the first by encoding/json's order).
func (fs *mapFields) lookup(key string) (f *mapField, ok bool) {
	if f, found := fs.exact[key]; found {
		return f, true
	}
	upper := false
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= utf8.RuneSelf {
			return nil, false
		}
		upper = upper || 'A' <= c && c <= 'Z'
	}
	folded := key
	if upper {
		folded = strings.ToLower(key)
	}
	f, found := fs.folded[folded]
	if found && f == nil {
		return nil, false
	}
	return f, true
}

// mapFieldsOf is buildMapFields, remembered per type.
func (s *Service) mapFieldsOf(t reflect.Type) *mapFields {
	return cachedType(&s.plans.mu, &s.plans.maps, t, buildMapFields)
}

// buildMapFields returns t's fields when decodeMap can fill every field of
// t, nil otherwise.
func buildMapFields(t reflect.Type) *mapFields {
	pt := reflect.PointerTo(t)
	if pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		return nil
	}
	fs := &mapFields{exact: map[string]*mapField{}, folded: map[string]*mapField{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil // embedded fields have rules of their own
		}
		if !sf.IsExported() {
			continue
		}
		name := sf.Name
		if tag, ok := sf.Tag.Lookup("json"); ok {
			if tag == "-" {
				continue
			}
			n, opts, _ := strings.Cut(tag, ",")
			for _, o := range strings.Split(opts, ",") {
				if o == "string" {
					return nil
				}
			}
			if n != "" {
				name = n
			}
		}
		for j := 0; j < len(name); j++ {
			if name[j] >= utf8.RuneSelf {
				return nil // Unicode folding: the round trip's business
			}
		}
		ft := sf.Type
		if p := reflect.PointerTo(ft); p.Implements(jsonUnmarshaler) || p.Implements(textUnmarshaler) {
			return nil
		}
		f := &mapField{index: i, kind: ft.Kind()}
		switch f.kind {
		case reflect.String, reflect.Bool, reflect.Float64:
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.bits = ft.Bits()
		default:
			return nil
		}
		if _, dup := fs.exact[name]; dup {
			return nil // encoding/json's rules for clashing names
		}
		fs.exact[name] = f
		folded := strings.ToLower(name)
		if _, clash := fs.folded[folded]; clash {
			fs.folded[folded] = nil
		} else {
			fs.folded[folded] = f
		}
	}
	return fs
}

// accepts reports whether x, a non-nil value of the map, decodes into f
// as its JSON would.
func (f *mapField) accepts(x any) bool {
	switch f.kind {
	case reflect.String:
		s, ok := x.(string)
		return ok && utf8.ValidString(s) // JSON would replace bad bytes
	case reflect.Bool:
		_, ok := x.(bool)
		return ok
	case reflect.Float64:
		_, ok := asFloat(x)
		return ok
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := asInt(x)
		return ok && fitsInt(n, f.bits)
	default: // unsigned
		n, ok := asUint(x)
		return ok && (f.bits == 64 || n < 1<<f.bits)
	}
}

// set stores x, which f accepts, in v.
func (f *mapField) set(v reflect.Value, x any) {
	switch f.kind {
	case reflect.String:
		v.SetString(x.(string))
	case reflect.Bool:
		v.SetBool(x.(bool))
	case reflect.Float64:
		n, _ := asFloat(x)
		v.SetFloat(n)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, _ := asInt(x)
		v.SetInt(n)
	default:
		n, _ := asUint(x)
		v.SetUint(n)
	}
}

func fitsInt(n int64, bits int) bool {
	if bits == 64 {
		return true
	}
	return n >= -1<<(bits-1) && n < 1<<(bits-1)
}

// signed and unsigned read Go's predeclared integer types (not types
// defined on them, which may marshal otherwise).
func signed(x any) (int64, bool) {
	switch n := x.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

func unsigned(x any) (uint64, bool) {
	switch n := x.(type) {
	case uint:
		return uint64(n), true
	case uint8:
		return uint64(n), true
	case uint16:
		return uint64(n), true
	case uint32:
		return uint64(n), true
	case uint64:
		return n, true
	}
	return 0, false
}

// asFloat reads a Go number as JSON would give it to a float64 field.
// float32 values are left to the round trip (their JSON is rounded).
func asFloat(x any) (float64, bool) {
	if f, ok := x.(float64); ok {
		return f, !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	if n, ok := signed(x); ok {
		return float64(n), true
	}
	u, ok := unsigned(x)
	return float64(u), ok
}

// asInt reads a Go number as JSON would give it to an integer field: a
// float64 only when it has no fraction and no exponent in its JSON.
func asInt(x any) (int64, bool) {
	if n, ok := signed(x); ok {
		return n, true
	}
	if u, ok := unsigned(x); ok {
		return int64(u), u <= math.MaxInt64
	}
	// Up to 2^53 a float64 without a fraction prints as its digits.
	if f, ok := x.(float64); ok && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return int64(f), true
	}
	return 0, false
}

// asUint is asInt for unsigned fields.
func asUint(x any) (uint64, bool) {
	if u, ok := unsigned(x); ok {
		return u, true
	}
	i, ok := asInt(x)
	return uint64(i), ok && i >= 0
}

// jsonSafe reports whether json.Marshal encodes x without an error (the
// round trip fails on the whole message for one bad value, even one no
// field takes), for the types an act's data usually holds; others are
// left to the round trip.
func jsonSafe(x any, depth int) bool {
	if depth > 32 {
		return false
	}
	switch v := x.(type) {
	case nil, string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return true
	case float64:
		return !math.IsNaN(v) && !math.IsInf(v, 0)
	case map[string]any:
		for _, e := range v {
			if !jsonSafe(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		for _, e := range v {
			if !jsonSafe(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}
