package web_test

import (
	"encoding/json"
	"html"
	"regexp"
	"strings"
	"testing"
)

var nextLink = regexp.MustCompile(`<a href="([^"]+)" rel="next">Older</a>`)

// TestExceptionsPagedByKeyset: following "Older" one item at a time
// visits every item of the queue exactly once, newest first, items of the
// same second included; the JSON gives scripts the same cursor.
func TestExceptionsPagedByKeyset(t *testing.T) {
	w := newWorld(t)
	// Three exceptions at the very same instant: the ref breaks the tie.
	w.exec(`INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason, created_at)
		SELECT 'invalid_invoice', 'invoice', 'ifs-acme:10:TIE-' || g, 'bad', '2026-01-01T00:00:00Z' FROM generate_series(1, 3) g`)
	v := w.signIn("vera", viewerPass)
	var all struct {
		Items []struct {
			Ref string `json:"ref"`
		} `json:"items"`
		Total int `json:"total"`
	}
	status, js := v.getJSON("/exceptions?status=all&limit=200")
	if err := json.Unmarshal([]byte(js), &all); err != nil || status != 200 || all.Total != 7 || len(all.Items) != 7 {
		t.Fatalf("whole queue: %d %v, %d of %d items", status, err, len(all.Items), all.Total)
	}
	path := "/exceptions?status=all&limit=1"
	var seen []string
	for i := 0; path != ""; i++ {
		if i > 10 {
			t.Fatal("the pages do not end")
		}
		page := v.get(path, 200)
		refs := regexp.MustCompile(`<tr id="([a-z]+:[0-9]+)"`).FindAllStringSubmatch(page, -1)
		if len(refs) != 1 {
			t.Fatalf("page %d shows %d items", i, len(refs))
		}
		seen = append(seen, refs[0][1])
		path = ""
		if m := nextLink.FindStringSubmatch(page); m != nil {
			path = html.UnescapeString(m[1])
			if strings.Contains(path, "offset=") {
				t.Errorf("the next page is reached by offset: %s", path)
			}
		}
	}
	var want []string
	for _, it := range all.Items {
		want = append(want, it.Ref)
	}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("paging one by one saw %v, the queue is %v", seen, want)
	}
	var first struct {
		Next *struct {
			Before string `json:"before"`
			Ref    string `json:"before_ref"`
		} `json:"next"`
	}
	if _, js := v.getJSON("/exceptions?status=all&limit=6"); json.Unmarshal([]byte(js), &first) != nil || first.Next == nil || first.Next.Ref != want[5] {
		t.Errorf("JSON next cursor: %s", js)
	}
	if _, js := v.getJSON("/exceptions?status=all&limit=7"); strings.Contains(js, `"next"`) {
		t.Errorf("the last page has a next cursor: %s", js)
	}
	for _, bad := range []string{"before=yesterday&before_ref=exception:1", "before=2026-01-01T00:00:00Z&before_ref=x;drop",
		"before=2026-01-01T00:00:00Z&before_ref=exception:1&offset=5"} {
		if status, _ := v.getJSON("/exceptions?" + bad); status != 400 {
			t.Errorf("%s: %d, want 400", bad, status)
		}
	}
}
