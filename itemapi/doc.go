// Package itemapi is the v1 wire contract between itemq's ambassadors and its
// manager, and a Go client for it.
//
// An ambassador serves a set of named work items over HTTP:
//
//	GET    /v1/items                  → ItemList (names sorted; ?limit=N&continue=TOKEN pages)
//	GET    /v1/items/{name}           → Item
//	GET    /v1/items?watch=true       → newline-delimited WatchEvent stream
//	POST   /v1/items                  → 201 Item (sources that accept submissions)
//	DELETE /v1/items/{name}?outcome=  → 204 (sources that archive)
//
// Errors are Status documents with the same HTTP code. Item names are opaque,
// non-empty, valid UTF-8 strings of at most 1024 bytes with no NUL; in URLs
// they are path-escaped.
//
// The package also owns two conventions every ambassador and executor shares:
// how an object URL splits into a bucket URL and a key (SplitObjectURL,
// JoinObjectURL), and how an item name becomes a safe, collision-free key for
// its results (ItemKey).
package itemapi
