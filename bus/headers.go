package bus

import (
	"fmt"
	"math"
	"reflect"
	"time"
)

// normalizeHeaders returns a deep copy of h with every value in the form a
// message carries after a trip through RabbitMQ: int, int8, int16, int32,
// uint8, uint16, uint32 (and uint, uint64 that fit) become int64; float32
// becomes float64; time.Time is truncated to whole seconds (AMQP timestamps);
// []byte is copied; nested maps with string keys (amqp091's Table among them)
// become map[string]any and nested slices []any. An empty map gives nil.
// A value of any other type is an error wrapping ErrInvalidConfig, as
// amqp091-go would refuse it.
func normalizeHeaders(h map[string]any) (map[string]any, error) {
	if len(h) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(h))
	for k, v := range h {
		nv, err := normalizeValue(v, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: header %q: %w", ErrInvalidConfig, k, err)
		}
		out[k] = nv
	}
	return out, nil
}

// maxHeaderDepth bounds nesting, as amqp091-go does when reading.
const maxHeaderDepth = 64

func normalizeValue(v any, depth int) (any, error) {
	if depth > maxHeaderDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxHeaderDepth)
	}
	switch x := v.(type) {
	case nil, string, bool, int64, float64:
		return x, nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("value %d overflows int64", x)
		}
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("value %d overflows int64", x)
		}
		return int64(x), nil
	case float32:
		return float64(x), nil
	case time.Time:
		return time.Unix(x.Unix(), 0), nil
	case []byte:
		return append([]byte{}, x...), nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ne, err := normalizeValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = ne
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ne, err := normalizeValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = ne
		}
		return out, nil
	}
	// Named map and slice types (amqp091-go's Table) by reflection.
	rv := reflect.ValueOf(v)
	switch {
	case rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String:
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			ne, err := normalizeValue(it.Value().Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[it.Key().String()] = ne
		}
		return out, nil
	case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Interface:
		out := make([]any, rv.Len())
		for i := range out {
			ne, err := normalizeValue(rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = ne
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported type %T", v)
}

// cloneHeaders deep-copies headers that are already normalized.
func cloneHeaders(h map[string]any) map[string]any {
	if h == nil {
		return nil
	}
	out := make(map[string]any, len(h))
	for k, v := range h {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return append([]byte{}, x...)
	case map[string]any:
		return cloneHeaders(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}
