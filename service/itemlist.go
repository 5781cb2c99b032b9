package service

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sort"
)

// An item list is the cached form of one part of a composed answer (the
// global models, one user's own models, one user's servers): items sorted
// by key, each with its JSON already encoded, so that an answer merging
// two parts copies bytes and never encodes JSON on a hit.
//
// Layout (little-endian uint32s):
//
//	"IL1\n" n extraLen metaLen
//	n × (keyOff keyLen auxOff auxLen jsonOff jsonLen)
//	extra | meta (keys, aux) | json (items joined by commas)
//
// The items' JSON is one comma-joined region so that a run of consecutive
// items is one copy. aux is per-item data a composer needs without
// decoding the JSON (a model's search text, a server's model id); extra is
// per-list data (a server summary).
type itemList []byte

const (
	itemMagic   = "IL1\n"
	itemHeader  = len(itemMagic) + 3*4
	itemIndex   = 6 * 4
	maxItemList = 1 << 31
)

var errItemList = errors.New("malformed item list")

// item is one entry of a list being encoded.
type item struct {
	key, aux, json []byte
}

// encodeItems sorts items by key and encodes them with extra.
func encodeItems(items []item, extra []byte) []byte {
	sort.Slice(items, func(i, j int) bool { return bytes.Compare(items[i].key, items[j].key) < 0 })
	metaLen, jsonLen := 0, 0
	for _, it := range items {
		metaLen += len(it.key) + len(it.aux)
		jsonLen += len(it.json) + 1
	}
	b := make([]byte, 0, itemHeader+len(items)*itemIndex+len(extra)+metaLen+jsonLen)
	b = append(b, itemMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(items)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(extra)))
	b = binary.LittleEndian.AppendUint32(b, uint32(metaLen))
	meta, js := 0, 0
	for _, it := range items {
		for _, v := range [][]byte{it.key, it.aux} {
			b = binary.LittleEndian.AppendUint32(b, uint32(meta))
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			meta += len(v)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(js))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(it.json)))
		js += len(it.json) + 1
	}
	b = append(b, extra...)
	for _, it := range items {
		b = append(append(b, it.key...), it.aux...)
	}
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it.json...)
	}
	return b
}

// check validates the layout once, so that the accessors can slice without
// bounds surprises (an entry from Redis is bytes like any other).
func (l itemList) check() error {
	if len(l) < itemHeader || string(l[:len(itemMagic)]) != itemMagic || len(l) >= maxItemList {
		return errItemList
	}
	n, extra, meta := l.u32(4), l.u32(8), l.u32(12)
	if n > len(l)/itemIndex {
		return errItemList
	}
	body := itemHeader + n*itemIndex
	if body+extra+meta > len(l) {
		return errItemList
	}
	jsonLen := len(l) - body - extra - meta
	for i := 0; i < n; i++ {
		r := itemHeader + i*itemIndex
		for f := 0; f < 2; f++ {
			off, ln := l.u32(r+8*f), l.u32(r+8*f+4)
			if off+ln > meta {
				return errItemList
			}
		}
		if off, ln := l.u32(r+16), l.u32(r+20); off+ln > jsonLen {
			return errItemList
		}
	}
	return nil
}

func (l itemList) u32(at int) int { return int(binary.LittleEndian.Uint32(l[at:])) }

// Len is the number of items.
func (l itemList) Len() int { return l.u32(4) }

func (l itemList) extraStart() int { return itemHeader + l.Len()*itemIndex }
func (l itemList) metaStart() int  { return l.extraStart() + l.u32(8) }
func (l itemList) jsonStart() int  { return l.metaStart() + l.u32(12) }

// Extra is the list's own data.
func (l itemList) Extra() []byte { s := l.extraStart(); return l[s : s+l.u32(8)] }

func (l itemList) field(i, f int) []byte {
	r := itemHeader + i*itemIndex + 8*f
	off, ln := l.u32(r), l.u32(r+4)
	if f == 2 {
		s := l.jsonStart() + off
		return l[s : s+ln : s+ln]
	}
	s := l.metaStart() + off
	return l[s : s+ln : s+ln]
}

// Key, Aux and JSON are item i's parts; they alias the list.
func (l itemList) Key(i int) []byte  { return l.field(i, 0) }
func (l itemList) Aux(i int) []byte  { return l.field(i, 1) }
func (l itemList) JSON(i int) []byte { return l.field(i, 2) }

// run returns the JSON of items [i, j), commas included: one copy.
func (l itemList) run(i, j int) []byte {
	if i >= j {
		return nil
	}
	s := l.jsonStart() + l.u32(itemHeader+i*itemIndex+16)
	e := l.jsonStart() + l.u32(itemHeader+(j-1)*itemIndex+16) + l.u32(itemHeader+(j-1)*itemIndex+20)
	return l[s:e:e]
}

// after returns the index of the first item whose key is greater than key.
func (l itemList) after(key []byte) int {
	return sort.Search(l.Len(), func(i int) bool { return bytes.Compare(l.Key(i), key) > 0 })
}
