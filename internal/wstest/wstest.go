// Package wstest is a minimal WebSocket (RFC 6455) echo server and client
// for tests. The server is an upstream API built for bearer tokens: like
// most such APIs it authenticates the Authorization header and never looks
// at Origin, which is why the BFF must.
package wstest

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Server upgrades every request with a valid WebSocket handshake that
// Check accepts, and answers each text message m with "echo: m". The 101
// carries the headers already set on the ResponseWriter.
type Server struct {
	// Check, if set, sees each handshake; an error refuses it with 401.
	Check func(r *http.Request) error

	mu       sync.Mutex
	accepted []*http.Request
}

// Accepted returns the handshake requests the server upgraded.
func (s *Server) Accepted() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.accepted...)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "not a websocket handshake", http.StatusBadRequest)
		return
	}
	if s.Check != nil {
		if err := s.Check(r); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	s.mu.Lock()
	s.accepted = append(s.accepted, r.Clone(r.Context()))
	s.mu.Unlock()
	h := w.Header().Clone()
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", accept(key))
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	h.Write(rw)
	rw.WriteString("\r\n")
	rw.Flush()
	c := &Conn{c: conn, r: rw.Reader, client: false}
	for {
		msg, err := c.ReadText()
		if err != nil || c.WriteText("echo: "+msg) != nil {
			return
		}
	}
}

func accept(key string) string {
	sum := sha1.Sum([]byte(key + guid))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Conn is one side of a WebSocket connection (text messages only).
type Conn struct {
	c      net.Conn
	r      *bufio.Reader
	client bool // a client masks what it sends
}

// Dial connects to addr (host:port) and sends a WebSocket handshake for
// path with the extra header. It returns the handshake's response and, for
// a 101 with the right Sec-WebSocket-Accept, the connection.
func Dial(addr, path string, header http.Header) (*Conn, *http.Response, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	k := make([]byte, 16)
	rand.Read(k)
	key := base64.StdEncoding.EncodeToString(k)
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	if err := req.Write(nc); err != nil {
		nc.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, resp, nil
	}
	if resp.Header.Get("Sec-WebSocket-Accept") != accept(key) {
		nc.Close()
		return nil, resp, errors.New("wstest: wrong Sec-WebSocket-Accept")
	}
	return &Conn{c: nc, r: br, client: true}, resp, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// NetConn is the underlying connection (for deadlines).
func (c *Conn) NetConn() net.Conn { return c.c }

// WriteText sends one text message.
func (c *Conn) WriteText(s string) error {
	p := []byte(s)
	hdr := []byte{0x81, 0}
	switch n := len(p); {
	case n < 126:
		hdr[1] = byte(n)
	case n < 1<<16:
		hdr[1] = 126
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr[1] = 127
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	if c.client {
		hdr[1] |= 0x80
		var mask [4]byte
		rand.Read(mask[:])
		hdr = append(hdr, mask[:]...)
		for i := range p {
			p[i] ^= mask[i%4]
		}
	}
	_, err := c.c.Write(append(hdr, p...))
	return err
}

// ReadText reads the next message: text is returned, a close frame or any
// other opcode ends the connection with an error.
func (c *Conn) ReadText() (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return "", err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return "", err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return "", err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return "", errors.New("wstest: message too large")
	}
	var mask [4]byte
	masked := h[1]&0x80 != 0
	if masked != !c.client {
		return "", errors.New("wstest: wrong masking")
	}
	if masked {
		if _, err := io.ReadFull(c.r, mask[:]); err != nil {
			return "", err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return "", err
	}
	for i := range p {
		p[i] ^= mask[i%4]
	}
	if op := h[0] & 0x0f; h[0]&0x80 == 0 || op != 1 {
		return "", fmt.Errorf("wstest: frame %#x ends the connection", h[0])
	}
	return string(p), nil
}
