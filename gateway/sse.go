package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxEventBytes bounds one server-sent event (all its data lines): a
// chunk of a chat stream is a few hundred bytes; anything near this is a
// broken upstream, not a reply.
const maxEventBytes = 4 << 20

var errEventTooLarge = errors.New("server-sent event too large")

// sseEvent is one dispatched event. Data is valid until the next call to
// next.
type sseEvent struct {
	Type string // the event: field; "error" also for llama.cpp's error: lines
	Data []byte // the data: lines, joined by "\n"
}

// sseReader reads server-sent events leniently, as inference servers
// write them: comment lines (": ping" keep-alives) are skipped, events
// with no data (empty "data:" frames) are dropped, lines end in LF or
// CRLF, an event may arrive split over any number of reads, "data:" may
// have no space after the colon, and llama.cpp's non-standard "error:"
// line becomes an event of type error. A last event not followed by a
// blank line is still dispatched at the end of the stream.
type sseReader struct {
	br       *bufio.Reader
	line     []byte // a line longer than the buffer, put together
	data     []byte
	typ      string
	seenData bool // a data: line of the pending event was read
}

func newSSEReader(r io.Reader) *sseReader {
	// A chunk is a few hundred bytes; a longer line is put together in
	// line. Hundreds of streams each hold one of these buffers.
	return &sseReader{br: bufio.NewReaderSize(r, 4<<10)}
}

// next returns the next event with data, or the reader's error (io.EOF at
// the end of the stream, once the pending event is out).
func (r *sseReader) next() (sseEvent, error) {
	r.data, r.typ, r.seenData = r.data[:0], "", false
	for {
		line, err := r.readLine()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return sseEvent{}, err
			}
			if line = bytes.TrimSuffix(line, []byte{'\r'}); len(line) > 0 {
				if ferr := r.field(line); ferr != nil {
					return sseEvent{}, ferr
				}
			}
			if len(r.data) > 0 {
				return sseEvent{Type: r.typ, Data: r.data}, nil
			}
			return sseEvent{}, io.EOF
		}
		if len(line) == 0 {
			if len(r.data) > 0 {
				return sseEvent{Type: r.typ, Data: r.data}, nil
			}
			// An empty frame (or a lone "event:"): nothing to say.
			r.data, r.typ, r.seenData = r.data[:0], "", false
			continue
		}
		if err := r.field(line); err != nil {
			return sseEvent{}, err
		}
	}
}

// field applies one non-empty line to the pending event.
func (r *sseReader) field(line []byte) error {
	if line[0] == ':' {
		return nil // a comment
	}
	name, value, found := bytes.Cut(line, []byte{':'})
	if !found {
		value = nil
	}
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(name) {
	case "data":
		if len(r.data)+len(value) > maxEventBytes {
			return errEventTooLarge
		}
		if r.seenData {
			r.data = append(r.data, '\n')
		}
		r.data = append(r.data, value...)
		r.seenData = true
	case "event":
		r.typ = string(value)
	case "error":
		r.typ = "error"
		r.data = append(r.data[:0], value...)
		r.seenData = true
	}
	return nil
}

// readLine returns the next line without its LF or CRLF. The slice is
// valid until the next call.
func (r *sseReader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(r.line)+len(chunk) > maxEventBytes {
				return nil, errEventTooLarge
			}
			r.line = append(r.line, chunk...)
			continue
		}
		line := chunk
		if len(r.line) > 0 {
			if len(r.line)+len(chunk) > maxEventBytes+64 {
				return nil, errEventTooLarge
			}
			r.line = append(r.line, chunk...)
			line = r.line
		}
		if err != nil {
			return line, err
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return line, nil
	}
}
