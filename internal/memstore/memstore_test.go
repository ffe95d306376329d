package memstore

import (
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

var _ scs.Store = (*Store)(nil)

func TestStore(t *testing.T) {
	s := New(time.Hour)
	defer s.Close()
	s.Commit("a", []byte("1"), time.Now().Add(time.Hour))
	s.Commit("old", []byte("2"), time.Now().Add(-time.Second))
	if b, ok, _ := s.Find("a"); !ok || string(b) != "1" {
		t.Fatal("a not found")
	}
	if _, ok, _ := s.Find("old"); ok {
		t.Fatal("expired record found")
	}
	s.Cleanup()
	if s.Len() != 1 {
		t.Fatalf("after cleanup %d records, want 1", s.Len())
	}
	s.Delete("a")
	if _, ok, _ := s.Find("a"); ok {
		t.Fatal("deleted record found")
	}
}

func TestCloseRightAfterNew(t *testing.T) {
	for range 100 {
		New(time.Millisecond).Close()
	}
}
