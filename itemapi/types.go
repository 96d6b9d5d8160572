package itemapi

import (
	"encoding/json"
	"fmt"
)

// APIVersion is the version every document of this contract carries.
const APIVersion = "v1"

// Document kinds.
const (
	KindItem     = "Item"
	KindItemList = "ItemList"
	KindStatus   = "Status"
)

// Item is one work item: its name and its source-specific data.
type Item struct {
	Kind       string          `json:"kind"`
	APIVersion string          `json:"apiVersion"`
	Name       string          `json:"name"`
	Data       json.RawMessage `json:"data"`
}

// NewItem returns an Item document with kind and apiVersion set.
func NewItem(name string, data json.RawMessage) *Item {
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	return &Item{Kind: KindItem, APIVersion: APIVersion, Name: name, Data: data}
}

// Validate checks that it is a well-formed v1 Item document.
func (it *Item) Validate() error {
	if it.Kind != KindItem {
		return fmt.Errorf("kind is %q, want %q", it.Kind, KindItem)
	}
	if it.APIVersion != APIVersion {
		return fmt.Errorf("apiVersion is %q, want %q", it.APIVersion, APIVersion)
	}
	if err := ValidateName(it.Name); err != nil {
		return err
	}
	if len(it.Data) == 0 || string(it.Data) == "null" {
		return fmt.Errorf("item %q has no data", it.Name)
	}
	if !json.Valid(it.Data) {
		return fmt.Errorf("item %q: data is not valid JSON", it.Name)
	}
	return nil
}

// ItemList is one page of item names, sorted. Continue, when not empty, is
// the token that fetches the next page.
type ItemList struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Items      []string `json:"items"`
	Continue   string   `json:"continue,omitempty"`
}

// NewItemList returns an ItemList document with kind and apiVersion set.
func NewItemList(names []string, next string) *ItemList {
	if names == nil {
		names = []string{}
	}
	return &ItemList{Kind: KindItemList, APIVersion: APIVersion, Items: names, Continue: next}
}

// EventType is the type of a WatchEvent.
type EventType string

const (
	// Added: the item exists (first one per existing item, then each new item).
	Added EventType = "ADDED"
	// Deleted: the item is gone.
	Deleted EventType = "DELETED"
	// Synced marks the end of the initial ADDED events of a watch stream:
	// from here on, events are changes. It carries no name.
	Synced EventType = "SYNCED"
	// Heartbeat keeps an idle stream alive; it carries no name. Servers send
	// one at least every HeartbeatInterval.
	Heartbeat EventType = "HEARTBEAT"
)

// WatchEvent is one line of a watch stream.
type WatchEvent struct {
	Type EventType `json:"type"`
	Name string    `json:"name,omitempty"`
	// Item, on an ADDED event, may carry the item's document (what
	// GET /v1/items/{name} answers), sparing the reader that request. A
	// server may leave it out; a reader must then GET the item.
	Item *Item `json:"item,omitempty"`
}

// Outcome is what happened to an item, told to the source by Ack.
type Outcome string

const (
	Succeeded Outcome = "succeeded"
	Failed    Outcome = "failed"
	// Cancelled: a person stopped the item's job. A source archives it
	// with the failed ones unless it can keep it apart (every built-in
	// source puts it in its dead letter, so that it can be redriven). An
	// older ambassador answers 400 to it; the manager then acknowledges
	// the item as failed.
	Cancelled Outcome = "cancelled"
)

// ParseOutcome checks an outcome query value.
func ParseOutcome(s string) (Outcome, error) {
	switch Outcome(s) {
	case Succeeded, Failed, Cancelled:
		return Outcome(s), nil
	}
	return "", fmt.Errorf("outcome %q: want %q, %q or %q", s, Succeeded, Failed, Cancelled)
}
