package jdesim

import (
	"reflect"
	"strings"
	"sync"
	"time"
)

// record is a row of a table: one of the row structs (Invoice, Email, …),
// whose columns are its fields named by their json tags. The columns are
// read by reflection rather than a switch per table, so a column added to
// a struct is served without more code.
type record struct{ row any }

// value returns a column's stored value: int64 for kNum, kDate (dates as
// Julian CYYDDD) and kAmount, string for kStr; nil for no such column.
func (r record) value(col string) any {
	v := reflect.Indirect(reflect.ValueOf(r.row))
	idx, ok := columnIndex(v.Type())[col]
	if !ok {
		return nil
	}
	f := v.FieldByIndex(idx).Interface()
	if t, ok := f.(time.Time); ok {
		return julian(t)
	}
	return f
}

var columnIndexes sync.Map // reflect.Type → map[string][]int

func columnIndex(t reflect.Type) map[string][]int {
	if m, ok := columnIndexes.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	for _, f := range reflect.VisibleFields(t) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" && !f.Anonymous {
			m[name] = f.Index
		}
	}
	columnIndexes.Store(t, m)
	return m
}
