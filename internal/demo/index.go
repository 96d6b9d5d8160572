package demo

import (
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/itemq/itemq/itemapi"
)

var page = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>itemq demo: thumbnails</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;background:#fafafa;color:#222}
h1{font-size:1.4rem} section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}
h2{font-size:1.05rem;margin:0 0 .5rem} .state{font-size:.85rem;color:#666;margin-left:.5rem}
.thumbs img{height:90px;margin:2px;border:1px solid #ccc} .sheet img{max-width:100%;border:1px solid #ccc}
.failed{color:#b00}
</style></head><body>
<h1>itemq demo — {{len .}} videos</h1>
{{range .}}<section>
<h2>{{.Item}}<span class="state {{.State}}">{{.State}}</span></h2>
{{if .Error}}<p class="failed">{{.Error}}</p>{{end}}
{{if .Sheet}}<div class="sheet"><img src="{{.Sheet}}" alt="contact sheet of {{.Item}}"></div>{{end}}
<div class="thumbs">{{range .Thumbs}}<img src="{{.}}" alt="">{{end}}</div>
</section>{{end}}
</body></html>
`))

type entry struct {
	Item, State, Error string
	Sheet              string
	Thumbs             []string
}

// writeIndex writes out/index.html: per video, its contact sheet and
// thumbnails, found under out/thumbs/<item key>/.
func writeIndex(out string, jobs []job) error {
	var entries []entry
	for _, j := range jobs {
		e := entry{Item: j.Item, State: j.State, Error: j.Error}
		key := itemapi.ItemKey(j.Item)
		dir := filepath.Join(out, "thumbs", filepath.FromSlash(key))
		files, _ := os.ReadDir(dir)
		for _, f := range files {
			name := f.Name()
			rel := "thumbs/" + key + "/" + name
			switch {
			case strings.HasPrefix(name, "sheet") || strings.HasPrefix(name, "contact"):
				e.Sheet = rel
			case strings.HasPrefix(name, "thumb"):
				e.Thumbs = append(e.Thumbs, rel)
			}
		}
		sort.Strings(e.Thumbs)
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, k int) bool { return entries[i].Item < entries[k].Item })
	tmp := filepath.Join(out, ".index.html.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := page.Execute(f, entries); err != nil {
		f.Close()
		return fmt.Errorf("write index: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(out, "index.html"))
}
