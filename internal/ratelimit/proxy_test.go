package ratelimit

import (
	"io"
	"net"
	"sync"
	"testing"
)

// proxy is a TCP proxy to Redis that a test can cut (connections are
// refused by closing them at once), hang (connections are accepted and
// never answered) and restore, while its address stays the same.
type proxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	mode  string // "up", "down" or "hang"
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, mode: "up", conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		p.set("down")
	})
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// set switches the mode, closing every open connection.
func (p *proxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// track records c, or closes it and reports false when the proxy is down.
func (p *proxy) track(c net.Conn) (mode string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "down" {
		c.Close()
		return p.mode, false
	}
	p.conns[c] = true
	return p.mode, true
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) handle(c net.Conn) {
	mode, ok := p.track(c)
	if !ok {
		return
	}
	if mode == "hang" {
		io.Copy(io.Discard, c) // until set closes it
		return
	}
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	if _, ok := p.track(up); !ok {
		c.Close()
		return
	}
	go func() {
		io.Copy(up, c)
		up.Close()
	}()
	io.Copy(c, up)
	c.Close()
}
